"""Build edgekit's encoder as an ONNX graph of onnxruntime's fused transformer ops.

Why by hand: tf2onnx 1.17 turns the tf-keras encoder into ~600 small ops that onnxruntime's
transformer optimizer does not recognise (nothing fused, ~3x slower than a fused graph). The
graph here is written directly from the weights by edgekit's names (``collect_weights``) in the
``com.microsoft`` contrib ops that onnxruntime's own BERT optimizer would produce, so the fusion
cannot silently fail to happen:

    input_ids, token_type_ids [B, S] ──EmbedLayerNormalization──> x [B, S, E] (──MatMul──> [B, S, H])
    per layer:  Attention(x, Wqkv [H, 3A], mask [B, S])           -> ctx [B, S, A]
                MatMul(ctx, Wo [A, H]) + SkipLayerNormalization   -> x   [B, S, H]
                MatMul(x, Wi [H, I]) + BiasGelu                   -> f   [B, S, I]
                MatMul(f, Wout [I, H]) + SkipLayerNormalization   -> x   [B, S, H]
    head: none (pooled: ``embedding`` [B, H]) or the task's Dense (``tasks.Head``) over the
          pooled vector (cls / masked mean / pooler tanh, L2 normalised) -> [B, C], or over
          every token -> [B, S, C], split into the task's named outputs

B = batch, S = sequence, H = hidden, E = embedding width (ELECTRA's narrower embeddings are
projected to H; otherwise E = H), A = num_heads * head_size (< H after head pruning),
I = intermediate size. Every family is this graph (``BertConfig`` says where they differ; MobileBERT's
embeddings and bottlenecked blocks: ``bottleneck``). ``attention="split"`` writes the Q/K/V projection as its own MatMul
followed by ``MultiHeadAttention`` instead, so that static (QDQ) quantization, which cannot
quantize the packed ``Attention`` op, can make that projection int8 too; ``"separate"`` writes
it as three [H, A] MatMuls, each with int8 ranges (and NNCF smoothing) of its own.

The graph has no shape ops but MobileBERT's one (the position rows' length, read from the
input): inputs are [batch, sequence] with symbolic dims, and ``pin_input_shapes`` fixes them for static
artifacts. The attention-mask input is passed to
the attention ops as a raw 0/1 mask (any padding layout) with ``mask_filter_value`` as the
additive bias of masked keys, the same arithmetic as the Keras ``AttentionMaskBias``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit import tasks
from edgekit.models.bert_config import BertConfig
from edgekit.models.weight_layout import graph_positions
from edgekit.tasks import Head
from edgekit.tasks.base import BATCH, SEQUENCE

MS_DOMAIN = "com.microsoft"
OPSET = 17
ATTENTION_KINDS = ("packed", "split", "separate")
# MatMuls outside the encoder layers (pooling, and the task head: ``head_nodes``): one row per
# example or a few columns per token (no speed to gain from int8), fed by the final hidden
# state, so int8 keeps them float.
POOLING_NODES = ("masked_sum", "pooler_dense")
# The contrib ops this builder writes, i.e. the fusions onnxruntime's BERT optimizer aims for.
FUSED_OPS = ("EmbedLayerNormalization", "Attention", "MultiHeadAttention", "SkipLayerNormalization",
             "BiasGelu", "FastGelu")


@dataclass(frozen=True)
class GraphOptions:
    """``attention``: "packed" (one ``Attention`` op holding the Q/K/V weights), "split"
    (MatMul + ``MultiHeadAttention``) or "separate" (three MatMuls + ``MultiHeadAttention``).
    ``mask_bias``: additive bias of padded keys (None: the config's).
    ``cls_shortcut``: with cls/pooler pooling and no head over the tokens, run the
    last layer's attention output and FFN on the first token only (exact: no other position
    reaches the output).
    ``smoothing``: per-input-channel factors s [K] by weight GEMM (``smoothing.GEMMS`` names,
    e.g. ``layer_0_qkv``): the GEMM gets x / s and W * s (same product, flatter activation
    ranges for int8; see ``smoothing``)."""

    attention: str = "packed"
    mask_bias: float | None = None
    cls_shortcut: bool = True
    smoothing: Mapping[str, np.ndarray] | None = field(default=None, compare=False)

    def __post_init__(self):
        if self.attention not in ATTENTION_KINDS:
            raise ValueError(f"attention must be one of {ATTENTION_KINDS}, got {self.attention!r}")




class _Builder:
    """Collects nodes, initialisers and the type/shape of every intermediate tensor.

    Every node is named after its (first) output. The value_info matters: onnxruntime's
    quantizers look up tensor types, and ONNX shape inference cannot see through the
    ``com.microsoft`` ops."""

    def __init__(self, weights: dict[str, np.ndarray], smoothing: Mapping[str, np.ndarray] | None = None):
        self.weights = weights
        self.smoothing = {k: np.asarray(v, np.float32) for k, v in (smoothing or {}).items()}
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.value_info: list[Any] = []
        self._names: set[str] = set()
        self._stored: dict[tuple, str] = {}  # (dtype, shape, digest) -> the initialiser holding those values

    def const(self, name: str, value: np.ndarray) -> str:
        """An initialiser; values already stored under another name are that one (ALBERT's
        shared layers, one copy per group, as in its checkpoint)."""
        import hashlib

        from onnx import numpy_helper

        if name in self._names:
            return name
        value = np.ascontiguousarray(value)
        key = (value.dtype.str, value.shape, hashlib.sha256(value.tobytes()).digest())
        if key in self._stored:
            return self._stored[key]
        self._names.add(name)
        self._stored[key] = name
        self.initializers.append(numpy_helper.from_array(value, name))
        return name

    def weight(self, hf_name: str, *, transpose: bool = False) -> str:
        """An HF tensor as an initialiser; HF Dense kernels are [out, in], MatMul wants [in, out]."""
        value = self.weights[hf_name]
        return self.const(hf_name, value.T if transpose else value)

    def smoothed(self, x: str, gemm: str, shape: list) -> tuple[str, np.ndarray]:
        """(x / s, s) for a GEMM with smoothing factors s, else (x, ones): an explicit Mul, as
        x (a LayerNorm or GELU output) also feeds float ops that need it unscaled."""
        s = self.smoothing.get(gemm)
        if s is None:
            return x, np.float32(1.0)
        inverse = self.const(f"{gemm}.smooth_inverse", (1.0 / s).astype(np.float32))
        return self.op("Mul", [x, inverse], f"{gemm}_smoothed", shape), s.astype(np.float32)

    def dense(self, x: str, hf: str, gemm: str, shape: list) -> str:
        """MatMul(x, W [in, out]) for the HF Dense ``hf`` (weight [out, in]), smoothed if asked."""
        x, s = self.smoothed(x, gemm, shape[:-1] + [self.weights[f"{hf}.weight"].shape[1]])
        kernel = self.weights[f"{hf}.weight"].T * np.reshape(s, (-1, 1))
        return self.op("MatMul", [x, self.const(f"{hf}.weight", kernel)], gemm, shape)

    def op(self, op_type: str, inputs: list[str], name: str, shape: list, *, outputs: list[str] | None = None,
           ms: bool = False, **attrs: Any) -> str:
        """Add a node named ``name`` with float output ``name`` of ``shape``; returns the output.
        ``outputs``: explicit output names (all get ``shape``)."""
        from onnx import TensorProto, helper

        names = outputs or [name]
        self.nodes.append(helper.make_node(op_type, inputs, names, name=name,
                                           domain=MS_DOMAIN if ms else "", **attrs))
        self.value_info.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in names)
        return names[0]


B, S = BATCH, SEQUENCE


def _embeddings(b: _Builder, config: BertConfig) -> str:
    """EmbedLayerNormalization: word + position (0..S-1) + token type embeddings, LayerNorm.

    The op reads position rows from 0: a position offset (RoBERTa) starts the table there, and a
    single token type (no token_type_ids input) is added to every position row."""
    from onnx import TensorProto, helper

    positions, types = graph_positions(config, b.weights)
    inputs = [
        "input_ids",
        "token_type_ids" if types is not None else "",
        b.weight("embeddings.word_embeddings.weight"),
        b.const("embeddings.position_embeddings.weight", positions),
        b.weight("embeddings.token_type_embeddings.weight") if types is not None else "",
        b.weight("embeddings.LayerNorm.weight"),
        b.weight("embeddings.LayerNorm.bias"),
    ]
    # The op must declare its second output (mask_index [B] int32); unused: attention reads the raw mask.
    x = b.op("EmbedLayerNormalization", inputs, "embeddings", [B, S, config.embedding_width],
             outputs=["embeddings", "embeddings_mask_index"], ms=True, epsilon=config.layer_norm_eps)
    b.value_info[-1] = helper.make_tensor_value_info("embeddings_mask_index", TensorProto.INT32, [B])
    if config.embedding_size is not None:
        shape = [B, S, config.hidden_size]
        x = b.op("Add", [b.dense(x, "embeddings_project", "embeddings_project", shape),
                         b.weight("embeddings_project.bias")], "embeddings_projected", shape)
    return x


def _attention(b: _Builder, config: BertConfig, i: int, x: str, mask_bias: float, kind: str) -> str:
    """Self-attention of layer ``i``: x [B, S, H] -> context [B, S, A] (before the output dense)."""
    hf = f"encoder.layer.{i}.attention.self."
    qkv_w = np.concatenate([b.weights[f"{hf}{n}.weight"].T for n in ("query", "key", "value")], axis=1)  # [H, 3A]
    qkv_b = np.concatenate([b.weights[f"{hf}{n}.bias"] for n in ("query", "key", "value")])  # [3A]
    name, a = f"layer_{i}_attention", config.all_head_size
    x, s = b.smoothed(x, f"layer_{i}_qkv", [B, S, config.hidden_size])
    qkv_w = qkv_w * np.reshape(s, (-1, 1))
    s_out = b.smoothing.get(f"layer_{i}_attention_output")
    if s_out is not None:  # context = softmax · V: dividing V's columns divides the context's exactly
        qkv_w[:, 2 * a:] /= s_out
        qkv_b = qkv_b.copy()
        qkv_b[2 * a:] /= s_out
    if kind == "packed":
        return b.op("Attention", [x, b.const(f"{name}.qkv_weight", qkv_w), b.const(f"{name}.qkv_bias", qkv_b),
                                  "attention_mask"], name, [B, S, a],
                    ms=True, num_heads=config.num_heads, mask_filter_value=float(mask_bias))
    q, k, v = (f"layer_{i}_{n}" for n in ("query", "key", "value"))
    if kind == "split":  # one [H, 3A] MatMul (quantizable), then three [B, S, A] parts for MultiHeadAttention
        qkv = b.op("MatMul", [x, b.const(f"{name}.qkv_weight", qkv_w)], f"layer_{i}_qkv", [B, S, 3 * a])
        split = b.const("split_qkv", np.array([a, a, a], np.int64))
        b.op("Split", [qkv, split], f"layer_{i}_split_qkv", [B, S, a], outputs=[q, k, v], axis=2)
    else:  # separate: [H, A] MatMuls -> [B, S, A] each
        for j, part in enumerate((q, k, v)):
            b.op("MatMul", [x, b.const(f"{part}.weight", qkv_w[:, j * a:(j + 1) * a])], part, [B, S, a])
    return b.op("MultiHeadAttention", [q, k, v, b.const(f"{name}.qkv_bias", qkv_b), "attention_mask"], name,
                [B, S, a], ms=True, num_heads=config.num_heads, mask_filter_value=float(mask_bias))


def activation(b: _Builder, act: str, label: str, x: str, bias: str, shape: list) -> str:
    """FFN activation of ``x + bias`` (node ``<label>_activation``): exact erf GELU (BiasGelu),
    tanh GELU (FastGelu), ReLU, SiLU."""
    name = f"{label}_activation"
    if act == "gelu":
        return b.op("BiasGelu", [x, bias], name, shape, ms=True)
    if act in ("gelu_new", "gelu_pytorch_tanh"):
        return b.op("FastGelu", [x, bias], name, shape, ms=True)
    biased = b.op("Add", [x, bias], f"{label}_intermediate_bias", shape)
    if act == "relu":
        return b.op("Relu", [biased], name, shape)
    return b.op("Mul", [biased, b.op("Sigmoid", [biased], f"{name}_sigmoid", shape)], name, shape)  # silu / swish


def _first_token(b: _Builder, x: str, name: str, width: int) -> str:
    """[B, S, D] -> [B, 1, D] (Slice with constant bounds: no shape ops)."""
    zero, one = b.const("zero_1d", np.array([0], np.int64)), b.const("one_1d", np.array([1], np.int64))
    return b.op("Slice", [x, zero, one, one], name, [B, 1, width])


def _layer(b: _Builder, config: BertConfig, i: int, x: str, options: GraphOptions, mask_bias: float,
           first_token_only: bool) -> str:
    """One post-LayerNorm BERT block: [B, S, H] -> [B, S, H] ([B, 1, H] if ``first_token_only``)."""
    hf = f"encoder.layer.{i}."
    eps, h = config.layer_norm_eps, config.hidden_size
    ctx = _attention(b, config, i, x, mask_bias, options.attention)
    s = S
    if first_token_only:
        ctx = _first_token(b, ctx, f"layer_{i}_context_first", config.all_head_size)
        x, s = _first_token(b, x, f"layer_{i}_input_first", h), 1
    gemm = f"layer_{i}_attention_output"
    kernel = b.weights[f"{hf}attention.output.dense.weight"].T  # [A, H]; smoothing folded into V above
    kernel = kernel * np.reshape(b.smoothing.get(gemm, np.float32(1.0)), (-1, 1))
    attn = b.op("MatMul", [ctx, b.const(f"{hf}attention.output.dense.weight", kernel)], gemm, [B, s, h])
    x = b.op("SkipLayerNormalization",
             [attn, x, b.weight(f"{hf}attention.output.LayerNorm.weight"),
              b.weight(f"{hf}attention.output.LayerNorm.bias"), b.weight(f"{hf}attention.output.dense.bias")],
             f"layer_{i}_attention_layer_norm", [B, s, h], ms=True, epsilon=eps)
    inner = [B, s, config.intermediate_size]
    ffn = b.dense(x, f"{hf}intermediate.dense", f"layer_{i}_intermediate", inner)
    ffn = activation(b, config.hidden_act, f"layer_{i}", ffn, b.weight(f"{hf}intermediate.dense.bias"), inner)
    ffn = b.dense(ffn, f"{hf}output.dense", f"layer_{i}_output", [B, s, h])
    return b.op("SkipLayerNormalization",
                [ffn, x, b.weight(f"{hf}output.LayerNorm.weight"), b.weight(f"{hf}output.LayerNorm.bias"),
                 b.weight(f"{hf}output.dense.bias")],
                f"layer_{i}_output_layer_norm", [B, s, h], ms=True, epsilon=eps)


def _pool(b: _Builder, config: BertConfig, x: str, first_token_only: bool) -> str:
    """[B, S, H] (or [B, 1, H]) -> pooled [B, H]: cls, masked mean or BERT pooler, then L2 norm."""
    h = config.hidden_size
    axis1 = b.const("axis_1", np.array([1], np.int64))
    if config.pooling == "mean":
        # sum_s mask[b, s] * x[b, s, :] as one batched MatMul: [B, 1, S] @ [B, S, H] -> [B, 1, H]
        mask = b.op("Cast", ["attention_mask"], "mask_float", [B, S], to=1)
        total = b.op("MatMul", [b.op("Unsqueeze", [mask, axis1], "mask_row", [B, 1, S]), x], "masked_sum", [B, 1, h])
        count = b.op("ReduceSum", [mask, axis1], "mask_count", [B, 1], keepdims=1)
        count = b.op("Max", [count, b.const("count_floor", np.array(1e-9, np.float32))], "mask_count_floor", [B, 1])
        pooled = b.op("Div", [b.op("Squeeze", [total, axis1], "masked_sum_2d", [B, h]), count], "pooling", [B, h])
    else:
        first = x if first_token_only else _first_token(b, x, "first_token", h)
        pooled = b.op("Squeeze", [first, axis1], "pooling", [B, h])
        if config.pooling == "pooler":
            dense = b.op("MatMul", [pooled, b.weight("pooler.dense.weight", transpose=True)], "pooler_dense", [B, h])
            bias = b.weight("pooler.dense.bias")
            if config.pooler_activation == "gelu":
                pooled = b.op("BiasGelu", [dense, bias], "pooler", [B, h], ms=True)
            else:
                biased = b.op("Add", [dense, bias], "pooler_bias", [B, h])
                pooled = b.op({"tanh": "Tanh", "relu": "Relu"}[config.pooler_activation], [biased], "pooler", [B, h])
    if config.normalize:
        # tf.math.l2_normalize: x * rsqrt(max(sum(x^2), 1e-12))
        sq = b.op("ReduceSumSquare", [pooled], "norm_squared", [B, 1], axes=[-1], keepdims=1)  # opset 17: attribute
        sq = b.op("Max", [sq, b.const("norm_floor", np.array(1e-12, np.float32))], "norm_squared_floor", [B, 1])
        pooled = b.op("Div", [pooled, b.op("Sqrt", [sq], "norm", [B, 1])], "normalize", [B, h])
    return pooled


def head_nodes(config: BertConfig) -> tuple[str, ...]:
    """Names of the MatMul nodes outside the encoder layers that int8 keeps float."""
    head = tasks.for_config(config).head(config)
    return POOLING_NODES + ((head.layer,) if head is not None else ())


def _head(b: _Builder, head: Head, features: str, shape: list) -> list[str]:
    """The task head on ``features`` (pooled [B, H] or tokens [B, S, H]): MatMul + Add to
    [.., width], then (several outputs) Split on the last axis and, one column each, Squeeze."""
    width = [*shape[:-1], head.width]
    dense = b.op("MatMul", [features, b.weight(f"{head.layer}.weight", transpose=True)], head.layer, width)
    bias = b.weight(f"{head.layer}.bias")
    if len(head.outputs) == 1:
        return [b.op("Add", [dense, bias], head.outputs[0], width)]
    logits = b.op("Add", [dense, bias], f"{head.layer}_bias", width)
    columns = [*shape[:-1], head.columns]
    sizes = b.const(f"{head.layer}_split", np.full(len(head.outputs), head.columns, np.int64))
    parts = [f"{n}_columns" if head.columns == 1 else n for n in head.outputs]
    b.op("Split", [logits, sizes], f"{head.layer}_split", columns, outputs=parts, axis=-1)
    if head.columns > 1:
        return parts
    last = b.const("axis_last", np.array([-1], np.int64))
    return [b.op("Squeeze", [p, last], n, shape[:-1]) for p, n in zip(parts, head.outputs)]


def build_model(config: BertConfig, weights: dict[str, np.ndarray], options: GraphOptions = GraphOptions()):
    """The fp32 ONNX model (opset 17 + com.microsoft) for ``config`` from ``collect_weights`` tensors.

    Inputs int32 ``input_ids``, ``attention_mask`` (+ ``token_type_ids`` when the config has
    token types), each [batch, sequence]; float outputs named and shaped as the task's
    ``Output``s (``logits`` [batch, labels], ``embedding`` [batch, hidden], ``logits``
    [batch, sequence, tags], ``start_logits`` / ``end_logits`` [batch, sequence])."""
    from onnx import TensorProto, helper

    task = tasks.for_config(config)
    head = task.head(config)
    over_tokens = head is not None and head.over == "tokens"
    b = _Builder(weights, options.smoothing)
    mask_bias = config.mask_bias if options.mask_bias is None else options.mask_bias
    shortcut = (options.cls_shortcut and config.pooling in ("cls", "pooler") and config.num_layers > 0
                and not over_tokens and config.bottleneck is None)
    if config.bottleneck is not None:  # MobileBERT (``bottleneck``: imports this module)
        from edgekit.export.onnx import bottleneck

        x = bottleneck.embeddings(b, config)
        for i in range(config.num_layers):
            x = bottleneck.layer(b, config, i, x, mask_bias)
    else:
        x = _embeddings(b, config)
        for i in range(config.num_layers):
            x = _layer(b, config, i, x, options, mask_bias, shortcut and i == config.num_layers - 1)
    if over_tokens:
        _head(b, head, x, [B, S, config.hidden_size])
    else:
        pooled = _pool(b, config, x, shortcut)
        if head is None:
            b.op("Identity", [pooled], "embedding", [B, config.hidden_size])
        else:
            _head(b, head, pooled, [B, config.hidden_size])

    outputs = task.outputs(config)
    declared = {o.name for o in outputs}  # graph outputs, not intermediates
    value_info = [v for v in b.value_info if v.name not in declared]
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if config.type_vocab_size > 1 else [])
    inputs = [helper.make_tensor_value_info(n, TensorProto.INT32, [B, S]) for n in names]
    graph_outputs = [helper.make_tensor_value_info(o.name, TensorProto.FLOAT, o.shape) for o in outputs]
    graph = helper.make_graph(b.nodes, "edgekit_bert", inputs, graph_outputs, b.initializers, value_info=value_info)
    model = helper.make_model(graph, producer_name="edgekit",
                              opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(MS_DOMAIN, 1)])
    model.ir_version = 8  # onnx 1.23 writes 11 by default; 8 keeps older onnxruntime builds able to load it
    return model


def pin_input_shapes(model, batch: int, seq: int) -> None:
    """Static artifact: every ``batch`` / ``sequence`` dim (inputs, output, intermediates) becomes fixed."""
    fixed = {B: batch, S: seq}
    for value in [*model.graph.input, *model.graph.output, *model.graph.value_info]:
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in fixed:
                dim.dim_value = fixed[dim.dim_param]  # setting the value clears the symbolic name
