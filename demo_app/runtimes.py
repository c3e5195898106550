"""Run one artifact at batch 1 with its own runtime: LiteRT (.tflite), onnxruntime (.onnx) or
OpenVINO (.xml). Each runtime is imported only when an artifact of its format is opened.

``runner(inputs)`` takes int32 arrays [1, n] by input name and returns every named output of
the artifact, batch row 0, as float32: {name: [K]} for a sentence output (logits, embedding)
and {name: [L, K] or [L]} for a per-token one (token logits, start/end logits). Dynamic-shape
artifacts run at the input's own length (L = n); static ones ([b, s] fixed at export) get the
row padded with mask 0 to s (an input is never longer: the encoder keeps to the export's
max_length, which is s) and b - 1 empty rows, so their per-token outputs have L = s rows, of
which the caller reads the first n.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np


def _fit(inputs: dict[str, np.ndarray], shape: tuple[int, ...] | None) -> dict[str, np.ndarray]:
    """Pad [1, n] inputs to a static [b, s] shape (None: dynamic, unchanged)."""
    if shape is None:
        return inputs
    rows, seq = shape
    return {n: np.pad(v[:, :seq], ((0, rows - 1), (0, seq - min(v.shape[1], seq)))) for n, v in inputs.items()}


def _row(outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Batch row 0 of each output, float32."""
    return {name: np.asarray(value[0], dtype=np.float32) for name, value in outputs.items()}


def _static(dims) -> tuple[int, int] | None:
    dims = [d for d in dims]
    return (int(dims[0]), int(dims[1])) if all(isinstance(d, (int, np.integer)) and d > 0 for d in dims) else None


class LiteRT:
    """ai-edge-litert's Interpreter through the artifact's one signature (names, not indices)."""

    def __init__(self, path: Path, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        self._interp = Interpreter(model_path=str(path), num_threads=threads)
        [key] = self._interp.get_signature_list()
        self._run = self._interp.get_signature_runner(key)
        details = self._run.get_input_details()
        self.input_names = tuple(details)
        self.output_names = tuple(self._run.get_output_details())
        self.shape = _static(next(iter(details.values()))["shape_signature"])
        self._dequant = {}  # int8 outputs (full-int8 artifacts): name -> (scale, zero point)
        for name, out in self._run.get_output_details().items():
            scales, zeros = out["quantization_parameters"]["scales"], out["quantization_parameters"]["zero_points"]
            if out["dtype"] != np.float32 and len(scales):
                self._dequant[name] = (float(scales[0]), int(zeros[0]))
        self.runtime = f"ai-edge-litert {metadata.version('ai-edge-litert')}"

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self._run(**_fit(inputs, self.shape))
        for name, (scale, zero) in self._dequant.items():
            outputs[name] = (outputs[name].astype(np.float32) - zero) * scale
        return _row(outputs)


class OnnxRuntime:
    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs = self._session.get_inputs()
        self.input_names = tuple(i.name for i in inputs)
        self.output_names = tuple(o.name for o in self._session.get_outputs())
        self.shape = _static(inputs[0].shape)
        self.runtime = f"onnxruntime {ort.__version__}"

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self._session.run(list(self.output_names), _fit(inputs, self.shape))
        return _row(dict(zip(self.output_names, values)))


class OpenVINO:
    def __init__(self, path: Path, threads: int):
        import openvino as ov

        model = ov.Core().read_model(str(path))
        self.input_names = tuple(p.get_any_name() for p in model.inputs)
        self.output_names = tuple(p.get_any_name() for p in model.outputs)
        shape = model.inputs[0].get_partial_shape()
        self.shape = (shape[0].get_length(), shape[1].get_length()) if shape.is_static else None
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                         "INFERENCE_PRECISION_HINT": "f32"})
        self._request = compiled.create_infer_request()
        self.runtime = f"openvino {ov.get_version().split('-')[0]}"

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self._request.infer(_fit(inputs, self.shape))
        return _row({port.get_any_name(): value for port, value in result.items()})


RUNTIMES = {"tflite": LiteRT, "onnx": OnnxRuntime, "openvino": OpenVINO}


def open_artifact(path: Path, fmt: str, threads: int = 1):
    """A batch-1 runner for the artifact file ``path`` of format ``fmt``."""
    return RUNTIMES[fmt](Path(path), threads)
