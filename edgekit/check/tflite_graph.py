""".tflite graph as a list of ops in execution order, read from the flatbuffer schema.

Each op has its TFLite builtin name and its input/output tensors (shape, shape signature,
dtype, whether the tensor is a constant held in the file) and the multiply-accumulates it
computes, from tensor shapes: FULLY_CONNECTED rows × in × out, BATCH_MATMUL
batch × M × N × K, CONV_2D out elements × kh × kw × in-channels, DEPTHWISE_CONV_2D out
elements × kh × kw; every other op counts 0 MACs (element-wise and data-movement work is
small next to the matmuls of a BERT-class encoder). The operator order of subgraph 0 is
the order the interpreter (and the Edge TPU compiler) walks the graph in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MATMUL_OPS = ("FULLY_CONNECTED", "BATCH_MATMUL", "CONV_2D", "DEPTHWISE_CONV_2D")


@dataclass(frozen=True)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # numpy-style name: int8, uint8, int32, float32, float16, ...
    constant: bool  # held in the file (weights, biases, shape operands)
    dynamic: bool  # a -1 in its shape signature (size known only at run time)

    @property
    def elements(self) -> int:
        n = 1
        for d in self.shape:
            n *= int(d)
        return n


@dataclass(frozen=True)
class Op:
    index: int
    name: str  # TFLite builtin operator name, e.g. FULLY_CONNECTED
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]

    @property
    def activations(self) -> tuple[Tensor, ...]:
        """Non-constant inputs and all outputs."""
        return tuple(t for t in self.inputs if not t.constant) + self.outputs

    @property
    def macs(self) -> int:
        return op_macs(self)


def op_macs(op: Op) -> int:
    """Multiply-accumulates of one op (see the module docstring); 0 for non-matmul ops."""
    if op.name not in MATMUL_OPS or not op.outputs or len(op.inputs) < 2:
        return 0
    out, a, b = op.outputs[0], op.inputs[0], op.inputs[1]
    if op.name == "FULLY_CONNECTED":  # weights [out, in]
        return out.elements * int(b.shape[-1])
    if op.name == "BATCH_MATMUL":  # a [.., M, K] (or [.., K, M] with adj_x), out [.., M, N]
        k = a.shape[-1] if a.shape[-2] == out.shape[-2] else a.shape[-2]
        return out.elements * int(k)
    if op.name == "CONV_2D":  # filter [out_c, kh, kw, in_c]
        return out.elements * int(b.shape[1] * b.shape[2] * b.shape[3])
    return out.elements * int(b.shape[1] * b.shape[2])  # depthwise filter [1, kh, kw, c]


def _names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass(frozen=True)
class Graph:
    ops: tuple[Op, ...]  # execution order
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]

    @property
    def macs(self) -> int:
        return sum(op.macs for op in self.ops)


def read_graph(model: bytes | str | Path) -> Graph:
    """Subgraph 0 (the main graph; others hold control flow) with its ops in execution order."""
    from ai_edge_litert import schema_py_generated as fb

    data = model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()
    m = fb.Model.GetRootAs(data, 0)
    g = m.Subgraphs(0)
    op_names, type_names = _names(fb.BuiltinOperator), _names(fb.TensorType)
    tensors: dict[int, Tensor] = {}

    def tensor(i: int) -> Tensor:
        if i not in tensors:
            t = g.Tensors(i)
            buffer = t.Buffer()
            signature = t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else ()
            tensors[i] = Tensor(index=i, name=(t.Name() or b"").decode(errors="replace"),
                                shape=tuple(int(d) for d in (t.ShapeAsNumpy() if t.ShapeLength() else ())),
                                dtype=type_names.get(t.Type(), str(t.Type())).lower(),
                                constant=buffer > 0 and m.Buffers(buffer).DataLength() > 0,
                                dynamic=any(int(d) < 0 for d in signature))
        return tensors[i]

    ops = []
    for k in range(g.OperatorsLength()):
        o = g.Operators(k)
        code = m.OperatorCodes(o.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        name = op_names.get(builtin, f"BUILTIN_{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM:{(code.CustomCode() or b'').decode(errors='replace')}"
        ins = tuple(tensor(int(i)) for i in (o.InputsAsNumpy() if o.InputsLength() else ()) if i >= 0)
        outs = tuple(tensor(int(i)) for i in (o.OutputsAsNumpy() if o.OutputsLength() else ()) if i >= 0)
        ops.append(Op(index=k, name=name, inputs=ins, outputs=outs))
    inputs = tuple(tensor(int(i)) for i in (g.InputsAsNumpy() if g.InputsLength() else ()))
    outputs = tuple(tensor(int(i)) for i in (g.OutputsAsNumpy() if g.OutputsLength() else ()))
    return Graph(ops=tuple(ops), inputs=inputs, outputs=outputs)
