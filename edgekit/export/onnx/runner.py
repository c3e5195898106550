"""Run an edgekit ONNX artifact in onnxruntime (CPU), the ``Runner`` of ``edgekit.export.base``.

One ``InferenceSession`` per artifact: ``threads`` intra-op threads, one inter-op thread
(the graph is a chain; a second pool only competes for the same cores), ORT_ENABLE_ALL graph
optimisation (the load-time fusions int8 needs, see ``analysis``), CPUExecutionProvider.
Outputs are the graph's, by name; which of them are per token is the artifact's record
(``metadata_props``). A static artifact (all input dims fixed) pads with mask 0 / truncates
to its sequence length and runs its fixed batch size at a time, so callers see the same
behaviour as a dynamic one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.export.base import OUTPUTS_KEY, artifact_outputs, per_token, run_static


class OnnxRunner:
    """``runner(inputs)``: int32 [B, S] arrays by input name -> {output name: float32 array}."""

    def __init__(self, path: str | Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.runtime = f"onnxruntime {ort.__version__}"
        inputs = self.session.get_inputs()
        self.input_names = tuple(i.name for i in inputs)
        record = self.session.get_modelmeta().custom_metadata_map.get(OUTPUTS_KEY)
        self.outputs = artifact_outputs(Path(path), [o.name for o in self.session.get_outputs()], record)
        self.output_names = tuple(o.name for o in self.outputs)
        batch, seq = inputs[0].shape
        # Static: both dims are ints; dynamic: symbolic names (str) or None.
        self.static_shape: tuple[int, int] | None = (batch, seq) if isinstance(batch, int) and isinstance(seq, int) else None

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise KeyError(f"ONNX artifact needs inputs {list(self.input_names)}; missing {missing}")
        feed = {n: np.asarray(inputs[n], dtype=np.int32) for n in self.input_names}
        if self.static_shape is None:
            return self._run(feed)
        return run_static(self._run, feed, *self.static_shape, per_token=per_token(self.outputs))

    def _run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = self.session.run(list(self.output_names), feed)
        return {n: np.asarray(v, dtype=np.float32) for n, v in zip(self.output_names, values)}


def load(path: str | Path, threads: int) -> OnnxRunner:
    return OnnxRunner(path, threads)
