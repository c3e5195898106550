"""Activation ranges for full-int8 TFLite: calibrate once, choose ranges, quantize.

TFLite's own calibrator records plain min/max per tensor. Here the converter calibrates
only so that its pre-quantization float model carries a min/max slot on every tensor it
will quantize (``_experimental_calibrate_only``); ``collect`` then runs that float model on
every calibration input (interpreter with ``experimental_preserve_all_tensors``, no
delegates) and keeps, per float tensor, the count, exact extremes, the K largest/smallest
values and a uniform reservoir sample; ``choose_ranges`` turns them into ranges (min/max,
percentile - but never inside the median calibration input's own min/max, so values that
nearly every input has (e.g. one huge [CLS] channel) are not clipped as outliers - or the
clip that minimises int8 round-trip MSE) with three structural rules:

* a GATHER from a small constant table (the padding-bias table [mask_bias, 0], mean-pooling
  tables) gets the table's range, so padding stays masked even when every calibration
  input is unpadded (natural length), and RESHAPEs of it inherit that range;
* a SOFTMAX input's range is [min over rows of (row max) - SOFTMAX_SPAN, max]: in every row,
  values more than the span below the row's maximum get weight < e^-10 anyway, so padding
  (a -30 bias) no longer widens the step of every real score, and yet padding clipped to the
  low end stays masked even when no calibration input was padded;
* integer and constant tensors are left alone.

``write_ranges`` puts the ranges into the model's quantization min/max and ``quantize`` runs
TensorFlow's MLIR quantizer on it (per-channel weights unless disabled, op types or output
tensor names in ``keep_float`` stay float).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgekit.config.enums import Calibration

TAIL = 4096  # largest / smallest values kept exactly per tensor
RESERVOIR = 1 << 15  # uniformly sampled values kept per tensor
SOFTMAX_SPAN = 10.0  # softmax inputs: per row, values below (row max - span) are negligible
SMALL_TABLE = 4096  # constant GATHER tables up to this many elements set their output range


@dataclass
class TensorStats:
    """Running statistics of one float tensor over all calibration inputs."""

    count: int = 0
    low: float = np.inf
    high: float = -np.inf
    top: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))  # largest values, any order
    bottom: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    reservoir: np.ndarray = field(default_factory=lambda: np.empty(0, np.float32))
    row_low: float = np.inf  # softmax inputs: min over rows of (row max) - SOFTMAX_SPAN
    sample_high: list = field(default_factory=list)  # each calibration input's max
    sample_low: list = field(default_factory=list)

    def add_rows(self, values: np.ndarray) -> None:
        rows = values.reshape(-1, values.shape[-1])
        self.row_low = min(self.row_low, float(rows.max(axis=1).min()) - SOFTMAX_SPAN)

    def add(self, values: np.ndarray, rng: np.random.Generator) -> None:
        v = values.reshape(-1).astype(np.float32)
        if v.size == 0:
            return
        self.count += v.size
        self.sample_low.append(float(v.min()))
        self.sample_high.append(float(v.max()))
        self.low, self.high = min(self.low, float(v.min())), max(self.high, float(v.max()))
        self.top = _extreme(np.concatenate([self.top, v]), TAIL, largest=True)
        self.bottom = _extreme(np.concatenate([self.bottom, v]), TAIL, largest=False)
        # Reservoir: keep each value with probability RESERVOIR / count (approximately uniform).
        keep = v if self.count <= RESERVOIR else v[rng.random(v.size) < RESERVOIR / self.count]
        pool = np.concatenate([self.reservoir, keep])
        if pool.size > RESERVOIR:
            pool = rng.choice(pool, RESERVOIR, replace=False)
        self.reservoir = pool

    def quantile(self, q: float) -> float:
        """Value at fraction q of the sorted values (exact in the kept tails)."""
        rank = q * (self.count - 1)
        from_top = self.count - 1 - rank
        if from_top < self.top.size:
            return float(np.sort(self.top)[::-1][int(round(from_top))])
        if rank < self.bottom.size:
            return float(np.sort(self.bottom)[int(round(rank))])
        return float(np.quantile(self.reservoir, q))


def _extreme(v: np.ndarray, k: int, largest: bool) -> np.ndarray:
    if v.size <= k:
        return v
    return np.partition(v, v.size - k)[v.size - k:] if largest else np.partition(v, k)[:k]


def collect(model: bytes, samples: list[dict[str, np.ndarray]], seed: int = 0) -> dict[int, TensorStats]:
    """Statistics of every non-constant float32 tensor of a float TFLite model (by index)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=model, experimental_preserve_all_tensors=True,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    constant, count = _constant_tensors(model)
    softmax_inputs = {op_inputs[0] for name, op_inputs, _ in _operators(model) if name == "SOFTMAX"}
    runner = interp.get_signature_runner()
    names = set(runner.get_input_details())
    rng = np.random.default_rng(seed)
    stats: dict[int, TensorStats] = {}
    for sample in samples:
        runner(**{n: v for n, v in sample.items() if n in names})
        for detail in interp.get_tensor_details():
            index = detail["index"]
            if detail["dtype"] != np.float32 or index in constant or index >= count:  # >= count: runtime scratch
                continue
            try:
                value = interp.get_tensor(index)
            except ValueError:  # a tensor without data (e.g. optional)
                continue
            entry = stats.setdefault(index, TensorStats())
            entry.add(value, rng)
            if index in softmax_inputs:
                entry.add_rows(value)
    return stats


def _operators(model: bytes) -> list[tuple[str, list[int], list[int]]]:
    """(op type, input tensor indices, output tensor indices) of subgraph 0, in order."""
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    codes = {v: k for k, v in vars(fb.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for i in range(g.OperatorsLength()):
        op = g.Operators(i)
        code = m.OperatorCodes(op.OpcodeIndex())
        name = codes.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "?")
        ops.append((name, [op.Inputs(j) for j in range(op.InputsLength())],
                    [op.Outputs(j) for j in range(op.OutputsLength())]))
    return ops


def _constant_tensors(model: bytes) -> tuple[set[int], int]:
    """(indices of tensors with data in the flatbuffer, number of tensors of subgraph 0)."""
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    constant = {i for i in range(g.TensorsLength())
                if g.Tensors(i).Buffer() > 0 and m.Buffers(g.Tensors(i).Buffer()).DataLength() > 0}
    return constant, g.TensorsLength()


def _mse_range(s: TensorStats) -> tuple[float, float]:
    """The (low, high) among symmetric tail clips that minimises int8 round-trip MSE on the reservoir."""
    values = s.reservoir.astype(np.float64)
    best, best_err = (s.low, s.high), np.inf
    for q in (0.0, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2):
        lo, hi = min(s.quantile(q), 0.0), max(s.quantile(1.0 - q), 0.0)
        if hi <= lo:
            continue
        step = (hi - lo) / 255.0
        zero = np.round(-lo / step)
        rt = (np.clip(np.round(values / step) + zero, 0, 255) - zero) * step
        err = float(np.mean((rt - values) ** 2))
        if err < best_err:
            best, best_err = (lo, hi), err
    return best


def choose_ranges(model: bytes, stats: dict[int, TensorStats], method: Calibration,
                  percentile: float = 99.99) -> dict[int, tuple[float, float]]:
    """(low, high) for every tensor in ``stats`` (see module docstring for the rules)."""
    ranges: dict[int, tuple[float, float]] = {}
    for index, s in stats.items():
        if s.count == 0:
            continue
        if method is Calibration.PERCENTILE:
            q = 1.0 - percentile / 100.0
            # never inside the median input's extremes: values that (almost) every input has,
            # e.g. [CLS]'s one huge channel, are structure, not outliers to clip
            lo = min(s.quantile(q), float(np.median(s.sample_low)))
            hi = max(s.quantile(1.0 - q), float(np.median(s.sample_high)))
        elif method is Calibration.MSE:
            lo, hi = _mse_range(s)
        else:
            lo, hi = s.low, s.high
        ranges[index] = (min(lo, 0.0), max(hi, 0.0))
    _structural_rules(model, stats, ranges)
    return ranges


def _structural_rules(model: bytes, stats: dict[int, TensorStats], ranges: dict[int, tuple[float, float]]) -> None:
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    table_range: dict[int, tuple[float, float]] = {}
    for name, inputs, outputs in _operators(model):
        out = outputs[0]
        if name == "GATHER":
            t = g.Tensors(inputs[0])
            buf = m.Buffers(t.Buffer())
            if t.Type() == fb.TensorType.FLOAT32 and 0 < buf.DataLength() <= 4 * SMALL_TABLE:
                table = np.frombuffer(buf.DataAsNumpy().tobytes(), np.float32)
                table_range[out] = (min(float(table.min()), 0.0), max(float(table.max()), 0.0))
        elif name in ("RESHAPE", "EXPAND_DIMS") and inputs[0] in table_range:
            table_range[out] = table_range[inputs[0]]
        elif name == "SOFTMAX" and inputs[0] in stats and np.isfinite(stats[inputs[0]].row_low):
            s = stats[inputs[0]]
            ranges[inputs[0]] = (min(s.row_low, 0.0), max(s.high, 0.0))
    ranges.update({k: v for k, v in table_range.items() if k in ranges})


def write_ranges(model: bytes, ranges: dict[int, tuple[float, float]]) -> bytes:
    """The model with quantization min/max of the given tensors replaced."""
    from tensorflow.lite.python import schema_py_generated as fb
    from tensorflow.lite.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(model)
    for index, (lo, hi) in ranges.items():
        tensor = obj.subgraphs[0].tensors[index]
        if tensor.quantization is None:
            tensor.quantization = fb.QuantizationParametersT()
        tensor.quantization.min = np.array([lo], np.float32)
        tensor.quantization.max = np.array([hi], np.float32)
    return flatbuffer_utils.convert_object_to_bytearray(obj)


def calibrate_only(concrete, trackable, samples: list[dict[str, np.ndarray]]) -> bytes:
    """The converter's float model with a min/max slot on every tensor it will quantize."""
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], trackable)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter._experimental_calibrate_only = True  # noqa: SLF001 - the documented two-step flow
    return converter.convert()


def quantize(calibrated: bytes, *, per_channel: bool = True, keep_float: tuple[str, ...] = (),
             int8_output: bool = True) -> bytes:
    """Full-int8 model from a calibrated one. ``keep_float``: TFLite op types (``RSQRT``) or
    op output tensor names that stay float (DEQUANTIZE / QUANTIZE around them)."""
    import tensorflow as tf
    from tensorflow.lite.python.convert import mlir_quantize

    op_types = [k for k in keep_float if k.isupper()]
    nodes = [k for k in keep_float if not k.isupper()]
    return mlir_quantize(calibrated, disable_per_channel=not per_channel, input_data_type=tf.float32,
                         output_data_type=tf.int8 if int8_output else tf.float32,
                         denylisted_ops=op_types or None, denylisted_nodes=nodes or None)
