"""Run a .tflite artifact with ai-edge-litert's Interpreter (the ``Runner`` of export/base.py).

Inputs are int32 [B, S] arrays by signature name; the output is float32 [B, C or H] (an
int8 output is dequantized with its scale and zero point). Dynamic artifacts are resized
to each batch's shape, after dropping trailing columns that are padding in every row (the
result is the same, and int8 graphs then see no padding at all at batch 1). Static
artifacts run their fixed [batch, seq] shape: inputs are padded with zeros (mask 0) or
truncated to seq, and the batch is cut into chunks of the fixed batch size, the last one
padded with all-padding rows whose outputs are dropped.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import numpy as np

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
        if len(outputs) != 1:
            raise ValueError(f"{self.path}: expected one output, found {sorted(outputs)}")
        self.input_names = tuple(n for n in ORDER if n in inputs) + tuple(sorted(set(inputs) - set(ORDER)))
        self._inputs = {n: inputs[n]["index"] for n in self.input_names}
        self.output_name, out = next(iter(outputs.items()))
        self._output = out["index"]
        scales = out["quantization_parameters"]["scales"]
        self._dequant = (float(scales[0]), int(out["quantization_parameters"]["zero_points"][0])) \
            if out["dtype"] != np.float32 and len(scales) else None
        signature = np.asarray(inputs[self.input_names[0]]["shape_signature"])
        self.static_shape = tuple(int(d) for d in signature) if (signature > 0).all() else None
        self._shape: tuple[int, ...] | None = tuple(int(d) for d in inputs[self.input_names[0]]["shape"])
        self._interp.allocate_tensors()
        self.runtime = f"ai-edge-litert {metadata.version('ai-edge-litert')}"
        self.threads = threads

    def _run(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        shape = batch[self.input_names[0]].shape
        if shape != self._shape:
            for name, index in self._inputs.items():
                self._interp.resize_tensor_input(index, list(shape))
            self._interp.allocate_tensors()
            self._shape = shape
        for name, index in self._inputs.items():
            self._interp.set_tensor(index, batch[name])
        self._interp.invoke()
        out = self._interp.get_tensor(self._output)
        if self._dequant is not None:
            scale, zero = self._dequant
            return (out.astype(np.float32) - zero) * scale
        return out.astype(np.float32, copy=True)

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"missing inputs {missing} (the artifact takes {list(self.input_names)})")
        batch = {n: np.ascontiguousarray(inputs[n], dtype=np.int32) for n in self.input_names}
        rows, seq = batch[self.input_names[0]].shape
        if self.static_shape is None:
            mask = batch.get("attention_mask")
            if mask is not None and seq > 1:
                keep = max(int(np.flatnonzero(mask.any(axis=0)).max(initial=0)) + 1, 1)
                if keep < seq:
                    batch = {n: np.ascontiguousarray(v[:, :keep]) for n, v in batch.items()}
            return self._run(batch)
        fixed_rows, fixed_seq = self.static_shape
        padded = {}
        for name, value in batch.items():
            value = value[:, :fixed_seq]
            width = fixed_seq - value.shape[1]
            extra = (-rows) % fixed_rows
            padded[name] = np.pad(value, ((0, extra), (0, width)))
        outs = [self._run({n: np.ascontiguousarray(v[i:i + fixed_rows]) for n, v in padded.items()})
                for i in range(0, rows + (-rows) % fixed_rows, fixed_rows)]
        return np.concatenate(outs)[:rows]


def load(path: str | Path, threads: int = 1) -> LiteRTRunner:
    return LiteRTRunner(path, threads)
