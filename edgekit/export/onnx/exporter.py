"""One ONNX export job: fp32 graph -> optional int8 -> optional fixed shapes -> artifact + details.

Which graph each precision gets, and why (numbers in benchmarks/onnx_latency.py's results):

- fp32: packed ``Attention`` (one GEMM for Q/K/V inside the fused op).
- int8-dynamic: the same graph through ``quantize_dynamic``: ``QAttention`` and
  ``DynamicQuantizeMatMul`` (every weight GEMM in int8, activations quantized per call).
- int8-static: ``attention="split"`` (Q/K/V as a MatMul that QDQ can quantize; onnxruntime's QDQ
  quantizer has no rule for the packed ``Attention`` op) through ``quantize_static``.

Both int8 precisions apply SmoothQuant (``smoothing``) when the job carries calibration inputs:
static int8 always does (it cannot run without them); dynamic int8 does when the export loop
passes them, and falls back to plain dynamic quantization (lower fidelity, reported in
``details["smoothquant"]``) when it does not.

Both int8 precisions then serve the word-embedding lookup from an int8 table with a per-row
scale (``embedding``; the fp32 table was 80% of MiniLM's dynamic int8 file), recorded in
``details["embedding"]``.

Static shapes are applied after quantization (calibration runs the dynamic graph on
natural-length inputs, so padding never enters the activation ranges); the graph's only shape
op (MobileBERT's) reads the inputs, so fixing the input dims is all a static artifact needs.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from edgekit.atomic import publish_file
from edgekit.config.enums import Precision
from edgekit.errors import EdgekitError
from edgekit.export.base import OUTPUTS_KEY, ExportJob, ExportResult, outputs_record
from edgekit.export.onnx import analysis
from edgekit.export.onnx.embedding import quantize_word_embeddings
from edgekit.export.onnx.graph import FUSED_OPS, OPSET, GraphOptions, build_model, head_nodes, pin_input_shapes
from edgekit.export.onnx.quantize import DynamicSettings, StaticSettings, quantize_dynamic_int8, quantize_static_int8
from edgekit.export.onnx.smoothing import DEFAULT_ALPHA, smoothing_factors

# Ops that must not appear in the runtime graph of a fully fused encoder.
UNFUSED_OPS = ("Softmax", "Erf", "LayerNormalization", "ReduceMean", "Pow")
GRAPH_BY_PRECISION = {Precision.FP32: "packed", Precision.INT8_DYNAMIC: "packed", Precision.INT8_STATIC: "split"}


def _float_node_names(model, keep: tuple[str, ...]) -> tuple[str, ...]:
    """Node names for ``quantize.keep_float_ops``: each entry is a node name (e.g.
    ``layer_5_output``) or an op type (e.g. ``Attention``: every node of that type)."""
    by_type: dict[str, list[str]] = {}
    names = set()
    for node in model.graph.node:
        by_type.setdefault(node.op_type, []).append(node.name)
        names.add(node.name)
    chosen: list[str] = []
    for entry in keep:
        if entry in names:
            chosen.append(entry)
        elif entry in by_type:
            chosen.extend(by_type[entry])
        else:
            raise EdgekitError(f"quantize.keep_float_ops: {entry!r} is neither a node name nor an op type of "
                               f"the ONNX graph (node names look like layer_0_intermediate; op types: "
                               f"{', '.join(sorted(by_type))})")
    return tuple(dict.fromkeys(chosen))


def _smoothquant(alpha: float | None, samples) -> dict:
    """SmoothQuant settings for an int8 export: on whenever calibration inputs exist, with the
    recipe's ``quantize.smoothquant_alpha`` or ``DEFAULT_ALPHA`` (measured best for MiniLM)."""
    alpha = DEFAULT_ALPHA if alpha is None else float(alpha)
    if not samples:
        return {"applied": False, "alpha": alpha, "why": "no calibration inputs"}
    return {"applied": True, "alpha": alpha, "calibration_samples": len(samples)}


def _record_outputs(model, record: str) -> None:
    """The outputs record (``base.outputs_record``) as the model's ``metadata_props`` entry
    (onnxruntime: ``session.get_modelmeta().custom_metadata_map``)."""
    kept = [p for p in model.metadata_props if p.key != OUTPUTS_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    model.metadata_props.add(key=OUTPUTS_KEY, value=record)


def _save(model, path: Path) -> None:
    """Write ``model`` to ``path`` via a temporary sibling, so a reader never sees half a file."""
    import onnx

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        onnx.save_model(model, tmp)
        publish_file(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _describe(model, path: Path, precision: Precision) -> dict:
    """Op counts in the file and at run time, fusions, and (int8) integer vs float compute."""
    ops = analysis.op_counts(model)
    runtime = analysis.runtime_op_counts(path)
    groups = analysis.split_ops(runtime)
    fused_file = {op: n for op, n in ops.items() if op in FUSED_OPS}
    details = {
        "ops": ops,
        "runtime_ops": runtime,
        "fusions": {op: n for op, n in runtime.items() if op in analysis.FUSED_KERNELS},
        "fused_in_file": fused_file,
        "unfused_at_runtime": {op: n for op, n in runtime.items() if op in UNFUSED_OPS},
        "size_bytes": path.stat().st_size,
    }
    if precision is not Precision.FP32:
        details["quantized_ops"] = groups["integer"]
        details["quantize_ops"] = groups["quantize"]
        details["float_ops"] = groups["float"]
    return details


def export(job: ExportJob) -> ExportResult:
    import onnx

    from edgekit.models.checkpoint import collect_weights

    precision = job.row.precision
    if precision not in GRAPH_BY_PRECISION:
        raise EdgekitError(f"ONNX export has no {precision.value} precision")
    config = job.pretrained.config
    q = job.quantize
    int8 = precision is not Precision.FP32
    options = GraphOptions(attention=GRAPH_BY_PRECISION[precision],
                           mask_bias=q.mask_bias if int8 and q.mask_bias is not None else None)
    weights = collect_weights(job.pretrained.model, config)
    model = build_model(config, weights, options)
    shapes = f"static [{job.batch_size}, {job.seq_len}]" if job.static else "dynamic [batch, sequence]"
    details: dict = {"opset": OPSET, "attention": options.attention, "shapes": shapes,
                     "mask_bias": config.mask_bias if options.mask_bias is None else options.mask_bias}

    samples = job.calibration[: q.calibration_samples]
    if int8:
        details["smoothquant"] = _smoothquant(q.smoothquant_alpha, samples)
        present = {node.name for node in model.graph.node}
        kept = tuple(n for n in head_nodes(config) if n in present)
        exclude = kept + _float_node_names(model, tuple(q.keep_float_ops))
        if samples:
            factors = smoothing_factors(model, samples, details["smoothquant"]["alpha"])
            # a GEMM kept float gains nothing from smoothing (the packed Attention op is the qkv GEMM)
            factors = {k: v for k, v in factors.items() if k not in exclude
                       and k.replace("_qkv", "_attention") not in exclude}
            options = dataclasses.replace(options, smoothing=factors)
            model = build_model(config, weights, options)
        with tempfile.TemporaryDirectory(prefix="edgekit-onnx-") as tmp:
            fp32, out = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            onnx.save_model(model, str(fp32))
            if precision is Precision.INT8_DYNAMIC:
                used = quantize_dynamic_int8(fp32, out, DynamicSettings(per_channel=q.per_channel,
                                                                         nodes_to_exclude=exclude))
            else:
                used = quantize_static_int8(fp32, out, samples, job.input_names, StaticSettings(
                    calibration=q.calibration, percentile=q.percentile, per_channel=q.per_channel,
                    nodes_to_exclude=exclude))
            model = onnx.load(str(out))
        details["quantization"] = used
        details["embedding"] = quantize_word_embeddings(model)
    if job.static:
        pin_input_shapes(model, job.batch_size, job.seq_len)
    _record_outputs(model, outputs_record(job.outputs))
    _save(model, job.path)
    details.update(_describe(model, job.path, precision))
    return ExportResult(files=[job.path], details=details)
