"""The one table of export formats: every format × precision edgekit writes.

The CLI's choices, config validation, the export loop, the tests' parameters, the benchmark
loop and README's format table are all generated from ``FORMATS``. TF-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.config.enums import Format, Precision, Runtime


@dataclass(frozen=True)
class FormatRow:
    """One artifact kind. ``tolerance``: max |Δ| of its outputs vs the fp32 TensorFlow model
    on the tiny test encoders (a sanity bound, not the accuracy gate)."""

    format: Format
    precision: Precision
    runtime: Runtime
    suffix: str
    description: str
    calibrated: bool = False  # needs representative inputs (static int8)
    integer_only: bool = False  # int8 weights and activations (Edge TPU / NPU class targets)
    tolerance: float = 1e-4

    @property
    def key(self) -> str:
        """``format-precision``, the artifact's file stem and its name in manifests."""
        return f"{self.format.value}-{self.precision.value}"


P, F, R = Precision, Format, Runtime
FORMATS: tuple[FormatRow, ...] = (
    FormatRow(F.TFLITE, P.FP32, R.LITERT, ".tflite", "TFLite float32"),
    FormatRow(F.TFLITE, P.FP16, R.LITERT, ".tflite", "TFLite float16 weights (float compute on CPU)",
              tolerance=5e-3),
    FormatRow(F.TFLITE, P.INT8_DYNAMIC, R.LITERT, ".tflite", "TFLite dynamic-range int8 weights, float activations",
              tolerance=0.1),
    FormatRow(F.TFLITE, P.INT8_FULL, R.LITERT, ".tflite", "TFLite full int8: int8 weights and activations",
              calibrated=True, integer_only=True, tolerance=0.5),
    FormatRow(F.TFLITE, P.INT8_QAT, R.LITERT, ".tflite", "TFLite full int8 after quantization-aware training",
              calibrated=True, integer_only=True, tolerance=0.5),
    FormatRow(F.ONNX, P.FP32, R.ONNXRUNTIME, ".onnx", "ONNX float32 (onnxruntime-fusable graph)"),
    FormatRow(F.ONNX, P.INT8_DYNAMIC, R.ONNXRUNTIME, ".onnx", "ONNX dynamic int8 (MatMulInteger)", tolerance=0.1),
    FormatRow(F.ONNX, P.INT8_STATIC, R.ONNXRUNTIME, ".onnx", "ONNX static int8 (QDQ, calibrated)",
              calibrated=True, tolerance=0.5),
    FormatRow(F.OPENVINO, P.FP32, R.OPENVINO, ".xml", "OpenVINO IR float32"),
    FormatRow(F.OPENVINO, P.FP16, R.OPENVINO, ".xml", "OpenVINO IR float16 weights", tolerance=5e-3),
    FormatRow(F.OPENVINO, P.INT8_STATIC, R.OPENVINO, ".xml", "OpenVINO IR int8 (NNCF, transformer preset)",
              calibrated=True, tolerance=0.5),
    FormatRow(F.OPENVINO, P.INT8_WEIGHTS, R.OPENVINO, ".xml",
              "OpenVINO IR int8 weights, float compute (NNCF weight compression)", tolerance=0.1),
)
del P, F, R


def find(fmt: Format, precision: Precision) -> FormatRow | None:
    return next((r for r in FORMATS if r.format is fmt and r.precision is precision), None)


def precisions(fmt: Format) -> tuple[Precision, ...]:
    return tuple(r.precision for r in FORMATS if r.format is fmt)


def markdown_table() -> str:
    """README's format table (tests/test_repo.py keeps README equal to this)."""
    lines = ["| format | precision | runtime | file | integer-only | calibrated | what |", "|---|---|---|---|---|---|---|"]
    for r in FORMATS:
        lines.append(f"| {r.format.value} | {r.precision.value} | {r.runtime.value} | `{r.suffix}` | "
                     f"{'yes' if r.integer_only else 'no'} | {'yes' if r.calibrated else 'no'} | {r.description} |")
    return "\n".join(lines)
