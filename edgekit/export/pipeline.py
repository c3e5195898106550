"""``edgekit export``: a recipe's model -> every target artifact, each evaluated in its runtime.

Writes OUT atomically: artifacts, tokenizer files, ``labels.txt``, the ``edgekit.json``
manifest and the reports. A target that fails is recorded as failed (with its error) and
the others still run; the evaluation gate decides the exit status.
"""

from __future__ import annotations

import hashlib
import importlib
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgekit.atomic import atomic_dir
from edgekit.config import ExportTarget, Format, Recipe, ShapeMode
from edgekit.config.formats import find
from edgekit.data import TextDataset, load_splits
from edgekit.errors import ConfigError
from edgekit.export.base import ExportJob, input_names
from edgekit.export.evaluate import batched_outputs, compare, encode_each, latency

BACKENDS = {Format.TFLITE: "edgekit.export.tflite", Format.ONNX: "edgekit.export.onnx",
            Format.OPENVINO: "edgekit.export.openvino"}
LATENCY_TEXTS = 100


@dataclass
class Artifact:
    format: str
    precision: str
    path: str
    status: str = "ok"
    error: str | None = None
    bytes: int = 0
    sha256: str | None = None
    files: list[str] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)
    runtime: str | None = None
    shapes: str = "dynamic"
    export_seconds: float = 0.0
    details: dict = field(default_factory=dict)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _split(recipe: Recipe, name: str) -> TextDataset | None:
    return load_splits(recipe.data).get(name) if recipe.data is not None else None


def _calibration_texts(recipe: Recipe) -> list[str]:
    splits = load_splits(recipe.data) if recipe.data is not None else {}
    source = splits.get("train") or splits.get("validation") or splits.get(recipe.evaluation.split)
    if source is None:
        raise ConfigError("data: expected a train (or validation) split to calibrate int8 targets on")
    count = recipe.quantize.calibration_samples if recipe.quantize else 256
    rng = np.random.default_rng(recipe.seed)
    index = rng.choice(len(source), size=min(count, len(source)), replace=False)
    return [source.texts[i] for i in sorted(index)]


class Exporter:
    """Exports one fp32 model to the recipe's targets into a folder, evaluating each artifact."""

    def __init__(self, recipe: Recipe, pretrained, threads: int = 2, log=print):
        from edgekit._tf import tf_modules

        self.tf, _ = tf_modules()
        self.recipe, self.pretrained, self.threads, self.log = recipe, pretrained, threads, log
        self.classify = bool(pretrained.config.num_labels)
        self.max_length = min(recipe.model.max_length, pretrained.config.max_position_embeddings)
        self.names = input_names(pretrained)
        self.evaluation = _split(recipe, recipe.evaluation.split)
        if self.evaluation is None:
            raise ConfigError(f"data.{recipe.evaluation.split}: expected the evaluation split "
                              f"(evaluation.split) so every artifact can be measured")
        texts = list(self.evaluation.texts)
        call = self.tf.function(lambda x: pretrained.model(x, training=False), reduce_retracing=True)
        key = "logits" if self.classify else "pooled"
        self.reference = batched_outputs(lambda x: call(x)[key].numpy(), pretrained.tokenizer, texts,
                                         self.max_length, self.names)
        self.latency_inputs = encode_each(pretrained.tokenizer, texts[:LATENCY_TEXTS], self.max_length, self.names)
        self._calibration = None

    def reference_metrics(self) -> dict:
        return compare(self.reference, self.reference, self.evaluation.labels, self.classify)

    def calibration(self, required: bool = True) -> tuple[dict[str, np.ndarray], ...]:
        """Calibration inputs ([1, n] int32 dicts); () when not required and the recipe has no data
        (dynamic int8 uses them only to improve itself, e.g. ONNX SmoothQuant)."""
        if self._calibration is None:
            if not required and (self.recipe.data is None or not (self.recipe.data.train or self.recipe.data.validation)):
                return ()
            texts = _calibration_texts(self.recipe)
            self._calibration = tuple(encode_each(self.pretrained.tokenizer, texts, self.max_length, self.names))
        return self._calibration

    def job(self, target: ExportTarget, folder: Path) -> ExportJob:
        row = find(target.format, target.precision)
        export = self.recipe.export
        shapes = target.shapes or export.shapes
        from edgekit.config import QuantizeSection

        train = _split(self.recipe, "train") if row.calibrated and self.classify else None
        return ExportJob(row=row, pretrained=self.pretrained, folder=folder, seq_len=export.seq_len,
                         static=shapes is ShapeMode.STATIC, batch_size=export.batch_size,
                         calibration=self.calibration(required=row.calibrated) if row.precision.is_int8 else (),
                         quantize=self.recipe.quantize or QuantizeSection(), train=train, threads=self.threads)

    def run(self, target: ExportTarget, folder: Path) -> Artifact:
        """Export, load in the runtime, evaluate, time; never raises for a failing target."""
        job = self.job(target, folder)
        record = Artifact(format=target.format.value, precision=target.precision.value, path=job.path.name,
                          shapes="static" if job.static else "dynamic")
        began = time.perf_counter()
        try:
            backend = importlib.import_module(BACKENDS[target.format])
            result = backend.export(job)
            record.export_seconds = round(time.perf_counter() - began, 1)
            record.files = [p.name for p in result.files]
            record.bytes = sum(p.stat().st_size for p in result.files)
            record.sha256 = _sha256(result.files[0])
            record.details = result.details
            runner = backend.load(result.files[0], self.threads)
            record.runtime = runner.runtime
            outputs = batched_outputs(runner, self.pretrained.tokenizer, list(self.evaluation.texts),
                                      self.max_length, runner.input_names)
            record.metrics = compare(outputs, self.reference, self.evaluation.labels, self.classify)
            record.latency_ms = latency(runner, self.latency_inputs)
        except Exception as err:  # a failed target is reported, the others still run
            record.status = "failed"
            lines = str(err).strip().splitlines()
            record.error = f"{type(err).__name__}: {lines[0] if lines else ''}"[:500]
            record.details["traceback"] = traceback.format_exc(limit=6)
        self.log(_summary(record))
        return record


def _summary(a: Artifact) -> str:
    if a.status != "ok":
        return f"✗ {a.format}-{a.precision}: {a.error}"
    score = ", ".join(f"{k} {v:.4f}" for k, v in a.metrics.items())
    return (f"✓ {a.format}-{a.precision}: {a.bytes / 1e6:.1f} MB in {a.export_seconds:.0f} s; {score}; "
            f"p50 {a.latency_ms.get('p50', 0):.2f} ms ({a.runtime})")


def write_export(out: Path, exporter: Exporter, targets: tuple[ExportTarget, ...], manifest_facts: dict) -> dict:
    """Everything into ``out`` atomically; returns the manifest (also written as edgekit.json)."""
    from edgekit.report.manifest import build_manifest, write_reports

    with atomic_dir(out) as tmp:
        exporter.pretrained.tokenizer.save(tmp)
        facts = {**manifest_facts, "tokenizer": sorted(p.name for p in tmp.iterdir())}
        if exporter.classify:
            (tmp / "labels.txt").write_text("\n".join(exporter.pretrained.config.id2label) + "\n")
            facts["labels_file"] = "labels.txt"
        artifacts = [exporter.run(t, tmp) for t in targets]
        manifest = build_manifest(exporter, artifacts, facts)
        write_reports(tmp, manifest)
    return manifest
