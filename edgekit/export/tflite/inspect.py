"""What a .tflite graph really computes in: op counts and tensor dtypes, per op.

``TFLITE_BUILTINS_INT8`` does not guarantee an integer-only graph (the quantizer leaves ops
it cannot quantize in float, with QUANTIZE / DEQUANTIZE around them), so every int8
artifact is checked here. The interpreter is created with
``OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES``: with XNNPACK applied, delegated ops
would show up as one DELEGATE node. Constant tensors (weights) are told apart from
activations by their flatbuffer buffers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

# Ops that only compute shapes at run time (dynamic batch / sequence dims).
SHAPE_OPS = ("SHAPE", "PACK", "REDUCE_PROD")
FLOAT_DTYPES = ("float32", "float16", "float64")


def _model_bytes(model: bytes | str | Path) -> bytes:
    return model if isinstance(model, (bytes, bytearray)) else Path(model).read_bytes()


def _constant_tensors(data: bytes) -> set[int]:
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(data, 0)
    g = m.Subgraphs(0)
    return {i for i in range(g.TensorsLength())
            if g.Tensors(i).Buffer() > 0 and m.Buffers(g.Tensors(i).Buffer()).DataLength() > 0}


def op_listing(model: bytes | str | Path) -> dict:
    """Facts about the graph, JSON-ready:

    ``ops`` {op type: count}; ``op_count``; ``shape_ops`` (count of SHAPE/PACK/REDUCE_PROD);
    ``activation_dtypes`` / ``weight_dtypes`` {dtype: tensor count} over the tensors ops read
    or write (weights = constants); ``inputs`` / ``outputs`` {name: dtype};
    ``float_ops`` {op type: count} of ops with a float activation input or output, except a
    DEQUANTIZE that only produces a graph output (``output_dequantize``);
    ``float_op_outputs`` the output tensor names of those ops (at most 50);
    ``integer_only``: no float op (a final DEQUANTIZE allowed).
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    data = _model_bytes(model)
    interp = Interpreter(model_content=data,
                         experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    constant = _constant_tensors(data)
    outputs = {d["index"] for d in interp.get_output_details()}
    signature = interp.get_signature_runner()
    sig_inputs, sig_outputs = signature.get_input_details(), signature.get_output_details()

    def dtype(i: int) -> str:
        return np.dtype(tensors[i]["dtype"]).name

    ops = interp._get_ops_details()  # noqa: SLF001 - the only per-op listing the interpreter offers
    counts = Counter(op["op_name"] for op in ops)
    float_ops: Counter = Counter()
    float_outputs: list[str] = []
    activations: Counter = Counter()
    weights: Counter = Counter()
    seen: set[int] = set()
    final_dequantize = False
    for op in ops:
        used = [i for i in list(op["inputs"]) + list(op["outputs"]) if i >= 0 and i in tensors]
        for i in used:
            if i not in seen:
                seen.add(i)
                (weights if i in constant else activations)[dtype(i)] += 1
        live = [i for i in used if i not in constant]
        if not any(dtype(i) in FLOAT_DTYPES for i in live):
            continue
        if op["op_name"] == "DEQUANTIZE" and all(o in outputs for o in op["outputs"]):
            final_dequantize = True
            continue
        float_ops[op["op_name"]] += 1
        if len(float_outputs) < 50:
            float_outputs += [tensors[o]["name"] for o in op["outputs"] if o in tensors]
    return {
        "ops": dict(sorted(counts.items())),
        "op_count": len(ops),
        "shape_ops": sum(counts.get(n, 0) for n in SHAPE_OPS),
        "activation_dtypes": dict(sorted(activations.items())),
        "weight_dtypes": dict(sorted(weights.items())),
        "inputs": {n: np.dtype(d["dtype"]).name for n, d in sorted(sig_inputs.items())},
        "outputs": {n: np.dtype(d["dtype"]).name for n, d in sorted(sig_outputs.items())},
        "float_ops": dict(sorted(float_ops.items())),
        "float_op_outputs": float_outputs,
        "output_dequantize": final_dequantize,
        "integer_only": not float_ops,
    }
