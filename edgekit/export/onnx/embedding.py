"""The word-embedding lookup of an int8 ONNX graph served from an int8 table with per-row scales.

``graph.build_model`` feeds the fp32 word table [V, H] to the fused ``EmbedLayerNormalization``;
neither onnxruntime quantizer touches it, and for MiniLM it is 46.9 of the 58.6 MB of a dynamic
int8 file. ``quantize_word_embeddings`` stores it as int8 rows q [V, H] with one fp32 scale per
row (symmetric: s = max|row| / 127, so every element is within s / 2 of the fp32 value; row
norms of MiniLM's table differ by 24x, a per-tensor scale would cost most rows 4 bits). Per call
only the rows of the batch's tokens are dequantized, and the same fused op then adds positions
and token types and normalises them, looking its words up in that small per-call table:

    input_ids [B, S] ──Gather(q)──Cast──Mul(Gather(s))──Reshape──> rows [B*S, H]
    flat ids [B, S] = b * S + j  (CumSum of ones: the graph has no shape ops)
    EmbedLayerNormalization(flat ids, token_type_ids, rows, positions, types, gamma, beta)

Measured against alternatives (embedding part alone, onnxruntime 1.32, 1 thread; fp32 fused op
0.08 ms at [1, 24], 1.7 ms at [8, 128]): this graph 0.11 / 1.9 ms; the same lookup followed by
Gathers of positions and types + ``SkipLayerNormalization`` 0.25 / 5.1 ms; ``DequantizeLinear``
of the whole table each call 12 / 13 ms (onnxruntime does not fold it); onnxruntime's
``QEmbedLayerNormalization`` (one uint8 scale for the whole table) 0.10 / 2.0 ms but 9x the
error (max 0.10 vs 0.010 after the LayerNorm).
"""

from __future__ import annotations

import numpy as np

from edgekit.tasks.base import BATCH, SEQUENCE

EMBED_OP = "EmbedLayerNormalization"
WORD_TABLE_INPUT = 2  # EmbedLayerNormalization inputs: input_ids, segment_ids, word_embedding, ...
WORD_GATHER = "word_embeddings"  # the plain Gather of graphs without the fused op (MobileBERT: ``bottleneck``)
ROWS = "word_rows"  # dequantized rows of the batch's tokens [B, S, H] (before the Reshape)


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """fp32 [V, H] -> (int8 q [V, H], fp32 scale [V, 1]) with table ≈ q * scale, each element
    within scale / 2. An all-zero row gets scale 0 (and q 0): exact."""
    table = np.asarray(table, np.float32)
    scale = np.abs(table).max(axis=1, keepdims=True) / np.float32(127)
    q = np.round(table / np.where(scale > 0, scale, np.float32(1)))
    return np.clip(q, -127, 127).astype(np.int8), scale.astype(np.float32)


def quantize_word_embeddings(model) -> dict:
    """Rewrite ``model`` (an ``onnx.ModelProto`` from ``graph.build_model``, quantized or not) in
    place: its ``EmbedLayerNormalization`` reads the word rows from the int8 table as above (a
    graph that looks its words up with a plain ``Gather`` gets the dequantized rows in its place).
    Returns the facts for the export details (table, bytes before/after, scale kind)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    fused = [n for n in graph.node if n.op_type == EMBED_OP]
    [embed] = fused or [n for n in graph.node if n.op_type == "Gather" and n.name == WORD_GATHER]
    name = embed.input[WORD_TABLE_INPUT if fused else 0]
    init = next((i for i in graph.initializer if i.name == name), None)
    table = None if init is None else numpy_helper.to_array(init)
    if table is None or table.dtype != np.float32 or table.ndim != 2:
        got = "no initializer (rewritten already?)" if table is None else f"{table.dtype} {list(table.shape)}"
        raise ValueError(f"{EMBED_OP} word table {name!r}: expected a float32 [vocab, hidden] initializer, got {got}")
    q, scale = quantize_rows(table)
    graph.initializer.remove(init)
    q_name, s_name = f"{name}.int8", f"{name}.row_scale"
    graph.initializer.extend([numpy_helper.from_array(q, q_name), numpy_helper.from_array(scale, s_name)])
    b, s, h = BATCH, SEQUENCE, table.shape[1]
    nodes, info = [], []

    def op(op_type: str, inputs: list[str], out: str, dtype: int, shape: list, **attrs) -> str:
        nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        info.append(helper.make_tensor_value_info(out, dtype, shape))
        return out

    if fused:
        _fused_lookup(graph, embed, op, q_name, s_name, h)
    else:  # Gather(table, ids) -> Gather(q, ids) * Gather(scale, ids), under the same output name
        out = embed.output[0]
        embed.input[0], embed.output[0] = q_name, "word_rows_int8"
        info.append(helper.make_tensor_value_info("word_rows_int8", TensorProto.INT8, [b, s, h]))
        rows = op("Cast", ["word_rows_int8"], "word_rows_float", TensorProto.FLOAT, [b, s, h], to=TensorProto.FLOAT)
        row_scale = op("Gather", [s_name, embed.input[1]], "word_rows_scale", TensorProto.FLOAT, [b, s, 1], axis=0)
        nodes.append(helper.make_node("Mul", [rows, row_scale], [out], name=ROWS))
    at = list(graph.node).index(embed) + (0 if fused else 1)  # before the fused op, after the Gather
    for i, node in enumerate(nodes):
        graph.node.insert(at + i, node)
    graph.value_info.extend(info)
    return {"table": name, "shape": list(table.shape), "dtype": "int8",
            "scale": "per row, fp32, symmetric (max |row| / 127)",
            "table_bytes_before": int(table.nbytes), "table_bytes_after": int(q.nbytes + scale.nbytes),
            "element_error_bound": float(scale.max() / 2)}


def _fused_lookup(graph, embed, op, q_name: str, s_name: str, h: int) -> None:
    """The nodes (through ``op``) that feed ``embed`` (EmbedLayerNormalization) its dequantized rows
    as a [B*S, H] table and flat ids b * S + j (see the module docstring)."""
    from onnx import TensorProto, numpy_helper

    b, s, ids = BATCH, SEQUENCE, embed.input[0]
    graph.initializer.extend([
        numpy_helper.from_array(np.array([-1, h], np.int64), "word_rows.flat_shape"),
        numpy_helper.from_array(np.array(0, np.int32), "word_rows.axis_0"),
        numpy_helper.from_array(np.array(1, np.int32), "word_rows.axis_1"),
        numpy_helper.from_array(np.array([1], np.int64), "word_rows.axes_1"),
    ])
    rows = op("Gather", [q_name, ids], "word_rows_int8", TensorProto.INT8, [b, s, h], axis=0)
    rows = op("Cast", [rows], "word_rows_float", TensorProto.FLOAT, [b, s, h], to=TensorProto.FLOAT)
    row_scale = op("Gather", [s_name, ids], "word_rows_scale", TensorProto.FLOAT, [b, s, 1], axis=0)
    rows = op("Mul", [rows, row_scale], ROWS, TensorProto.FLOAT, [b, s, h])
    flat = op("Reshape", [rows, "word_rows.flat_shape"], "word_rows_flat", TensorProto.FLOAT, [None, h])
    present = op("Equal", [ids, ids], "token_present", TensorProto.BOOL, [b, s])
    ones = op("Cast", [present], "token_ones", TensorProto.INT32, [b, s], to=TensorProto.INT32)
    column = op("CumSum", [ones, "word_rows.axis_1"], "token_column", TensorProto.INT32, [b, s], exclusive=1)
    length = op("ReduceSum", [ones, "word_rows.axes_1"], "row_length", TensorProto.INT32, [b, 1], keepdims=1)
    offset = op("CumSum", [length, "word_rows.axis_0"], "row_offset", TensorProto.INT32, [b, 1], exclusive=1)
    flat_ids = op("Add", [column, offset], "word_row_ids", TensorProto.INT32, [b, s])
    embed.input[0], embed.input[WORD_TABLE_INPUT] = flat_ids, flat
