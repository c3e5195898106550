"""int8 versions of the fp32 graph (``graph.build_model``) with onnxruntime's quantization tools.

Dynamic int8 (``quantize_dynamic``): int8 weights, activations quantized per call from their
own min/max. ``Attention`` becomes ``QAttention`` and each weight ``MatMul`` becomes
MatMulInteger + scale ops that onnxruntime fuses into ``DynamicQuantizeMatMul`` at load time.
No activation range is fixed in advance, so nothing calibrated can be clipped.

Static int8 (``quantize_static``, QDQ): activation scales fixed by calibration. Only the weight
MatMuls are quantized (Q/K/V projection, attention output, FFN in/out; the graph is built with
``attention="split"`` so the Q/K/V projection is a MatMul). Everything that broke plain QDQ on
MiniLM (cosine 0.38) stays float: LayerNorm statistics on the residual stream with its outlier
channels, softmax and the additive mask, GELU, residual adds, pooling.

Both use uint8 activations and int8 weights (U8S8, what onnxruntime's x86 kernels run), weights
per output channel (per-tensor weights: cosine 0.96 dynamic / 0.73 static on MiniLM) and
``reduce_range`` (7-bit weights) by default: on x86 CPUs without VNNI (AVX2, early AVX-512)
onnxruntime's U8S8 GEMM uses VPMADDUBSW, whose int16 pair sums saturate with full 8-bit
weights, and int8 BERT models give wrong results there (onnxruntime issues #5849, #6004);
7-bit weights cannot saturate. Cost measured on a VNNI CPU, all-MiniLM-L6-v2 dynamic int8:
cosine 0.9980 -> 0.9967. ``QAttention`` always uses 7-bit weights (onnxruntime's choice).
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from edgekit.config.enums import Calibration
from edgekit.errors import EdgekitError

DYNAMIC_OP_TYPES = ("MatMul", "Attention")
STATIC_OP_TYPES = ("MatMul",)
# edgekit's calibration names -> onnxruntime CalibrationMethod member names. onnxruntime has no
# MSE calibrator; Entropy (KL divergence between float and quantized histograms) is the
# error-minimising one it has.
CALIBRATION_METHODS = {Calibration.MINMAX: "MinMax", Calibration.PERCENTILE: "Percentile",
                       Calibration.MSE: "Entropy"}


@dataclass(frozen=True)
class DynamicSettings:
    per_channel: bool = True
    reduce_range: bool = True
    nodes_to_exclude: tuple[str, ...] = ()
    op_types: tuple[str, ...] = DYNAMIC_OP_TYPES


@dataclass(frozen=True)
class StaticSettings:
    calibration: Calibration = Calibration.PERCENTILE
    percentile: float = 99.99
    per_channel: bool = True
    reduce_range: bool = True
    nodes_to_exclude: tuple[str, ...] = ()
    op_types: tuple[str, ...] = STATIC_OP_TYPES


def quantize_dynamic_int8(fp32: Path, out: Path, settings: DynamicSettings = DynamicSettings()) -> dict:
    """Write the dynamic-int8 model of ``fp32`` to ``out``; returns the settings used."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet():
        quantize_dynamic(
            str(fp32), str(out),
            op_types_to_quantize=list(settings.op_types),
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(settings.nodes_to_exclude),
            extra_options={"MatMulConstBOnly": True},  # the mean-pooling MatMul (two activations) stays float
        )
    return {"method": "dynamic", "op_types_to_quantize": list(settings.op_types),
            "per_channel": settings.per_channel, "reduce_range": settings.reduce_range,
            "weights": "int8", "activations": "uint8 (per call)",
            "nodes_excluded": list(settings.nodes_to_exclude)}


@contextlib.contextmanager
def _quiet():
    """Hide onnxruntime's calibration progress prints and its "consider pre-processing" advice
    (its shape-inference pre-pass cannot see through the com.microsoft ops anyway)."""
    class _Advice(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "pre-processing" not in record.getMessage()

    root, advice = logging.getLogger(), _Advice()
    root.addFilter(advice)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.removeFilter(advice)


class _CalibrationReader:
    """onnxruntime CalibrationDataReader over a list of input dicts. ``set_range`` lets the
    calibrator take one sample at a time and merge its ranges / histograms: onnxruntime's
    histogram collector stacks the outputs of one collection into an array, so samples of
    different lengths cannot share one, and all samples at once would hold every intermediate
    tensor of every sample in memory."""

    def __init__(self, samples: Sequence[dict[str, np.ndarray]], names: Sequence[str]):
        self.samples = [{n: np.ascontiguousarray(s[n], dtype=np.int32) for n in names} for s in samples]
        self.start, self.end, self.position = 0, len(self.samples), 0

    def __len__(self) -> int:
        return len(self.samples)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.start, self.end, self.position = start_index, end_index, start_index

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self.position >= self.end:
            return None
        self.position += 1
        return self.samples[self.position - 1]


def quantize_static_int8(fp32: Path, out: Path, calibration: Sequence[dict[str, np.ndarray]],
                         input_names: Sequence[str], settings: StaticSettings = StaticSettings(),
                         cache: Path | None = None) -> dict:
    """Write the QDQ static-int8 model of ``fp32`` to ``out``, calibrated on ``calibration``
    (int32 input dicts, any lengths). ``cache``: a JSON file of calibrated ranges to reuse (same
    model, same method) or to create. Returns the settings used."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if not calibration:
        raise EdgekitError("int8-static ONNX export needs calibration inputs (representative texts)")
    method = getattr(CalibrationMethod, CALIBRATION_METHODS[Calibration(settings.calibration)])
    extra: dict = {
        "MatMulConstBOnly": True,  # never the mean-pooling MatMul of two activations
        "CalibStridedMinMax": 1,  # despite the name: any method; one sample per collection
        # MatMul outputs stay float: onnxruntime then runs DQ -> MatMul as MatMulIntegerToFloat
        # (int8 GEMM, float result) instead of QLinearMatMul + an extra Q/DQ round trip that
        # would round the attention output and FFN results before the float residual adds.
        "OpTypesToExcludeOutputQuantization": ["MatMul"],
    }
    if method == CalibrationMethod.Percentile:
        extra["CalibPercentile"] = settings.percentile
        extra["CalibTensorRangeSymmetric"] = False  # post-GELU activations are nearly all positive
    with _quiet():
        quantize_static(
            str(fp32), str(out), _CalibrationReader(calibration, input_names),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(settings.op_types),
            per_channel=settings.per_channel,
            reduce_range=settings.reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=list(settings.nodes_to_exclude),
            calibrate_method=method,
            extra_options=extra,
            calibration_cache_path=cache,
        )
    import onnx

    model = onnx.load(str(out))
    rewired = _float_for_float_consumers(model, settings.op_types, settings.nodes_to_exclude)
    onnx.save_model(model, str(out))
    used = {"method": "static (QDQ)", "calibration": Calibration(settings.calibration).value,
            "onnxruntime_calibration": method.name, "calibration_samples": len(calibration),
            "op_types_to_quantize": list(settings.op_types), "per_channel": settings.per_channel,
            "reduce_range": settings.reduce_range, "weights": "int8", "activations": "uint8 (calibrated)",
            "nodes_excluded": list(settings.nodes_to_exclude), "float_inputs_restored": rewired}
    if method == CalibrationMethod.Percentile:
        used["percentile"] = settings.percentile
    return used


def _float_for_float_consumers(model, op_types: Sequence[str], excluded: Sequence[str]) -> int:
    """Give every float consumer of a QDQ-quantized activation the float tensor back.

    onnxruntime's QDQ quantizer replaces a quantized tensor by its DequantizeLinear output for
    ALL consumers. A LayerNorm output feeds the next MatMul (quantized) and the residual
    ``skip`` input of the next SkipLayerNormalization; without this rewiring the residual
    stream itself would be rounded to uint8, the per-tensor outlier problem that made plain
    QDQ useless on MiniLM. Quantized consumers are nodes of ``op_types`` not in ``excluded``.
    Returns how many inputs were rewired."""
    producers = {out: node for node in model.graph.node for out in node.output}
    float_of: dict[str, str] = {}  # DQ output -> the float tensor its Q consumed
    for node in model.graph.node:
        if node.op_type == "DequantizeLinear":
            q = producers.get(node.input[0])
            if q is not None and q.op_type == "QuantizeLinear":
                float_of[node.output[0]] = q.input[0]
    rewired = 0
    for node in model.graph.node:
        if node.op_type in op_types and node.name not in excluded or node.op_type in ("QuantizeLinear",
                                                                                     "DequantizeLinear"):
            continue  # a quantized consumer: onnxruntime fuses DQ -> MatMul into an int8 GEMM
        for i, name in enumerate(node.input):
            if name in float_of:
                node.input[i] = float_of[name]
                rewired += 1
    return rewired
