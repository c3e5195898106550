"""edgekit's ONNX graph -> OpenVINO IR (fp32 / fp16 weights / int8 via NNCF / int8 weights).

The graph is ``onnx.graph.build_model``'s, written from the weights in ~2 s (tf2onnx's trace of
the tf-keras model took 30-50 s per target for MiniLM), with dynamic [batch, sequence] inputs,
reshaped afterwards for a static target. OpenVINO's ONNX frontend takes its ``com.microsoft``
ops with ``MultiHeadAttention`` (it becomes OpenVINO's ScaledDotProductAttention with the
graph's padding bias); the packed ``Attention`` op converts with a mask constant of its own
(``mask_filter_value`` ignored: a -1 bias came out as -10000's), which would lose the bounded
``EXPORT_MASK_BIAS`` that int8 needs. Q, K and V are three MatMuls ("separate"): NNCF then
smooths and quantizes each with its own ranges (MiniLM int8 cosine mean / min 0.99756 / 0.99495,
one fused Q/K/V MatMul 0.99750 / 0.99484; fp32 latency the same). Outputs
keep the task's names through OpenVINO's ONNX frontend, NNCF and ``reshape``; the outputs
record (``base.outputs_record``) travels in the IR's ``rt_info`` (``RT_INFO``), where the
runner reads which are per token. int8-weights is NNCF weight compression (per-channel
asymmetric u8 weights, f16 scales, decompressed to float inside the MatMul): a quarter of the
fp32 file at fp32 speed, for CPUs without VNNI, where int8-static is slower than fp32 (MiniLM on
an AVX2 EPYC, batch 1, 24 tokens: fp32 8.3 ms, int8-static 11.0 ms).
"""

from __future__ import annotations

import contextlib
import io
import logging

from edgekit.config import Precision
from edgekit.export.base import OUTPUTS_KEY, ExportJob, ExportResult, outputs_record

RT_INFO = ["edgekit", OUTPUTS_KEY]  # rt_info path of the outputs record
# Additive attention-mask constant of every OpenVINO precision (the recipe's quantize.mask_bias
# overrides it). -30 gives float outputs equal to -10000's (exp(-30) ~ 1e-13 of a real token's
# weight), but keeps the masked scores inside a range that int8 activations can represent;
# -10000 sends full-int8 BERT to chance accuracy (shared/notes/full-int8-findings.md).
EXPORT_MASK_BIAS = -30.0


def to_openvino(job: ExportJob):
    """The fp32 ``ov.Model`` (dynamic shapes), inputs and outputs named as the contract says."""
    import openvino as ov

    from edgekit.export.onnx.graph import GraphOptions, build_model
    from edgekit.models.checkpoint import collect_weights

    config = job.pretrained.config
    bias = EXPORT_MASK_BIAS if job.quantize.mask_bias is None else job.quantize.mask_bias
    options = GraphOptions(attention="separate", mask_bias=bias)
    proto = build_model(config, collect_weights(job.pretrained.model, config), options)
    return ov.convert_model(io.BytesIO(proto.SerializeToString()))


def quantize_int8(model, job: ExportJob):
    """NNCF post-training int8 with the transformer preset (keeps LayerNorm/Softmax/GELU float);
    the pooling and task-head MatMuls (``onnx.graph.head_nodes``) stay float, as in the ONNX int8."""
    import nncf

    if not job.calibration:
        raise ValueError("int8-static needs calibration inputs")
    names = [p.get_any_name() for p in model.inputs]
    dataset = nncf.Dataset([{n: item[n] for n in names} for item in job.calibration])
    # NNCF's own bias-correction default: passing fast_bias_correction=True explicitly zeroed
    # every activation range of a tiny test encoder (all outputs 0) with nncf 3.4.
    with _quiet_nncf():
        return nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER,
                             preset=nncf.QuantizationPreset.MIXED, subset_size=len(job.calibration),
                             ignored_scope=_head_scope(model, job))


def compress_int8_weights(model, job: ExportJob):
    """NNCF weight compression: every MatMul and embedding-table weight to per-channel asymmetric
    int8 (Optimum's ``--weight-format int8``), no calibration; activations and compute stay float.
    The pooling and task-head MatMuls keep float weights, as in ``quantize_int8``."""
    import nncf

    with _quiet_nncf():
        return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM,
                                     ignored_scope=_head_scope(model, job))


def _head_scope(model, job: ExportJob):
    """The ops of ``onnx.graph.head_nodes`` in ``model``, under the names OpenVINO gave them: a
    MatMul whose bias Add folded away (an all-zero bias) carries the Add's name, its own name
    then only among its output's tensor names."""
    import nncf

    from edgekit.export.onnx.graph import head_nodes

    head = set(head_nodes(job.pretrained.config))
    return nncf.IgnoredScope(names=[op.get_friendly_name() for op in model.get_ops() if op.get_type_name() == "MatMul"
                                    and head & {op.get_friendly_name(), *op.output(0).get_names()}])


@contextlib.contextmanager
def _quiet_nncf():
    """NNCF's INFO lines (every ignored node, a bitwidth table) off for the duration."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def export(job: ExportJob) -> ExportResult:
    import openvino as ov

    model = to_openvino(job)
    if job.row.precision is Precision.INT8_STATIC:
        model = quantize_int8(model, job)
    elif job.row.precision is Precision.INT8_WEIGHTS:
        model = compress_int8_weights(model, job)
    if job.static:
        model.reshape({p.get_any_name(): [job.batch_size, job.seq_len] for p in model.inputs})
    model.set_rt_info(outputs_record(job.outputs), RT_INFO)
    job.folder.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, job.path, compress_to_fp16=job.row.precision is Precision.FP16)
    ops: dict[str, int] = {}
    for op in model.get_ordered_ops():
        ops[op.get_type_name()] = ops.get(op.get_type_name(), 0) + 1
    details = {"ops": dict(sorted(ops.items())), "openvino": ov.get_version(),
               "fake_quantize": ops.get("FakeQuantize", 0)}
    return ExportResult(files=[job.path, job.path.with_suffix(".bin")], details=details)
