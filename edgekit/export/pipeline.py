"""``edgekit export``: a recipe's model -> every target artifact, each evaluated in its runtime.

Writes OUT atomically: artifacts, tokenizer files, ``labels.txt``, the ``edgekit.json``
manifest and the reports. A target that fails is recorded as failed (with its error) and
the others still run; a run with a failed artifact, or one that misses an enforced evaluation
gate, is not published (``write_export``).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.atomic import atomic_dir, claim_dir
from edgekit.config import ExportTarget, Format, Gate, Recipe, ShapeMode
from edgekit.config.formats import find
from edgekit import tasks
from edgekit.errors import ConfigError, OutputError
from edgekit.export.base import ExportJob, input_names
from edgekit.export.evaluate import latency
from edgekit.ondevice.bench import is_result

BACKENDS = {Format.TFLITE: "edgekit.export.tflite", Format.ONNX: "edgekit.export.onnx",
            Format.OPENVINO: "edgekit.export.openvino"}
LATENCY_TEXTS = 100  # examples the batch-1 latency cycles through


@dataclass
class Artifact:
    format: str
    precision: str
    path: str
    status: str = "ok"
    error: str | None = None
    bytes: int = 0
    files: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)
    runtime: str | None = None
    shapes: str = "dynamic"
    export_seconds: float = 0.0
    details: dict = field(default_factory=dict)


def token_range(lengths) -> dict:
    """{min, median, max} of token counts."""
    lengths = np.asarray(lengths)
    return {"min": int(lengths.min()), "median": float(np.median(lengths)), "max": int(lengths.max())}


class Exporter:
    """Exports one fp32 model to the recipe's targets into a folder, evaluating each artifact
    with its task's metrics on the evaluation split."""

    def __init__(self, recipe: Recipe, pretrained, threads: int = 2, log=print):
        from edgekit._tf import tf_modules
        from edgekit.train.batching import collect

        self.tf, _ = tf_modules()
        self.recipe, self.pretrained, self.threads, self.log = recipe, pretrained, threads, log
        self.task = tasks.for_config(pretrained.config)
        self.outputs = self.task.outputs(pretrained.config)
        self.max_length = min(recipe.model.max_length, pretrained.config.max_positions)
        self.names = input_names(pretrained)
        self.splits = self.task.read_splits(recipe.data) if recipe.data is not None else {}
        self.evaluation = self.splits.get(recipe.evaluation.split)
        if self.evaluation is None:
            raise ConfigError(f"data.{recipe.evaluation.split}: expected the evaluation split "
                              f"(evaluation.split) so every artifact can be measured")
        self.data = self.features(self.evaluation)
        call = self.tf.function(lambda x: pretrained.model(x, training=False), reduce_retracing=True)
        wanted = {o.name for o in self.outputs}
        self.reference = collect(lambda x: {k: v.numpy() for k, v in call(x).items() if k in wanted}, self.data,
                                 self.outputs, batch_size=32)
        self.latency_inputs = [self.data.row_inputs(i) for i in range(min(len(self.data), LATENCY_TEXTS))]
        self._calibration = None

    def features(self, dataset):
        return self.task.features(dataset, self.pretrained.tokenizer, self.max_length, self.names)

    def reference_metrics(self) -> dict:
        return self.task.score(self.evaluation, self.data, self.reference, self.reference)

    def calibration(self, required: bool = True) -> tuple[dict[str, np.ndarray], ...]:
        """Calibration inputs ([1, n] int32 dicts: rows of the train split, else validation, else the
        evaluation split); () when not required and the recipe has neither train nor validation data
        (dynamic int8 uses them only to improve itself, e.g. ONNX SmoothQuant)."""
        if self._calibration is None:
            source = self.splits.get("train") or self.splits.get("validation")
            if source is None and not required:
                return ()
            data = self.features(source if source is not None else self.evaluation)
            count = self.recipe.quantize.calibration_samples if self.recipe.quantize else 256
            rng = np.random.default_rng(self.recipe.seed)
            index = rng.choice(len(data), size=min(count, len(data)), replace=False)
            self._calibration = tuple(data.row_inputs(i) for i in sorted(index))
        return self._calibration

    def calibration_facts(self) -> dict:
        """{"inputs", "tokens": {min, median, max}} of the calibration inputs once drawn, else {}:
        the report compares them with the evaluation's lengths (static int8 ranges are only
        measured on the lengths calibration holds)."""
        if not self._calibration:
            return {}
        return {"inputs": len(self._calibration),
                "tokens": token_range([c["input_ids"].shape[1] for c in self._calibration])}

    def job(self, target: ExportTarget, folder: Path) -> ExportJob:
        row = find(target.format, target.precision)
        export = self.recipe.export
        shapes = target.shapes or export.shapes
        from edgekit.config import QuantizeSection

        train = self.splits.get("train") if row.calibrated else None
        return ExportJob(row=row, pretrained=self.pretrained, folder=folder, seq_len=export.seq_len,
                         static=shapes is ShapeMode.STATIC, batch_size=export.batch_size,
                         calibration=self.calibration(required=row.calibrated) if row.precision.is_int8 else (),
                         quantize=self.recipe.quantize or QuantizeSection(), train=train, threads=self.threads)

    def run_all(self, targets: tuple[ExportTarget, ...], folder: Path) -> list[Artifact]:
        """Every target's artifact: the TFLite builds (whose converter runs mostly outside the GIL,
        on one core) in a worker thread beside the ONNX and OpenVINO builds, then each artifact
        loaded, evaluated and timed in turn, so no latency is taken while anything else runs."""
        from concurrent.futures import ThreadPoolExecutor

        jobs = [self.job(t, folder) for t in targets]  # draws the calibration inputs once, before any thread
        apart = [i for i, t in enumerate(targets) if t.format is Format.TFLITE]
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="edgekit-tflite") as pool:
            pending = {i: pool.submit(self._build, jobs[i]) for i in apart}
            built = {i: self._build(job) for i, job in enumerate(jobs) if i not in pending}
            built.update({i: future.result() for i, future in pending.items()})
        return [self._evaluate(*built[i]) for i in range(len(jobs))]

    def _build(self, job: ExportJob) -> tuple[Artifact, object]:
        """(record, backend's result or None when it failed); never raises."""
        record = Artifact(format=job.row.format.value, precision=job.row.precision.value, path=job.path.name,
                          shapes="static" if job.static else "dynamic")
        began = time.perf_counter()
        try:
            result = importlib.import_module(BACKENDS[job.row.format]).export(job)
        except Exception as err:
            return _failed(record, err), None
        record.export_seconds = round(time.perf_counter() - began, 1)
        record.files = [p.name for p in result.files]
        record.bytes = sum(p.stat().st_size for p in result.files)
        record.details = result.details
        return record, result

    def _evaluate(self, record: Artifact, result) -> Artifact:
        """Load a built artifact in its runtime, score it and time it; logs its summary line."""
        from edgekit.train.batching import collect

        if result is not None:
            try:
                runner = importlib.import_module(BACKENDS[Format(record.format)]).load(result.files[0], self.threads)
                record.runtime = runner.runtime
                outputs = collect(runner, self.data, self.outputs, batch_size=32)
                record.metrics = self.task.score(self.evaluation, self.data, outputs, self.reference)
                record.latency_ms = latency(runner, self.latency_inputs)
            except Exception as err:  # a failed target is reported, the others still run
                _failed(record, err)
        self.log(_summary(record))
        return record


def _failed(record: Artifact, err: Exception) -> Artifact:
    """``record`` marked failed with the error's first line and a short traceback."""
    record.status = "failed"
    lines = str(err).strip().splitlines()
    record.error = f"{type(err).__name__}: {lines[0] if lines else ''}"[:500]
    record.details["traceback"] = traceback.format_exc(limit=6)
    return record


def _summary(a: Artifact) -> str:
    if a.status != "ok":
        return f"✗ {a.format}-{a.precision}: {a.error}"
    score = ", ".join(f"{k} {v:.4f}" for k, v in a.metrics.items() if "_" not in k or k in _HEADLINE)
    return (f"✓ {a.format}-{a.precision}: {a.bytes / 1e6:.1f} MB in {a.export_seconds:.0f} s; {score}; "
            f"p50 {a.latency_ms.get('p50', 0):.2f} ms ({a.runtime})")


_HEADLINE = ("exact_match", "cosine_mean", "cosine_min")  # metrics with "_" that a summary line shows (not f1_<TYPE>)
REWRITTEN = ("edgekit.json", "report.json", "report.md", "report.png", "bench")  # besides the listed files


def is_export(folder: Path) -> bool:
    """An earlier export of edgekit's and nothing else, the only non-empty folder an export replaces:
    its edgekit.json is a JSON object with ``edgekit_manifest``, and every entry is a file that
    manifest lists (digests, artifact and tokenizer files, labels), a report or ``bench/`` results
    (so a note a user dropped into an export folder is never deleted with it)."""
    try:
        manifest = json.loads((Path(folder) / "edgekit.json").read_text(encoding="utf-8"))
        entries = {p.name for p in Path(folder).iterdir()}
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or "edgekit_manifest" not in manifest:
        return False
    listed = set(REWRITTEN)
    with contextlib.suppress(TypeError, AttributeError):  # an older or edited manifest lists less
        listed |= set(manifest.get("digests") or ()) | set(manifest.get("tokenizer") or ())
        listed |= {manifest["labels_file"]} if manifest.get("labels_file") else set()
        listed |= {name for a in manifest.get("artifacts") or () for name in a.get("files") or ()}
    bench = Path(folder) / "bench"
    results = not bench.exists() or (bench.is_dir() and all(is_result(p) for p in bench.iterdir()))
    return entries <= listed and results


_OUT = {"replaces": is_export, "own": "an edgekit export holding only its own files"}  # for claim_dir, atomic_dir


def claim_out(out: Path, inputs: dict[str, Path]) -> None:
    """Refuse, before any work, an ``out`` that an export may not write: one that holds files and
    is not an earlier export, or is, contains or is inside one of ``inputs`` (by description)."""
    claim_dir(out, f"--out {out}", apart=inputs, **_OUT)


def blockers(manifest: dict) -> list[dict]:
    """Artifacts that fail the run: every one that failed to export (a full disk, a converter
    error), whatever the gate, and under ``gate: enforce`` every one that missed the gate."""
    enforced = manifest["evaluation"]["gate"] == Gate.ENFORCE.value
    return [a for a in manifest["artifacts"] if a["status"] != "ok" or (enforced and a["gate"])]


class _Withdrawn(Exception):
    """Leaves ``atomic_dir`` without publishing: a failed run never replaces the last good export."""


def write_export(out: Path, exporter: Exporter, targets: tuple[ExportTarget, ...],
                 manifest_facts: dict) -> tuple[dict, str, bool]:
    """Everything into ``out`` atomically; returns the manifest (also written as edgekit.json),
    the text of report.md and whether ``out`` was written: a run with ``blockers`` is not (its
    temporary folder is removed, whatever was at ``out`` stays exactly as it was)."""
    from edgekit.report.manifest import build_manifest, write_reports

    try:
        with atomic_dir(out, f"--out {out}", **_OUT) as tmp:
            exporter.pretrained.tokenizer.save(tmp)
            facts = {**manifest_facts, "tokenizer": sorted(p.name for p in tmp.iterdir())}
            if exporter.pretrained.config.id2label:
                (tmp / "labels.txt").write_text("\n".join(exporter.pretrained.config.id2label) + "\n")
                facts["labels_file"] = "labels.txt"
            artifacts = exporter.run_all(targets, tmp)
            manifest = build_manifest(exporter, artifacts, facts, tmp)
            write_reports(tmp, manifest)
            report = (tmp / "report.md").read_text()
            if blockers(manifest):
                raise _Withdrawn
    except _Withdrawn:
        return manifest, report, False
    except OSError as err:  # e.g. a full disk while writing the tokenizer or the reports
        raise OutputError(f"--out {out}: could not write the export ({err.strerror or err}); "
                          f"nothing was published, {out} is as it was") from None
    return manifest, report, True
