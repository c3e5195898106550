"""Run a .tflite artifact with ai-edge-litert's Interpreter (the ``Runner`` of export/base.py).

Inputs are int32 [B, S] arrays by signature name; the outputs come back by signature name as
float32 (an int8 output is dequantized with its scale and zero point), and which of them are
per token is the artifact's outputs record (``metadata.read_outputs_record``). Dynamic
artifacts are resized to each batch's shape, after dropping trailing columns that are padding
in every row (the result is the same, and int8 graphs then see no padding at all at batch 1);
per-token outputs get those columns back as zeros, so they are [B, S, ...] like the inputs.
Static artifacts run their fixed [batch, seq] shape through ``base.run_static`` (padding with
zeros - mask 0 - or truncating to seq, in chunks of the fixed batch size).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

from edgekit.export.base import artifact_outputs, per_token, run_static
from edgekit.export.tflite.metadata import read_outputs_record

ORDER = ("input_ids", "attention_mask", "token_type_ids")


class LiteRTRunner:
    def __init__(self, path: str | Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self._interp = Interpreter(model_path=str(self.path), num_threads=threads)
        signatures = self._interp.get_signature_list()
        if len(signatures) != 1:
            raise ValueError(f"{self.path}: expected one signature, found {sorted(signatures)}")
        runner = self._interp.get_signature_runner(next(iter(signatures)))
        inputs, outputs = runner.get_input_details(), runner.get_output_details()
        del runner  # it holds the interpreter wrapper, which blocks allocate_tensors / invoke
        self.input_names = tuple(n for n in ORDER if n in inputs) + tuple(sorted(set(inputs) - set(ORDER)))
        self._inputs = {n: inputs[n]["index"] for n in self.input_names}
        self.outputs = artifact_outputs(self.path, list(outputs), read_outputs_record(self.path.read_bytes()))
        self.output_names = tuple(o.name for o in self.outputs)
        self._per_token = per_token(self.outputs)
        self._outputs = {n: (outputs[n]["index"], _dequantization(outputs[n])) for n in self.output_names}
        signature = np.asarray(inputs[self.input_names[0]]["shape_signature"])
        self.static_shape = tuple(int(d) for d in signature) if (signature > 0).all() else None
        self._shape: tuple[int, ...] | None = tuple(int(d) for d in inputs[self.input_names[0]]["shape"])
        self._interp.allocate_tensors()
        self.runtime = f"ai-edge-litert {metadata.version('ai-edge-litert')}"
        self.threads = threads

    def _run(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        shape = batch[self.input_names[0]].shape
        if shape != self._shape:
            for name, index in self._inputs.items():
                self._interp.resize_tensor_input(index, list(shape))
            self._interp.allocate_tensors()
            self._shape = shape
        for name, index in self._inputs.items():
            self._interp.set_tensor(index, batch[name])
        self._interp.invoke()
        out = {}
        for name, (index, dequant) in self._outputs.items():
            value = self._interp.get_tensor(index)
            if dequant is not None:
                scale, zero = dequant
                out[name] = (value.astype(np.float32) - zero) * scale
            else:
                out[name] = value.astype(np.float32, copy=True)
        return out

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"missing inputs {missing} (the artifact takes {list(self.input_names)})")
        batch = {n: np.ascontiguousarray(inputs[n], dtype=np.int32) for n in self.input_names}
        if self.static_shape is not None:
            return run_static(self._run, batch, *self.static_shape, per_token=self._per_token)
        seq = batch[self.input_names[0]].shape[1]
        mask = batch.get("attention_mask")
        keep = seq
        if mask is not None and seq > 1:
            keep = max(int(np.flatnonzero(mask.any(axis=0)).max(initial=0)) + 1, 1)
            if keep < seq:
                batch = {n: np.ascontiguousarray(v[:, :keep]) for n, v in batch.items()}
        out = self._run(batch)
        for name in self._per_token:  # the dropped all-padding columns, back as zeros
            value = out[name]
            out[name] = np.pad(value, [(0, 0), (0, seq - keep)] + [(0, 0)] * (value.ndim - 2))
        return out


def _dequantization(detail: dict) -> tuple[float, int] | None:
    """(scale, zero point) of an integer output, None for a float one."""
    scales = detail["quantization_parameters"]["scales"]
    if detail["dtype"] == np.float32 or not len(scales):
        return None
    return float(scales[0]), int(detail["quantization_parameters"]["zero_points"][0])


def load(path: str | Path, threads: int = 1) -> LiteRTRunner:
    return LiteRTRunner(path, threads)
