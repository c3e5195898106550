"""The ``edgekit.json`` manifest: what was exported, from what, and how each artifact measured.

Apps and the on-device benchmark read it for the input spec, the task's named ``outputs``
(name, dtype, shape with ``batch`` / ``sequence`` axes), labels and file names; ``edgekit
bench`` updates ``latency_ms``. The evaluation gate's verdict is stored per artifact. Version 2
(``edgekit_manifest``) holds ``digests``: size and sha256 of every file that a reader loads (each
artifact's files, the tokenizer files, labels.txt), which bench and check verify before loading;
version 3 replaced the single ``output`` with the ``outputs`` list. The reader, shared with the
on-device script, refuses other versions. A question-answering export also writes ``windows``:
the ``doc_stride``, ``max_query_length`` (tokens), ``max_answer_length`` (tokens) and ``n_best``
its windows and answers were evaluated with (``tasks.question_answering.windows``), which an app
that windows reads rather than recomputes (the demo app refuses a QA manifest without them; the
on-device script, which does not window, needs none).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from edgekit.atomic import publish_file
from edgekit.config import EvaluationSection, Format
from edgekit.config.formats import precisions
from edgekit.errors import ModelLoadError
from edgekit.ondevice import bench as ondevice  # numpy-only; the reader and digests shared with the device

MANIFEST = ondevice.MANIFEST
LIBRARIES = ("edgekit", "tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
             "onnxruntime", "onnx", "openvino", "nncf", "tokenizers")


def versions() -> dict[str, str | None]:
    return ondevice.package_versions(LIBRARIES)


def read_manifest(folder: Path) -> dict:
    """``folder``'s edgekit.json, checked (version, required keys, each artifact's precision one
    of its format's); ModelLoadError naming the file."""
    try:
        manifest = ondevice.read_manifest(folder)
    except ondevice.BenchError as err:
        raise ModelLoadError(str(err)) from None
    for i, row in enumerate(manifest["artifacts"]):
        known = [p.value for p in precisions(Format(row["format"]))]  # the format was checked by the reader
        if row["precision"] not in known:
            raise ModelLoadError(f"{Path(folder) / MANIFEST}: artifacts[{i}].precision: expected one of "
                                 f"{', '.join(known)} for {row['format']}, got {row['precision']!r}")
    return manifest


REPORT_SCHEMA = {"task": str, "recipe": {"name": str},
                 "evaluation": {"split": str, "examples": int, "fp32_tensorflow": dict}}
TOKENS_SCHEMA = {"min": int, "median": ondevice.NUM, "max": int}
# Keys the report reads when they are there (manifests written before them lack them).
OPTIONAL_SCHEMA = {"evaluation.tokens": TOKENS_SCHEMA,
                   "evaluation.latency_host": {"cpu": str, "flags": (dict, type(None))},
                   "calibration": {"inputs": int, "tokens": TOKENS_SCHEMA}}
REPORT_ROW_SCHEMA = {"error": (str, type(None)), "bytes": int, "metrics": dict, "latency_ms": dict, "gate": list}


def report_problems(manifest: dict) -> list[str]:
    """What keeps ``write_reports`` from rewriting the reports from ``manifest`` ([] = none): the
    keys and figures it reads, which a hand edit may have broken (``edgekit bench`` checks this
    before it measures, not after)."""
    problems = [p.lstrip(".") for p in ondevice.schema_problems(manifest, REPORT_SCHEMA, "")]
    for where, rule in OPTIONAL_SCHEMA.items():
        parent, _, key = where.rpartition(".")
        holder = manifest.get(parent) if parent else manifest
        if isinstance(holder, dict) and key in holder:
            problems += ondevice.schema_problems(holder[key], rule, where)
    problems += [p for i, row in enumerate(manifest["artifacts"])
                 for p in ondevice.schema_problems(row, REPORT_ROW_SCHEMA, f"artifacts[{i}]")]
    if problems:
        return problems
    figures = [("evaluation.fp32_tensorflow", manifest["evaluation"]["fp32_tensorflow"])]
    for i, row in enumerate(manifest["artifacts"]):
        figures += [(f"artifacts[{i}].metrics", row["metrics"])]
        figures += [(f"artifacts[{i}].latency_ms", {"p50": row["latency_ms"].get("p50")})] if row["latency_ms"] else []
    return [p for where, values in figures
            for p in ondevice.schema_problems(values, dict.fromkeys(values, ondevice.NUM), where)]


def verify(folder: Path, manifest: dict, names) -> None:
    """ModelLoadError naming the first of ``names`` that is missing or changed since the export."""
    try:
        ondevice.verify_files(folder, manifest, names)
    except ondevice.BenchError as err:
        raise ModelLoadError(str(err)) from None


def gate(artifact: dict, reference: dict, evaluation: EvaluationSection) -> list[str]:
    """Reasons ``artifact`` fails the recipe's evaluation gate ([] = passes): ``min_<metric>``
    (``min_cosine``: ``cosine_mean``) and ``max_<metric>_drop`` against the fp32 ``reference``.
    A gated metric that was not measured fails too (the recipe's task checks the keys)."""
    if artifact["status"] != "ok":
        return ["export failed"]
    m, reasons = artifact["metrics"], []
    for key, threshold in evaluation.gates.items():
        drop = key.endswith("_drop")
        metric = "cosine_mean" if key == "min_cosine" else key[4:].removesuffix("_drop")
        if metric not in m or (drop and metric not in reference):
            reasons.append(f"{metric} not measured (for {key})")
        elif drop and reference[metric] - m[metric] > threshold + 1e-12:
            reasons.append(f"{metric} drop {reference[metric] - m[metric]:.4f} > {key} {threshold}")
        elif not drop and m[metric] < threshold:
            reasons.append(f"{metric} {m[metric]:.4f} < {key} {threshold}")
    return reasons


def build_manifest(exporter, artifacts: list, facts: dict, folder: Path) -> dict:
    """The manifest dict: versions, recipe, task, labels, input spec, model facts, artifacts and
    the digests of their files, the tokenizer files and labels.txt in ``folder``."""
    from edgekit.bench.cpu import cpu_flags
    from edgekit.config.enums import Task
    from edgekit.export.pipeline import token_range
    from edgekit.tasks.question_answering import windows

    recipe, config = exporter.recipe, exporter.pretrained.config
    reference = exporter.reference_metrics()
    rows = []
    for artifact in artifacts:
        row = dataclasses.asdict(artifact)
        row["gate"] = gate(row, reference, recipe.evaluation)
        rows.append(row)
    names = [*facts["tokenizer"], *([facts["labels_file"]] if "labels_file" in facts else []),
             *(name for a in artifacts for name in a.files)]
    return {
        "edgekit_manifest": ondevice.MANIFEST_VERSION,
        "versions": versions(),
        "recipe": json.loads(json.dumps(dataclasses.asdict(recipe), default=str)),
        "task": config.task,
        "labels": list(config.id2label),
        "inputs": [{"name": n, "dtype": "int32", "shape": ["batch", "sequence"]} for n in exporter.names],
        "outputs": [o.to_json() for o in exporter.outputs],
        "max_length": exporter.max_length,
        **({"windows": windows(exporter.max_length)} if config.task == Task.QUESTION_ANSWERING.value else {}),
        "evaluation": {"split": recipe.evaluation.split, "examples": len(exporter.evaluation),
                       **_windows(exporter.data), "fp32_tensorflow": reference,
                       "gate": recipe.evaluation.gate.value, "tokens": token_range(exporter.data.lengths),
                       "latency_host": {"cpu": ondevice.cpu_model(), "flags": cpu_flags()}},
        **({"calibration": calibration} if (calibration := exporter.calibration_facts()) else {}),
        **facts,
        "digests": {name: ondevice.file_digest(folder / name) for name in sorted(set(names))},
        "artifacts": rows,
    }


def _windows(data) -> dict:
    """Tasks that split long texts into model windows: how many windows, and how many texts
    needed more than one (never cut silently)."""
    windowed = getattr(data.meta, "windowed", None)
    return {} if windowed is None else {"windows": len(data), "windowed": int(windowed)}


def write_reports(folder: Path, manifest: dict) -> None:
    """edgekit.json, report.json, report.md and report.png from ``manifest``; each file is
    written to a hidden sibling and renamed into place, so a reader never sees half a file."""
    from edgekit.report.tables import write_markdown, write_plot

    report = {"evaluation": manifest["evaluation"], "artifacts": [
        {k: a[k] for k in ("format", "precision", "status", "error", "bytes", "metrics", "latency_ms", "gate")}
        for a in manifest["artifacts"]]}
    writers = {MANIFEST: lambda p: p.write_text(json.dumps(manifest, indent=2, default=str) + "\n"),
               "report.json": lambda p: p.write_text(json.dumps(report, indent=2) + "\n"),
               "report.md": lambda p: write_markdown(p, manifest),
               "report.png": lambda p: write_plot(p, manifest)}
    for name, write in writers.items():
        tmp = folder / f".{name}.tmp{Path(name).suffix}"  # keeps the suffix: matplotlib picks the format by it
        try:
            write(tmp)
            publish_file(tmp, folder / name)
        finally:
            tmp.unlink(missing_ok=True)
