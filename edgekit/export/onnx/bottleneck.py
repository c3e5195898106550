"""MobileBERT's embeddings and blocks (``models.bottleneck``) in ``graph.build_model``'s ONNX graph.

    input_ids [B, S] ──Gather──> [B, S, E] ──trigrams (Slice, Pad, Concat)──> [B, S, 3E]
        ──MatMul + Add──> [B, S, H] + positions 0..S-1 (+ token types) ──NoNorm──> x [B, S, H]
    per layer:  inner = NoNorm(x W_in), shared = NoNorm(x W_att)                 [B, S, T]
                MatMul(shared)->Q, MatMul(shared)->K, MatMul(x)->V + MultiHeadAttention -> [B, S, A]
                y = NoNorm(ctx W_o + inner); FFNs: y = NoNorm(act(y W_i) W_out + y)   [B, S, T]
                x = NoNorm(y W_up + x)                                            [B, S, H]

NoNorm is Mul + Add (no fused op applies: there are no statistics); the FFNs' activation is
``graph.activation``'s. The position rows are a Slice of the table up to the input's length
(the one Shape op of this graph; static artifacts fix it with the inputs).
"""

from __future__ import annotations

import numpy as np

from edgekit.models.bert_config import BertConfig
from edgekit.models.weight_layout import graph_positions
from edgekit.tasks.base import BATCH as B
from edgekit.tasks.base import SEQUENCE as S

_END = np.iinfo(np.int64).max


def _no_norm(b, x: str, hf: str, name: str, shape: list) -> str:
    """x * weight + bias of the NoNorm at ``hf`` (``<path>.LayerNorm``)."""
    scaled = b.op("Mul", [x, b.weight(f"{hf}.LayerNorm.weight")], f"{name}_weighted", shape)
    return b.op("Add", [scaled, b.weight(f"{hf}.LayerNorm.bias")], name, shape)


def _dense_norm(b, x: str, hf: str, name: str, shape: list, residual: str | None = None) -> str:
    """NoNorm(x W + bias (+ residual)) of the Dense at ``hf`` (``<path>.dense``)."""
    y = b.op("Add", [b.dense(x, f"{hf}.dense", name, shape), b.weight(f"{hf}.dense.bias")], f"{name}_bias", shape)
    if residual is not None:
        y = b.op("Add", [y, residual], f"{name}_residual", shape)
    return _no_norm(b, y, hf, f"{name}_norm", shape)


def embeddings(b, config: BertConfig) -> str:
    """[B, S] ids (+ token types) -> x [B, S, H]."""
    from onnx import TensorProto, helper

    h, e = config.hidden_size, config.bottleneck.embedding_size
    axis1 = b.const("axis_1", np.array([1], np.int64))
    zero, one = b.const("zero_1d", np.array([0], np.int64)), b.const("one_1d", np.array([1], np.int64))
    x = b.op("Gather", [b.weight("embeddings.word_embeddings.weight"), "input_ids"], "word_embeddings", [B, S, e],
             axis=0)
    if config.bottleneck.trigram:
        right = b.op("Slice", [x, one, b.const("end_1d", np.array([_END], np.int64)), axis1], "trigram_right_rows",
                     [B, None, e])  # S - 1 rows
        right = b.op("Pad", [right, b.const("pad_after", np.array([0, 0, 0, 0, 1, 0], np.int64))], "trigram_right",
                     [B, S, e])
        left = b.op("Slice", [x, zero, b.const("minus_one_1d", np.array([-1], np.int64)), axis1], "trigram_left_rows",
                    [B, None, e])
        left = b.op("Pad", [left, b.const("pad_before", np.array([0, 1, 0, 0, 0, 0], np.int64))], "trigram_left",
                    [B, S, e])
        x = b.op("Concat", [right, x, left], "trigram", [B, S, 3 * e], axis=2)
    hf = "embeddings.embedding_transformation"
    x = b.op("Add", [b.dense(x, hf, "embedding_transformation", [B, S, h]), b.weight(f"{hf}.bias")],
             "embedding_transformation_bias", [B, S, h])
    shape = b.op("Shape", ["input_ids"], "input_shape", [2])
    b.value_info[-1] = helper.make_tensor_value_info("input_shape", TensorProto.INT64, [2])
    length = b.op("Slice", [shape, one, b.const("two_1d", np.array([2], np.int64))], "sequence_length", [1])
    b.value_info[-1] = helper.make_tensor_value_info("sequence_length", TensorProto.INT64, [1])
    table, types = graph_positions(config, b.weights)
    positions = b.op("Slice", [b.const("embeddings.position_embeddings.weight", table), zero, length, zero],
                     "position_rows", [S, h])
    x = b.op("Add", [x, positions], "embeddings_positions", [B, S, h])
    if types is not None:
        types = b.op("Gather", [b.weight("embeddings.token_type_embeddings.weight"), "token_type_ids"],
                     "token_types", [B, S, h], axis=0)
        x = b.op("Add", [x, types], "embeddings_sum", [B, S, h])
    return _no_norm(b, x, "embeddings", "embeddings", [B, S, h])


def layer(b, config: BertConfig, i: int, x: str, mask_bias: float) -> str:
    """One MobileBERT block: x [B, S, H] -> [B, S, H]."""
    from edgekit.export.onnx.graph import activation

    hf, name = f"encoder.layer.{i}.", f"layer_{i}"
    h, t, a, inner = config.hidden_size, config.block_width, config.all_head_size, config.intermediate_size
    narrow, wide = [B, S, t], [B, S, inner]
    residual = _dense_norm(b, x, hf + "bottleneck.input", f"{name}_bottleneck_input", narrow)
    shared = _dense_norm(b, x, hf + "bottleneck.attention", f"{name}_bottleneck_attention", narrow)
    parts = [b.dense(y, f"{hf}attention.self.{n}", f"{name}_{n}", [B, S, a])
             for n, y in (("query", shared), ("key", shared), ("value", x))]
    qkv_b = np.concatenate([b.weights[f"{hf}attention.self.{n}.bias"] for n in ("query", "key", "value")])
    ctx = b.op("MultiHeadAttention", [*parts, b.const(f"{name}_attention.qkv_bias", qkv_b), "attention_mask"],
               f"{name}_attention", [B, S, a], ms=True, num_heads=config.num_heads, mask_filter_value=float(mask_bias))
    y = _dense_norm(b, ctx, hf + "attention.output", f"{name}_attention_output", narrow, residual)

    def ffn(y: str, path: str, label: str) -> str:
        f = b.dense(y, f"{hf}{path}intermediate.dense", f"{label}_intermediate", wide)
        f = activation(b, config.hidden_act, label, f, b.weight(f"{hf}{path}intermediate.dense.bias"), wide)
        return _dense_norm(b, f, f"{hf}{path}output", f"{label}_output", narrow, y)

    for j in range(config.bottleneck.feedforwards - 1):
        y = ffn(y, f"ffn.{j}.", f"{name}_ffn_{j}")
    y = ffn(y, "", name)
    return _dense_norm(b, y, hf + "output.bottleneck", f"{name}_output_bottleneck", [B, S, h], x)
