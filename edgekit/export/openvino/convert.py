"""tf-keras model -> OpenVINO IR (fp32 / fp16 weights / int8 via NNCF).

The model is converted with dynamic [batch, sequence] inputs and reshaped afterwards for a
static target: a graph traced at a fixed length bakes that length into the position-table
slice and cannot be reshaped later. Outputs keep the task's names through tf2onnx,
OpenVINO's ONNX frontend, NNCF and ``reshape``; the outputs record (``base.outputs_record``)
travels in the IR's ``rt_info`` (``RT_INFO``), where the runner reads which are per token.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.config import Precision
from edgekit.export.base import OUTPUTS_KEY, ExportJob, ExportResult, outputs_record
from edgekit.export.serving import serving_function, with_mask_bias

RT_INFO = ["edgekit", OUTPUTS_KEY]  # rt_info path of the outputs record


def to_openvino(job: ExportJob):
    """The fp32 ``ov.Model`` (dynamic shapes), inputs and outputs named as the contract says.

    Converted through a plain tf2onnx ONNX graph: OpenVINO's TensorFlow frontend named the
    inputs "<name>:0" and, in some processes, NNCF calibration of its graph collected empty
    activation ranges (every output 0); the ONNX route gave stable, exact results.
    """
    import tempfile

    import openvino as ov
    import tf2onnx

    pretrained = with_mask_bias(job.pretrained, job.quantize.mask_bias)
    fn = serving_function(pretrained)
    proto, _ = tf2onnx.convert.from_function(fn, input_signature=fn.input_signature, opset=17)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(proto.SerializeToString())
        return ov.convert_model(path)


def quantize_int8(model, job: ExportJob):
    """NNCF post-training int8 with the transformer preset (keeps LayerNorm/Softmax/GELU float)."""
    import nncf

    if not job.calibration:
        raise ValueError("int8-static needs calibration inputs")
    names = [p.get_any_name() for p in model.inputs]
    dataset = nncf.Dataset([{n: item[n] for n in names} for item in job.calibration])
    # NNCF's own bias-correction default: passing fast_bias_correction=True explicitly zeroed
    # every activation range of a tiny test encoder (all outputs 0) with nncf 3.4.
    return nncf.quantize(model, dataset, model_type=nncf.ModelType.TRANSFORMER,
                         preset=nncf.QuantizationPreset.MIXED, subset_size=len(job.calibration))


def export(job: ExportJob) -> ExportResult:
    import openvino as ov

    model = to_openvino(job)
    if job.row.precision is Precision.INT8_STATIC:
        model = quantize_int8(model, job)
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

