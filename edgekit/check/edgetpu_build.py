"""The best Edge TPU build edgekit makes from a full-int8 .tflite: the embedding lookup moved
out of the model.

A BERT-class graph starts with GATHER ops (word / position / token-type embeddings, the
padding-bias table), which the Edge TPU cannot map, so the compiler maps nothing. Here the
graph is cut in two .tflite files with the very same int8 ops and quantization:

* ``head``: every GATHER / ADD / RESHAPE computable from the int32 inputs alone (the
  embedding sum, the padding bias, the pooling mask) - it runs on the CPU;
* ``body``: everything else; its inputs are the head's int8 outputs, so the Edge TPU
  compiler sees a graph that starts at the embedding output. Its ops are reordered (a
  valid order still) so that every op that maps and does not depend on an unmapped one
  comes before the first unmapped op (``_tpu_first``).

head(inputs) fed into body gives the full model's output bit for bit. What it buys is
measured by ``edgetpu.predict`` on the body: for BERT the next wall is the first attention
BATCH_MATMUL (two activations), so only the embedding LayerNorm and the first layer's
projections ahead of it move to the TPU. ``mappable_share`` gives the ceiling of any build
that splits the model at every unmapped op (CPU attention between TPU segments), which
edgekit does not build.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from edgekit.check import edgetpu
from edgekit.check.tflite_graph import Graph, read_graph

HEAD_OPS = ("GATHER", "ADD", "RESHAPE")


@dataclass
class SplitModel:
    head: bytes
    body: bytes
    head_ops: list[int]  # op indices of the original graph moved to the head
    cut: list[str]  # names of the tensors passed from head to body


def _segment(data: bytes, op_indices: list[int], inputs: list[int], outputs: list[int]) -> bytes:
    """A model holding only ``op_indices`` of subgraph 0 (tensor indices kept as they are,
    the buffers of tensors it does not use emptied)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as fb

    model = fb.ModelT.InitFromObj(fb.Model.GetRootAs(data, 0))
    graph = copy.copy(model.subgraphs[0])
    graph.operators = [model.subgraphs[0].operators[i] for i in op_indices]
    graph.inputs, graph.outputs = list(inputs), list(outputs)
    model.subgraphs = [graph]
    used = {i for op in graph.operators for i in list(op.inputs) + list(op.outputs) if i >= 0}
    keep = {graph.tensors[i].buffer for i in used}
    for b, buffer in enumerate(model.buffers):  # other ops' weights: emptied, indices kept
        if b not in keep:
            buffer.data = None
    model.signatureDefs = None  # they name the original inputs / outputs
    model.metadata = [m for m in (model.metadata or []) if m.name == b"min_runtime_version"] or None
    builder = flatbuffers.Builder(len(data) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def split_embedding(data: bytes) -> SplitModel:
    """Cut ``data`` (a full-int8 .tflite) into the CPU head and the Edge TPU body."""
    graph = read_graph(data)
    produced_by_head: set[int] = {t.index for t in graph.inputs}
    head = []
    for op in graph.ops:
        live = [t for t in op.inputs if not t.constant]
        if op.name in HEAD_OPS and live and all(t.index in produced_by_head for t in live):
            head.append(op.index)
            produced_by_head.update(t.index for t in op.outputs)
    if not head:
        raise ValueError("the graph has no embedding lookup (GATHER) computed from its inputs alone")
    head_set = set(head)
    body_ops = _tpu_first([op for op in graph.ops if op.index not in head_set])
    used = {t.index for op in body_ops for t in op.inputs if not t.constant}
    cut = sorted(i for i in used if i in produced_by_head)
    outputs = [t.index for t in graph.outputs]
    names = {t.index: t.name for op in graph.ops for t in op.inputs + op.outputs}
    head_outputs = sorted(set(cut) | {i for i in outputs if i in produced_by_head})
    return SplitModel(head=_segment(data, head, [t.index for t in graph.inputs], head_outputs),
                      body=_segment(data, [op.index for op in body_ops], cut, outputs),
                      head_ops=head, cut=[names[i] for i in cut])


def _tpu_first(ops: list) -> list:
    """The ops reordered so that every op the TPU maps and that reads no unmapped op's output
    (directly or not) comes first, in their own order; the others follow in theirs. That is
    still a valid execution order, and the compiler, which maps in graph order up to the first
    unmapped op, then maps all of them."""
    blocked: set[int] = set()  # tensors downstream of an unmapped op
    first, rest = [], []
    for op in ops:
        if edgetpu.op_problem(op) is None and not any(t.index in blocked for t in op.inputs):
            first.append(op)
        else:
            rest.append(op)
            blocked.update(t.index for t in op.outputs)
    return first + rest


def mappable_share(graph: Graph) -> float:
    """Share of MACs in ops the Edge TPU maps one by one: the most any split build could move."""
    total = graph.macs
    return sum(op.macs for op in graph.ops if edgetpu.op_problem(op) is None) / total if total else 0.0


BUILD_FILES = ("head.tflite", "body.tflite")


def is_build(folder) -> bool:
    """A folder holding only what ``write_split`` writes: an earlier build, which a new one
    replaces (with the compiler's body_edgetpu.tflite beside them it is the user's, and refused)."""
    return {p.name for p in folder.iterdir()} <= set(BUILD_FILES)


BUILD_RULES = {"replaces": is_build, "own": "an Edge TPU build (head.tflite, body.tflite only)"}


def write_split(split: SplitModel, out, what: str | None = None) -> list:
    """``head.tflite`` (CPU) and ``body.tflite`` (compile it with edgetpu_compiler) into the
    folder ``out``, written all-or-nothing (``claim_dir(out, what, **BUILD_RULES)`` checks it
    before any work); returns the two paths."""
    from pathlib import Path

    from edgekit.atomic import atomic_dir

    out = Path(out)
    with atomic_dir(out, what, **BUILD_RULES) as tmp:
        for name, data in zip(BUILD_FILES, (split.head, split.body)):
            (tmp / name).write_bytes(data)
    return [out / name for name in BUILD_FILES]
