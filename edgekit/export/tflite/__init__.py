"""TFLite artifacts (fp32, fp16, dynamic int8, full int8, QAT int8) run with ai-edge-litert.

``export(job)`` writes ``job.path`` and returns its ``ExportResult``; ``load(path, threads)``
returns a runner (export/base.py's contract). Modules, one concern each:

* ``convert``: the export signature (int32 inputs and the task's outputs by name; dynamic
  or static shapes) and the float conversions of the tf-keras model (fp32 / fp16 / int8-dynamic);
* ``graph`` + ``transforms``: the encoder rebuilt for int8 (bounded mask bias, LayerNorm
  statistics as FULLY_CONNECTED ops) and the function-preserving weight rewrites that
  flatten activation ranges (residual-stream outliers, query/key, value, SmoothQuant);
* ``calibrate``: calibration statistics, range choice (percentile / MSE / min-max) and the
  MLIR quantizer; ``int8``: the full-int8 pipeline; ``qat``: tfmot quantization-aware
  training and its conversion;
* ``inspect``: op counts and tensor dtypes of the written graph (is it integer-only?);
* ``runner``: the ai-edge-litert interpreter wrapper; ``metadata``: TFLite model metadata
  (tokenizer vocab, labels, input and output roles) for LiteRT / MediaPipe text tooling and
  the outputs record (``base.outputs_record``) the runner reads.

Importing this package does not import TensorFlow; each function imports what it needs.
"""

from __future__ import annotations

import time
from pathlib import Path

from edgekit.config.enums import Format, Precision
from edgekit.export.base import ExportJob, ExportResult


def export(job: ExportJob) -> ExportResult:
    from edgekit.export.tflite import convert, inspect, metadata

    if job.row.format is not Format.TFLITE:
        raise ValueError(f"the tflite exporter cannot write {job.row.key}")
    precision = job.row.precision
    pretrained = job.pretrained
    started = time.perf_counter()
    job.folder.mkdir(parents=True, exist_ok=True)
    details: dict = {"shape": [job.batch_size, job.seq_len] if job.static else [-1, -1], "static": job.static}
    if precision in (Precision.FP32, Precision.FP16, Precision.INT8_DYNAMIC):
        concrete, module = convert.signature(convert.keras_fn(pretrained.model, job.output_names), job.input_names,
                                             static=job.static, batch_size=job.batch_size, seq_len=job.seq_len,
                                             track=pretrained.model)
        data = convert.convert_float(concrete, module, precision)
    elif precision is Precision.INT8_FULL:
        from edgekit.export.tflite import int8

        options = int8.Int8Options.from_quantize(job.quantize, pretrained.config.mask_bias)
        data, extra = int8.full_int8(pretrained, list(job.calibration), options, static=job.static,
                                     batch_size=job.batch_size, seq_len=job.seq_len)
        details.update(extra)
    elif precision is Precision.INT8_QAT:
        data, extra = _qat(job)
        details.update(extra)
    else:
        raise ValueError(f"the tflite exporter does not write {precision.value}")
    info = metadata.write(job.path, data, pretrained, job.outputs, job.row.key)
    details.update(inspect.op_listing(data))
    details["metadata"] = {"inputs": [name for name, _ in info.inputs], "outputs": [name for name, _ in info.outputs],
                           "files": sorted(info.files)}
    details["bytes"] = job.path.stat().st_size
    details["seconds"] = round(time.perf_counter() - started, 1)
    return ExportResult(files=[job.path], details=details)


def _qat(job: ExportJob) -> tuple[bytes, dict]:
    from edgekit.export.tflite import int8, qat

    if job.train is None or len(job.train) == 0:
        raise ValueError("int8-qat needs the task's training data (ExportJob.train)")
    if not job.calibration:
        raise ValueError("int8-qat needs calibration inputs for its conversion (ExportJob.calibration)")
    options = int8.Int8Options.from_quantize(job.quantize, job.pretrained.config.mask_bias)
    model = qat.quantize_aware_model(job.pretrained, options.mask_bias)
    max_length = min(job.seq_len, job.pretrained.config.max_positions)
    result = qat.train(model, job.pretrained, job.train, job.quantize.qat, max_length=max_length)
    batches = int8.calibration_batches(list(job.calibration)[: options.calibration_samples], static=job.static,
                                       batch_size=job.batch_size, seq_len=job.seq_len,
                                       pad_id=job.pretrained.tokenizer.pad_id)
    data = qat.convert(model, job.input_names, job.output_names, batches, options, static=job.static,
                       batch_size=job.batch_size, seq_len=job.seq_len)
    last = result.history[-1] if result.history else {}
    return data, {"qat": {"steps": result.steps, "seconds": round(result.seconds, 1), "mask_bias": options.mask_bias,
                          "final_loss": last.get("loss"), "calibration_inputs": len(batches)}}


def load(path: str | Path, threads: int = 1):
    from edgekit.export.tflite.runner import LiteRTRunner

    return LiteRTRunner(path, threads)


__all__ = ["export", "load"]
