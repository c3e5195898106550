"""Edge TPU (Coral) compatibility: predict the compiler's partition of a .tflite graph.

Rules from Coral's model requirements page, "TensorFlow models on the Edge TPU"
(https://coral.ai/docs/edgetpu/models-intro/#supported-operations). Only part of the page
could be read when this was written (the general requirements and the first table rows,
Logistic ... ResizeNearestNeighbor); the ops the compiler gained in 2.1+ (EXPAND_DIMS,
PACK, QUANTIZE, RSQRT, SLICE, SOFTMAX, SQUEEZE, STRIDED_SLICE, SUM, TRANSPOSE, ...) are
listed from the same page's later version as remembered, so check them against the page
or, better, a compiler log:

* tensor parameters are quantized to 8 bits (int8 / uint8); float or int32 activations
  do not run on the TPU;
* tensor sizes are constant at compile time (no dynamic shapes) and model parameters such
  as FULLY_CONNECTED weights and biases are compile-time constants;
* tensors are 1-, 2- or 3-dimensional; a tensor with more dimensions may only have its 3
  innermost dimensions larger than 1 (so batch 1);
* only the operations of the supported-operation table below map, with their listed
  limitations (the page's "Known limitations" column; ``op_problem`` encodes SOFTMAX on a
  1-D input of at most 16,000 elements, as remembered and unverified here; the page's
  "FULLY_CONNECTED output is one-dimensional" is not encoded: [rows, out] outputs are
  assumed to map, which only a compiler log can confirm);
* the compiler maps ops in graph order up to the first one it cannot map; that op and
  every op after it run on the CPU, even supported ones (one Edge TPU subgraph).

What that means for BERT-class encoders: the embedding lookup is a GATHER (not in the
table), attention multiplies two activations with BATCH_MATMUL (not in the table: only
FULLY_CONNECTED / CONV_2D with constant weights do matmuls on the TPU), GELU is not in the
table (x * sigmoid(1.702 x) = LOGISTIC + MUL is). ``predict`` reports the first op that does
not map and why, and the share of the graph's multiply-accumulates before it.

When ``edgetpu_compiler`` is on PATH, ``run_compiler`` runs it and ``parse_compiler_log``
reads its operator table ("Operator  Count  Status" rows, the format of the compiler's
``.log`` / ``-s`` output documented at https://coral.ai/docs/edgetpu/compiler/);
``disagreements`` lists op types whose mapped counts differ from the prediction.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.check.tflite_graph import Graph, Op

# The supported-operation table (TFLite builtin names), Edge TPU compiler 16.
SUPPORTED = frozenset({
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "EXPAND_DIMS",
    "FULLY_CONNECTED", "L2_NORMALIZATION", "LOGISTIC", "LSTM", "UNIDIRECTIONAL_SEQUENCE_LSTM", "MAXIMUM",
    "MAX_POOL_2D", "MEAN", "MINIMUM", "MUL", "PACK", "PAD", "PRELU", "QUANTIZE", "REDUCE_MAX", "REDUCE_MIN",
    "RELU", "RELU6", "RELU_N1_TO_1", "RESHAPE", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "RSQRT", "SLICE",
    "SOFTMAX", "SPACE_TO_DEPTH", "SPLIT", "SQUEEZE", "STRIDED_SLICE", "SUB", "SUM", "SQUARED_DIFFERENCE", "TANH",
    "TRANSPOSE", "TRANSPOSE_CONV",
})
# Why common transformer ops are missing from the table, and what would map instead.
NOT_IN_TABLE = {
    "GELU": "GELU is not in the supported-operation table (x*sigmoid(1.702x) = LOGISTIC + MUL is)",
    "BATCH_MATMUL": "a matmul of two activations (attention) is not in the supported-operation table; "
                    "only FULLY_CONNECTED / CONV_2D with constant weights map",
    "DEQUANTIZE": "DEQUANTIZE (a float output) is not in the supported-operation table",
    "CAST": "CAST is not in the supported-operation table",
    "DIV": "DIV is not in the supported-operation table",
    "EXP": "EXP is not in the supported-operation table",
}
SOFTMAX_MAX_ELEMENTS = 16_000
ACTIVATION_DTYPES = ("int8", "uint8")
MAPPED = "Mapped to Edge TPU"


def _big_dims(shape: tuple[int, ...]) -> int:
    return sum(1 for d in shape if d > 1)


def op_problem(op: Op) -> str | None:
    """Why the Edge TPU compiler would not map ``op`` (None: it maps)."""
    if op.name == "GATHER":
        table = list(op.inputs[0].shape) if op.inputs else []
        kind = "an embedding lookup" if len(table) == 2 and table[0] > 2 else "a table lookup"
        return f"{kind} (GATHER from a {table} table) is not in the supported-operation table"
    if op.name not in SUPPORTED:
        return NOT_IN_TABLE.get(op.name, f"{op.name} is not in the supported-operation table")
    for t in op.activations:
        if t.dynamic:
            return f"tensor {t.name or t.index} has a dynamic shape (sizes must be fixed at compile time)"
        if t.dtype not in ACTIVATION_DTYPES:
            return f"tensor {t.name or t.index} is {t.dtype} (the Edge TPU computes in int8/uint8 only)"
        if len(t.shape) > 3 and _big_dims(t.shape[:-3]) > 0:
            return (f"tensor {t.name or t.index} {list(t.shape)} has a dimension > 1 outside its 3 innermost "
                    f"(batch must be 1)")
    if op.name == "FULLY_CONNECTED" and len(op.inputs) > 1 and not op.inputs[1].constant:
        return "its weights are not a compile-time constant"
    if op.name == "SOFTMAX":
        x = op.inputs[0]
        if _big_dims(x.shape) > 1 or x.elements > SOFTMAX_MAX_ELEMENTS:
            return f"SOFTMAX input {list(x.shape)}: the table allows a 1-D input of at most 16,000 elements"
    return None


@dataclass
class Partition:
    """The predicted split: ops [0, first) on the Edge TPU, the rest on the CPU."""

    ops: int
    mapped_ops: int  # = index of the first unmapped op
    first: Op | None  # the first op that does not map (None: the whole graph maps)
    reason: str | None
    tpu_macs: int
    total_macs: int
    mapped_by_type: Counter = field(default_factory=Counter)  # op type -> count on the TPU
    cpu_by_type: Counter = field(default_factory=Counter)
    unsupported: dict[str, str] = field(default_factory=dict)  # op type -> why (its first occurrence)

    @property
    def mac_share(self) -> float:
        return self.tpu_macs / self.total_macs if self.total_macs else 0.0


def predict(graph: Graph) -> Partition:
    """Walk the ops in order; everything from the first unmappable op on runs on the CPU."""
    first, reason, unsupported = None, None, {}
    mapped, cpu = Counter(), Counter()
    tpu_macs = 0
    for op in graph.ops:
        problem = op_problem(op)
        if problem is not None and op.name not in unsupported:
            unsupported[op.name] = problem
        if first is None and problem is not None:
            first, reason = op, problem
        if first is None:
            mapped[op.name] += 1
            tpu_macs += op.macs
        else:
            cpu[op.name] += 1
    return Partition(ops=len(graph.ops), mapped_ops=first.index if first else len(graph.ops), first=first,
                     reason=reason, tpu_macs=tpu_macs, total_macs=graph.macs, mapped_by_type=mapped,
                     cpu_by_type=cpu, unsupported=unsupported)


@dataclass
class CompilerLog:
    version: str | None
    rows: list[tuple[str, int, str]]  # (operator, count, status)
    tpu_ops: int | None  # "Number of operations that will run on Edge TPU"
    cpu_ops: int | None
    text: str

    @property
    def mapped_by_type(self) -> Counter:
        out: Counter = Counter()
        for name, count, status in self.rows:
            if status == MAPPED:
                out[name] += count
        return out


_ROW = re.compile(r"^([A-Z][A-Z0-9_]*)\s+(\d+)\s+(\S.*?)\s*$")


def parse_compiler_log(text: str) -> CompilerLog:
    """The operator table and op counts of an ``edgetpu_compiler -s`` output (or its .log)."""
    version = re.search(r"Edge TPU Compiler version (\S+)", text)
    tpu = re.search(r"Number of operations that will run on Edge TPU:\s*(\d+)", text)
    cpu = re.search(r"Number of operations that will run on CPU:\s*(\d+)", text)
    rows, in_table = [], False
    for line in text.splitlines():
        if re.match(r"^\s*Operator\s+Count\s+Status\s*$", line):
            in_table = True
            continue
        if in_table:
            match = _ROW.match(line.strip())
            if match:
                rows.append((match.group(1), int(match.group(2)), match.group(3)))
            elif rows and line.strip() and not line.startswith(" "):
                in_table = False
    return CompilerLog(version=version.group(1) if version else None, rows=rows,
                       tpu_ops=int(tpu.group(1)) if tpu else None, cpu_ops=int(cpu.group(1)) if cpu else None,
                       text=text)


def disagreements(partition: Partition, log: CompilerLog) -> list[str]:
    """``OP: predicted N on the TPU, compiler M`` for every op type where they differ."""
    predicted, compiled = partition.mapped_by_type, log.mapped_by_type
    return [f"{name}: predicted {predicted.get(name, 0)} on the TPU, compiler {compiled.get(name, 0)}"
            for name in sorted(set(predicted) | set(compiled)) if predicted.get(name, 0) != compiled.get(name, 0)]


def compiler_path(name: str = "edgetpu_compiler") -> str | None:
    return shutil.which(name)


def run_compiler(model: Path, executable: str, timeout: int = 600) -> CompilerLog:
    """Compile ``model`` into a temporary folder (the _edgetpu.tflite is not kept) and parse
    the operator table it prints with ``-s``."""
    with tempfile.TemporaryDirectory(prefix="edgekit-edgetpu-") as out:
        done = subprocess.run([executable, "-s", "-o", out, str(model)], capture_output=True, text=True,
                              timeout=timeout)
    log = parse_compiler_log(done.stdout + "\n" + done.stderr)
    if done.returncode != 0 and not log.rows:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"{executable} failed (exit {done.returncode}): {lines[-1] if lines else 'no output'}")
    return log
