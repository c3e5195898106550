"""The encoder re-written for full-int8 TFLite: same fp32 function, quantization-friendly ops.

The tf-keras encoder is what fp32 / fp16 / dynamic-range artifacts are converted from. For
int8 weights *and* activations its graph has three problems (shared/notes/full-int8-findings):
an unbounded additive mask (-10000 swamps every per-tensor int8 range of the attention
scores), a residual stream with a few huge outlier channels (max |x| ~ 221 against ~2.3 for
the median channel) and LayerNorm statistics computed on that stream. This module holds the
weights as plain numpy (``EncoderWeights``) so that ``transforms`` can rewrite them without
changing the float function, and ``EncoderGraph`` builds the TensorFlow ops from them:

* the padding bias is ``gather([mask_bias, 0], attention_mask)`` - an int8 lookup, not a
  CAST + float arithmetic on the int32 mask;
* Dense layers act on [B*S, in] matrices (one FULLY_CONNECTED, no reshape around it);
* the 1/sqrt(head size) attention scale is folded into the query weights;
* a LayerNorm whose input stream was divided per channel by ``Norm.scale`` (s, [H]) computes
  its statistics of the *unscaled* stream with FULLY_CONNECTED ops whose weights carry s
  (mean = x~ . s / H, variance = (x~ - mean/s)^2 . s^2 / H), weights grouped so that each
  output column spans at most a 4x range (per-channel int8 weights keep small channels);
* mean pooling multiplies by a 0/1 lookup of the mask and by a lookup of 1/count (no DIV:
  an int8 DIV fails at run time); an L2-normalised mean skips the 1/count (it cancels);
* ``split_first``: the first token ([CLS]) of each sequence runs in tensors of its own
  ([B, H]) beside the other tokens ([B*(S-1), H]), with the same weights: every per-token
  tensor gets separate int8 ranges for [CLS], whose activations can be 200x larger than the
  others'. Attention joins them: each part's queries score all keys (one softmax per query
  part) and the context sums probs[..., part] @ values[part] over the key parts. With a
  first-token pooler, the other tokens' last FFN is never used and the converter drops it;
  a head over every token reads both parts (its Dense runs on each, the results joined);
* ``Block.ffn_groups`` (optional; no accuracy gain measured on the SST-2 MiniLM): FFN
  neurons grouped by activation range (one [CLS] GELU output reaches 24 where the median
  neuron's stays below 1) each run as their own FULLY_CONNECTED -> GELU -> FULLY_CONNECTED,
  the partial outputs summed, so the ordinary neurons' GELU output keeps a fine int8 step;
* the task head (``EncoderWeights.head``, a ``tasks.Head``) is a Dense over the pooled
  vector or over every token's final state, its result split into the task's named outputs.

Shapes: B batch, S sequence, H hidden, A = heads * head size, N = B*S rows.
``EncoderGraph`` builds [B, S] int32 inputs with fixed sizes (static: no shape ops) or
unknown ones (dynamic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from edgekit import tasks
from edgekit.tasks import Head

GROUP_RATIO = 4.0  # max ratio of weights inside one statistics column (see _grouped_columns)
VARIABLE_SIZE = 1 << 14  # arrays of at least this many elements enter the graph as tf.Variables


@dataclass(frozen=True)
class Dense:
    kernel: np.ndarray  # [in, out]
    bias: np.ndarray  # [out]


@dataclass(frozen=True)
class Norm:
    """LayerNorm over a stream stored divided by ``scale`` per channel (None: not divided).

    Output: normalized * gamma + beta, [N, H]; transforms divide gamma/beta by the scale of
    the stream the output feeds. ``dense_gamma`` / ``dense_beta`` (SmoothQuant) make a
    second output for the Dense layers that read it, divided by its own factors."""

    gamma: np.ndarray
    beta: np.ndarray
    scale: np.ndarray | None = None
    dense_gamma: np.ndarray | None = None
    dense_beta: np.ndarray | None = None


@dataclass(frozen=True)
class Block:
    query: Dense  # 1/sqrt(head size) folded in
    key: Dense
    value: Dense
    attention_output: Dense
    attention_norm: Norm
    intermediate: Dense
    output: Dense
    output_norm: Norm
    # FFN neurons in groups of similar activation range, each group its own tensors (see
    # EncoderGraph); () = one group
    ffn_groups: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class EncoderWeights:
    word: np.ndarray  # [V, E]
    position: np.ndarray  # [P, E]
    token_type: np.ndarray | None  # [T, E]; None: the model has no token types
    embedding_norm: Norm
    blocks: tuple[Block, ...]
    pooler: Dense | None
    head: Head | None  # the task head (None: the pooled vector is the ``embedding`` output)
    head_weights: Dense | None  # its kernel [H, width] and bias
    num_heads: int
    head_size: int
    activation: str
    eps: float
    pooling: str  # cls | mean | pooler
    normalize: bool
    pooler_activation: str = "tanh"  # of the dense layer on the first token (pooling "pooler")
    split_first: bool = False  # run the first token ([CLS]) in tensors of its own (see EncoderGraph)
    projection: Dense | None = None  # [E, H] after the embedding LayerNorm (ELECTRA, ALBERT); None: E = H
    notes: tuple[str, ...] = field(default=())  # transforms applied, in order

    @property
    def hidden_size(self) -> int:
        return int(self.word.shape[1] if self.projection is None else self.projection.kernel.shape[1])

    def with_note(self, note: str, **changes) -> "EncoderWeights":
        return replace(self, notes=self.notes + (note,), **changes)


def from_keras(model, config) -> EncoderWeights:
    """The weights of ``build_encoder(config)``'s model, through edgekit's tensor names
    (``checkpoint.collect_weights``: the structure every graph builder reads)."""
    from edgekit.models.checkpoint import collect_weights

    return from_tensors(collect_weights(model, config), config)


def from_tensors(t: dict[str, np.ndarray], config) -> EncoderWeights:
    """``EncoderWeights`` from tensors by edgekit's names (HF Dense kernels are [out, in]). The
    position table starts at the config's offset, and a single token type is added to it (no
    input). BERT's blocks only: MobileBERT's full int8 converts its Keras graph
    (``int8.keras_graph_model``)."""
    if config.bottleneck is not None:
        raise ValueError("EncoderWeights holds BERT's blocks, not MobileBERT's bottlenecked ones")

    def dense(path, factor=1.0):
        return Dense(t[f"{path}.weight"].T * factor, t[f"{path}.bias"] * factor)

    def norm(path):
        return Norm(t[f"{path}.weight"], t[f"{path}.bias"])

    head = tasks.for_config(config).head(config)
    q_scale = 1.0 / math.sqrt(config.head_size)
    blocks = []
    for i in range(config.num_layers):
        layer = f"encoder.layer.{i}."
        blocks.append(Block(
            query=dense(layer + "attention.self.query", q_scale), key=dense(layer + "attention.self.key"),
            value=dense(layer + "attention.self.value"), attention_output=dense(layer + "attention.output.dense"),
            attention_norm=norm(layer + "attention.output.LayerNorm"), intermediate=dense(layer + "intermediate.dense"),
            output=dense(layer + "output.dense"), output_norm=norm(layer + "output.LayerNorm")))
    from edgekit.models.weight_layout import graph_positions

    position, token_type = graph_positions(config, t)
    return EncoderWeights(
        word=t["embeddings.word_embeddings.weight"], position=position, token_type=token_type,
        embedding_norm=norm("embeddings.LayerNorm"), blocks=tuple(blocks),
        pooler=dense("pooler.dense") if config.pooling == "pooler" else None,
        head=head, head_weights=dense(head.layer) if head is not None else None,
        num_heads=config.num_heads, head_size=config.head_size, activation=config.hidden_act,
        eps=config.layer_norm_eps, pooling=config.pooling, normalize=config.normalize,
        pooler_activation=config.pooler_activation,
        projection=dense("embeddings_project") if config.embedding_size is not None else None)


def norms(weights: EncoderWeights) -> list[Norm]:
    """The 2L+1 LayerNorms in stream order: embeddings, then attention/output per block."""
    out = [weights.embedding_norm]
    for block in weights.blocks:
        out += [block.attention_norm, block.output_norm]
    return out


def _large_arrays(weights: EncoderWeights) -> dict[str, np.ndarray]:
    """{name: array} of the embedding tables and Dense kernels with >= VARIABLE_SIZE elements."""
    named = {"word": weights.word, "position": weights.position, "token_type": weights.token_type}
    denses = {"pooler": weights.pooler, "head": weights.head_weights, "projection": weights.projection}
    for i, block in enumerate(weights.blocks):
        denses.update({f"layer_{i}_{k}": v for k, v in vars(block).items() if isinstance(v, Dense)})
    named.update({f"{k}_kernel": d.kernel for k, d in denses.items() if d is not None})
    return {k: v for k, v in named.items() if v is not None and v.size >= VARIABLE_SIZE}


def _grouped_columns(values: np.ndarray) -> np.ndarray:
    """[H] positive weights -> [H, G] columns, each holding the entries within a 4x range
    (zeros elsewhere), so per-output-channel int8 quantization keeps every entry's precision.
    Summing the G outputs gives ``x @ values``."""
    logs = np.floor(np.log(values / values.max()) / math.log(GROUP_RATIO)).astype(np.int64)
    groups = np.unique(logs)
    columns = np.zeros((values.size, groups.size), np.float32)
    for g, key in enumerate(groups):
        columns[logs == key, g] = values[logs == key]
    return columns


class EncoderGraph:
    """TensorFlow ops for ``EncoderWeights``; call inside a ``tf.function``.

    ``mask_bias``: the additive bias of padding positions (bounded, e.g. -30, for int8).
    ``batch_size`` / ``seq_len``: fixed sizes for a static graph, None for dynamic ones.
    ``max_len``: the longest sequence a dynamic graph accepts (sizes the 1/count table).

    The large arrays (``_large_arrays``) are tf.Variables (``weights``, for the converter's
    ``track``), the rest constants: a graph that embeds ~90 MB of constants is copied at every
    step of tracing, SavedModel export and conversion (MiniLM-L6 full int8: calibration
    conversion peak 4.6 -> 2.0 GB RSS); the converter freezes the variables into the same
    constant buffers.
    """

    def __init__(self, weights: EncoderWeights, *, mask_bias: float, batch_size: int | None = None,
                 seq_len: int | None = None, max_len: int | None = None):
        import tensorflow as tf

        self.w = weights
        self._variables = {id(a): (a, tf.Variable(np.asarray(a, np.float32), trainable=False, name=name))
                           for name, a in _large_arrays(weights).items()}  # by id: the array itself is kept
        self.mask_bias = float(mask_bias)
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.max_len = seq_len or max_len or weights.position.shape[0]

    @property
    def input_names(self) -> tuple[str, ...]:
        names = ("input_ids", "attention_mask")
        return names + (("token_type_ids",) if self.w.token_type is not None else ())

    @property
    def weights(self) -> list:
        """The tf.Variables the graph reads (Keras' name, as ``convert.signature``'s ``track`` wants)."""
        return [v for _, v in self._variables.values()]

    # ------------------------------------------------------------------ pieces

    def _const(self, value):
        import tensorflow as tf

        if id(value) in self._variables:
            return self._variables[id(value)][1]
        return tf.constant(np.asarray(value, np.float32))

    def _dense(self, x, dense: Dense, activation=None):
        import tensorflow as tf

        if id(dense) not in self._dense_consts:  # one constant per weight, whichever part reads it
            self._dense_consts[id(dense)] = (self._const(dense.kernel), self._const(dense.bias))
        kernel, bias = self._dense_consts[id(dense)]
        y = tf.matmul(x, kernel) + bias
        return y if activation is None else self._activation(y, activation)

    def _activation(self, x, act: str):
        import tensorflow as tf

        if act == "tanh":
            return tf.math.tanh(x)
        if act == "gelu":
            return tf.nn.gelu(x, approximate=False)
        if act in ("gelu_new", "gelu_pytorch_tanh"):
            return tf.nn.gelu(x, approximate=True)
        if act == "relu":
            return tf.nn.relu(x)
        return tf.nn.silu(x)

    def _joined(self, parts):
        """The parts of a hidden state back as one [B*S, C] tensor, tokens in order."""
        import tensorflow as tf

        if len(parts) == 1:
            return parts[0]
        width = parts[0].shape[-1]
        return tf.reshape(tf.concat([tf.reshape(p, [self._batch, -1, width]) for p in parts], axis=1), [-1, width])

    def _norm(self, parts, norm: Norm, taps, name):
        """Each part [rows, H] (stream / scale) -> (normalized * gamma + beta, the Dense-side output)."""
        if taps is not None:
            taps[f"{name}_in"] = self._joined(parts)
        outs = [self._norm_rows(x, norm) for x in parts]
        out, dense_in = [o[0] for o in outs], [o[1] for o in outs]
        if taps is not None:
            taps[f"{name}_out"] = self._joined(out)
            taps[f"{name}_dense"] = self._joined(dense_in)
        return out, dense_in

    def _norm_rows(self, x, norm: Norm):
        import tensorflow as tf

        if norm.scale is None:
            mean = tf.reduce_mean(x, axis=-1, keepdims=True)
            centered = x - mean
            var = tf.reduce_mean(tf.math.square(centered), axis=-1, keepdims=True)
            normalized = centered * tf.math.rsqrt(var + self.w.eps)
            scale = 1.0
        else:
            hidden = x.shape[-1]
            scale = norm.scale.astype(np.float32)
            mean = self._grouped_sum(x, scale / hidden)
            centered = x - mean * self._const(1.0 / scale)  # the stream's centred values, still / scale
            var = self._grouped_sum(centered * centered, scale * scale / hidden)
            normalized = centered * tf.math.rsqrt(var + self.w.eps)
        out = normalized * self._const(norm.gamma * scale) + self._const(norm.beta)
        dense_in = out
        if norm.dense_gamma is not None:
            dense_in = normalized * self._const(norm.dense_gamma * scale) + self._const(norm.dense_beta)
        return out, dense_in

    def _grouped_sum(self, x, values: np.ndarray):
        """x [N, H] . values [H] -> [N, 1] as FULLY_CONNECTED op(s) (see _grouped_columns)."""
        import tensorflow as tf

        columns = _grouped_columns(values)
        y = tf.matmul(x, self._const(columns))
        return y if columns.shape[1] == 1 else tf.reduce_sum(y, axis=-1, keepdims=True)

    def _heads(self, x, batch, seq):
        """[N, A] -> [B, heads, S, D]."""
        import tensorflow as tf

        x = tf.reshape(x, [batch, seq, self.w.num_heads, self.w.head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    def _attention(self, parts, block: Block, bias, lengths, taps, i):
        """Self-attention over the parts of a hidden state (see ``__call__``): each part's
        queries attend to every part's keys (one softmax per query part over the whole row);
        the context is the sum over key parts of probs[:, :, :, part] @ values[part]."""
        import tensorflow as tf

        batch = self._batch
        q = [self._dense(h, block.query) for h in parts]
        k = [self._dense(h, block.key) for h in parts]
        v = [self._dense(h, block.value) for h in parts]
        if taps is not None:
            taps.update({f"q{i}": self._joined(q), f"k{i}": self._joined(k), f"v{i}": self._joined(v)})
        keys = [self._heads(x, batch, n) for x, n in zip(k, lengths)]
        values = [self._heads(x, batch, n) for x, n in zip(v, lengths)]
        contexts = []
        for x, n in zip(q, lengths):
            query = self._heads(x, batch, n)
            scores = [tf.matmul(query, key, transpose_b=True) for key in keys]  # [B, heads, n, S_part]
            probs = tf.nn.softmax((scores[0] if len(scores) == 1 else tf.concat(scores, axis=-1)) + bias, axis=-1)
            if len(values) == 1:
                context = tf.matmul(probs, values[0])
            else:
                context = tf.matmul(probs[:, :, :, :1], values[0]) + tf.matmul(probs[:, :, :, 1:], values[1])
            contexts.append(tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, self.w.num_heads * self.w.head_size]))
        if taps is not None:
            taps[f"ctx{i}"] = self._joined(contexts)
        return [self._dense(c, block.attention_output) for c in contexts]

    def _ffn(self, x, block: Block):
        """[rows, H] -> (FFN output [rows, H], the activation [rows, I] or None when grouped);
        neuron groups run as separate FULLY_CONNECTED/GELU tensors whose partial outputs are
        summed (the output bias added once)."""
        import tensorflow as tf

        if not block.ffn_groups:
            act = self._activation(self._dense(x, block.intermediate), self.w.activation)
            return self._dense(act, block.output), act
        key = (id(block), "ffn")
        if key not in self._dense_consts:
            parts = [(self._const(block.intermediate.kernel[:, g]), self._const(block.intermediate.bias[g]),
                      self._const(block.output.kernel[g])) for g in block.ffn_groups]
            self._dense_consts[key] = (parts, self._const(block.output.bias))
        parts, out_bias = self._dense_consts[key]
        total = None
        for w_in, b_in, w_out in parts:
            y = tf.matmul(self._activation(tf.matmul(x, w_in) + b_in, self.w.activation), w_out)
            total = y if total is None else total + y
        return total + out_bias, None

    # ------------------------------------------------------------------ the model

    def __call__(self, inputs: dict, taps: dict | None = None):
        """int32 [B, S] inputs -> the task's outputs by name: the pooled ``embedding`` [B, H],
        or the head's split (``logits`` [B, labels]; over tokens [B, S, width] -> ``logits``
        [B, S, tags] or ``start_logits`` / ``end_logits`` [B, S]).

        ``taps``: when a dict, filled with intermediate [N, *] tensors for statistics."""
        import tensorflow as tf

        w = self.w
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        if self.seq_len is not None and self.batch_size is not None:
            batch, seq = self.batch_size, self.seq_len
        else:
            shape = tf.shape(ids)
            batch, seq = shape[0], shape[1]
        self._batch, self._seq = batch, seq
        self._dense_consts: dict = {}
        width = w.word.shape[1]  # E (projected to H after the LayerNorm when they differ)
        x = tf.gather(self._const(w.word), ids)  # [B, S, E]
        if isinstance(seq, int):
            x = x + self._const(w.position[:seq])
        else:
            x = x + tf.slice(self._const(w.position), [0, 0], tf.stack([seq, width]))
        if w.token_type is not None:
            x = x + tf.gather(self._const(w.token_type), inputs["token_type_ids"])
        if w.split_first:  # [CLS] rows and the other rows as separate tensors (own int8 ranges)
            parts, lengths = [tf.reshape(x[:, :1], [-1, width]), tf.reshape(x[:, 1:], [-1, width])], [1, seq - 1]
        else:
            parts, lengths = [tf.reshape(x, [-1, width])], [seq]
        h, h_dense = self._norm(parts, w.embedding_norm, taps, "norm0")
        if w.projection is not None:  # the stream starts after the projection: residual and Q/K/V read it
            h = h_dense = [self._dense(x, w.projection) for x in h_dense]
        bias = tf.gather(self._const([self.mask_bias, 0.0]), mask)  # [B, S]: 0 real, mask_bias padding
        bias = tf.reshape(bias, [batch, 1, 1, seq])
        for i, block in enumerate(w.blocks):
            with tf.name_scope(f"layer_{i}_attention"):  # readable tensor names in the .tflite
                attn = self._attention(h_dense, block, bias, lengths, taps, i)
                h, h_dense = self._norm([a + b for a, b in zip(h, attn)], block.attention_norm, taps,
                                        f"norm{2 * i + 1}")
            with tf.name_scope(f"layer_{i}_ffn"):
                out, acts = zip(*(self._ffn(x, block) for x in h_dense))
                if taps is not None and acts[0] is not None:
                    taps[f"ffn{i}"] = self._joined(list(acts))
                h, h_dense = self._norm([a + b for a, b in zip(h, out)], block.output_norm, taps, f"norm{2 * i + 2}")
        if w.head is not None and w.head.over == "tokens":
            width = w.head.width
            logits = self._joined([self._dense(part, w.head_weights) for part in h])  # [N, width]
            return w.head.split(tf.reshape(logits, [batch, seq, width]))
        pooled = self._pool(h, mask)
        if w.head is None:
            return {"embedding": pooled}
        return w.head.split(self._dense(pooled, w.head_weights))

    def _pool(self, h, mask):
        """The final hidden state's parts -> the sentence vector [B, H] (pooling, pooler, L2)."""
        import tensorflow as tf

        w, batch, seq, hidden = self.w, self._batch, self._seq, self.w.hidden_size
        if w.pooling == "mean":
            h = tf.reshape(self._joined(h), [batch, seq, hidden])
            keep = tf.expand_dims(tf.gather(self._const([0.0, 1.0]), mask), -1)  # [B, S, 1]
            pooled = tf.reduce_sum(h * keep, axis=1)
            if not w.normalize:  # a normalised vector does not depend on the 1/count factor
                count = tf.reduce_sum(mask, axis=1)
                table = 1.0 / np.maximum(np.arange(self.max_len + 1), 1.0)
                pooled = pooled * tf.expand_dims(tf.gather(self._const(table), count), -1)
        else:  # the first token: with split_first the other rows' last FFN is dead code (pruned)
            pooled = h[0] if w.split_first else tf.reshape(h[0], [batch, seq, hidden])[:, 0]
            if w.pooler is not None:
                pooled = self._dense(pooled, w.pooler, activation=w.pooler_activation)
        if w.normalize:
            pooled = tf.math.l2_normalize(pooled, axis=-1, epsilon=1e-12)
        return pooled
