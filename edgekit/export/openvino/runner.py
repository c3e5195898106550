"""An OpenVINO IR compiled for a device, behind the ``Runner`` contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError, ModelLoadError
from edgekit.export.base import artifact_outputs, per_token, run_static
from edgekit.export.openvino.convert import RT_INFO
from edgekit.ondevice.bench import read_openvino


class OpenVINORunner:
    """Compiled with a latency hint and a thread count. On CPUs with bf16 units OpenVINO would
    silently run an fp32 IR in bf16; the runner asks for f32 compute so that the artifact's own
    precision is what gets measured (``inference_precision`` overrides). Outputs by name, which
    of them are per token as the IR's ``rt_info`` record says."""

    def __init__(self, path: Path, threads: int, device: str = "CPU", inference_precision: str = "f32"):
        import openvino as ov

        core = ov.Core()
        if device not in core.available_devices:
            raise EdgekitError(f"OpenVINO device {device!r} is not present here "
                               f"(available: {', '.join(core.available_devices)})")
        try:
            model = read_openvino(core, path)
        except RuntimeError as err:  # a missing .bin, or OpenVINO's reason without its source lines
            raise ModelLoadError(f"{path}: {err}") from None
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if device == "CPU":
            config.update(INFERENCE_NUM_THREADS=threads, INFERENCE_PRECISION_HINT=inference_precision)
        self.compiled = core.compile_model(model, device, config)
        self.request = self.compiled.create_infer_request()
        self.input_names = tuple(p.get_any_name() for p in model.inputs)
        record = model.get_rt_info(RT_INFO).astype(str) if model.has_rt_info(RT_INFO) else None
        self.outputs = artifact_outputs(path, [p.get_any_name() for p in model.outputs], record)
        self.output_names = tuple(o.name for o in self.outputs)
        self.runtime = f"openvino {ov.get_version().split('-')[0]} ({device})"
        shape = model.inputs[0].get_partial_shape()
        self.static_shape = tuple(shape.to_shape()) if shape.is_static else None

    def _call(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = self.request.infer({n: np.asarray(inputs[n], dtype=np.int32) for n in self.input_names})
        values = {port.get_any_name(): value for port, value in result.items()}
        return {n: np.asarray(values[n], dtype=np.float32) for n in self.output_names}

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.static_shape is not None:
            return run_static(self._call, inputs, *self.static_shape, per_token=per_token(self.outputs))
        return self._call(inputs)
