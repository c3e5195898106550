"""What an ONNX artifact is made of, in the file and as onnxruntime runs it.

The file's op counts say what was written; onnxruntime then applies its own graph
transformations at load time (ORT_ENABLE_ALL), e.g. MatMulInteger + scale ops ->
``DynamicQuantizeMatMul`` and QDQ MatMul -> ``MatMulIntegerToFloat``. Whether a quantized op
really computes in int8 is only visible in that runtime graph, so the export details report
both and split the runtime ops into integer compute, quantize plumbing and float compute.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

# Ops whose main arithmetic is integer (int8/uint8 inputs, int32 accumulation).
INTEGER_OPS = frozenset({
    "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "MatMulInteger", "QLinearMatMul",
    "QEmbedLayerNormalization", "QGemm", "QLinearAdd", "QLinearMul", "QLinearSoftmax", "DynamicQuantizeLSTM",
    "QOrderedAttention", "QOrderedMatMul", "QOrderedLayerNormalization", "QOrderedGelu",
})
# Fused kernels: one op where the plain ONNX graph would need several (written by graph.py or
# created by onnxruntime at load time).
FUSED_KERNELS = frozenset({
    "EmbedLayerNormalization", "Attention", "MultiHeadAttention", "SkipLayerNormalization", "BiasGelu",
    "FastGelu", "QuickGelu", "Gelu", "FusedGemm", "FusedMatMul", "QAttention", "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat", "QEmbedLayerNormalization", "SkipSimplifiedLayerNormalization",
})
# Ops that only convert between float and int8.
QUANTIZE_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"})
# Ops that only move, reshape or pick data (no arithmetic worth reporting as "float compute").
LAYOUT_OPS = frozenset({"Identity", "Reshape", "Squeeze", "Unsqueeze", "Slice", "Split", "Transpose",
                        "Gather", "Cast", "Concat", "Shape"})


def op_counts(model) -> dict[str, int]:
    """Op type -> count of an ``onnx.ModelProto`` (sorted by name)."""
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def runtime_op_counts(path: Path) -> dict[str, int]:
    """Op counts of the graph onnxruntime runs after ORT_ENABLE_ALL optimisation on this CPU."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgekit-ort-") as tmp:
        optimized = Path(tmp) / "optimized.onnx"
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.optimized_model_filepath = str(optimized)
        options.intra_op_num_threads = 1
        options.log_severity_level = 3  # the "do not reuse an ENABLE_ALL model elsewhere" warning
        ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return op_counts(onnx.load(str(optimized), load_external_data=False))


def split_ops(counts: dict[str, int]) -> dict[str, dict[str, int]]:
    """Runtime ops grouped as ``integer`` compute, ``quantize`` plumbing, ``float`` compute, ``layout``."""
    groups: dict[str, dict[str, int]] = {"integer": {}, "quantize": {}, "float": {}, "layout": {}}
    for op, n in counts.items():
        group = ("integer" if op in INTEGER_OPS else "quantize" if op in QUANTIZE_OPS
                 else "layout" if op in LAYOUT_OPS else "float")
        groups[group][op] = n
    return groups
