"""Weight-free tf-keras layers of the BERT encoder (the weights live in plain Dense /
LayerNormalization / Embedding layers so that tfmot can annotate them and checkpoints map
one-to-one). Shapes: B = batch, S = sequence, H = hidden, N = heads, D = head size (H / N
unless heads were pruned, when N * D < H).
"""

from __future__ import annotations

import math

from edgekit._tf import tf_modules

tf, keras = tf_modules()

_SQRT_HALF = 1.0 / math.sqrt(2.0)


def _gelu_erf(x):
    # Written out: Keras' exact GELU lowers to Erfc, which tf2onnx 1.17 cannot convert.
    return 0.5 * x * (1.0 + tf.math.erf(x * _SQRT_HALF))


def _gelu_tanh(x):
    return 0.5 * x * (1.0 + tf.math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


_ACTIVATIONS = {
    "gelu": _gelu_erf,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "relu": tf.nn.relu,
    "silu": tf.nn.silu,
    "swish": tf.nn.silu,
}


@keras.utils.register_keras_serializable("edgekit")
class HiddenActivation(keras.layers.Layer):
    """The FFN activation named by HF's ``hidden_act``."""

    def __init__(self, activation: str, **kwargs):
        super().__init__(**kwargs)
        self.activation = activation
        self._fn = _ACTIVATIONS[activation]

    def call(self, x):
        return self._fn(x)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


@keras.utils.register_keras_serializable("edgekit")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute positions: [B, S] ids -> [1, S, H] (rows offset..offset+S-1 of the table;
    RoBERTa's offset is pad_token_id + 1)."""

    def __init__(self, max_positions: int, hidden_size: int, offset: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.max_positions = max_positions
        self.hidden_size = hidden_size
        self.offset = offset

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.max_positions, self.hidden_size),
            initializer=keras.initializers.TruncatedNormal(stddev=0.02),
        )
        super().build(input_shape)

    def call(self, input_ids):
        length = tf.shape(input_ids)[1]
        if not self.offset:
            return self.embeddings[None, :length]
        return self.embeddings[None, self.offset: self.offset + length]

    def get_config(self):
        return {**super().get_config(), "max_positions": self.max_positions, "hidden_size": self.hidden_size,
                "offset": self.offset}


@keras.utils.register_keras_serializable("edgekit")
class SingleTypeEmbedding(keras.layers.Layer):
    """A one-row token-type table (RoBERTa's ``type_vocab_size`` 1): [B, S, H] + row 0."""

    def __init__(self, hidden_size: int, **kwargs):
        super().__init__(**kwargs)
        self.hidden_size = hidden_size

    def build(self, input_shape):
        self.embeddings = self.add_weight(name="embeddings", shape=(1, self.hidden_size),
                                          initializer=keras.initializers.TruncatedNormal(stddev=0.02))
        super().build(input_shape)

    def call(self, x):
        return x + self.embeddings[0]

    def get_config(self):
        return {**super().get_config(), "hidden_size": self.hidden_size}


@keras.utils.register_keras_serializable("edgekit")
class AttentionMaskBias(keras.layers.Layer):
    """[B, S] 0/1 mask -> [B, 1, 1, S] additive bias: 0 for real tokens, ``bias`` for padding.

    ``lookup=True`` computes the same values as ``gather([bias, 0], mask)`` instead of
    casting the int32 mask to float: a full-int8 TFLite graph then has no float CAST on the
    mask path (the lookup table is quantized like any constant)."""

    def __init__(self, bias: float, lookup: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.bias = bias
        self.lookup = lookup

    def call(self, attention_mask):
        if self.lookup:
            bias = tf.gather(tf.constant([self.bias, 0.0], self.compute_dtype), attention_mask)
        else:
            bias = (1.0 - tf.cast(attention_mask, self.compute_dtype)) * self.bias
        # expand_dims, not [:, None, None, :]: TFLite cannot convert a new-axis strided slice
        # of a tensor whose batch and sequence sizes are both unknown.
        return tf.expand_dims(tf.expand_dims(bias, 1), 1)

    def get_config(self):
        return {**super().get_config(), "bias": self.bias, "lookup": self.lookup}


@keras.utils.register_keras_serializable("edgekit")
class SplitHeads(keras.layers.Layer):
    """[B, S, N * D] -> [B, N, S, D] (``head_size`` None: the last axis divided by N)."""

    def __init__(self, num_heads: int, head_size: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.head_size = head_size

    def call(self, x):
        head_size = self.head_size or x.shape[-1] // self.num_heads
        x = tf.reshape(x, [-1, tf.shape(x)[1], self.num_heads, head_size])
        return tf.transpose(x, [0, 2, 1, 3])

    def get_config(self):
        return {**super().get_config(), "num_heads": self.num_heads, "head_size": self.head_size}


@keras.utils.register_keras_serializable("edgekit")
class ScaleHeads(keras.layers.Layer):
    """[B, N, S, D] * [B, N] -> [B, N, S, D]: one factor per example and head (importance masks)."""

    def call(self, x, scale):
        return x * tf.cast(scale, x.dtype)[:, :, None, None]


@keras.utils.register_keras_serializable("edgekit")
class ScaledDotProductAttention(keras.layers.Layer):
    """(q, k, v: [B, N, S, D], bias: [B, 1, 1, S]) -> (context [B, S, N * D], probs [B, N, S, S])."""

    def __init__(self, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.dropout_rate = dropout
        self.dropout = keras.layers.Dropout(dropout)

    def call(self, q, k, v, bias, training=None):
        scale = 1.0 / math.sqrt(q.shape[-1])
        scores = tf.matmul(q * scale, k, transpose_b=True) + bias
        probs = tf.nn.softmax(scores, axis=-1)
        context = tf.matmul(self.dropout(probs, training=training), v)
        context = tf.transpose(context, [0, 2, 1, 3])
        hidden = q.shape[1] * q.shape[-1]
        return tf.reshape(context, [-1, tf.shape(context)[1], hidden]), probs

    def get_config(self):
        return {**super().get_config(), "dropout": self.dropout_rate}


@keras.utils.register_keras_serializable("edgekit")
class Pooling(keras.layers.Layer):
    """[B, S, H] hidden states + [B, S] mask -> [B, H]: first token, or mean over real tokens."""

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode

    def call(self, hidden, attention_mask):
        if self.mode == "cls":
            return hidden[:, 0]
        mask = tf.expand_dims(tf.cast(attention_mask, hidden.dtype), -1)  # see AttentionMaskBias
        total = tf.reduce_sum(hidden * mask, axis=1)
        return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1e-9)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.utils.register_keras_serializable("edgekit")
class L2Normalize(keras.layers.Layer):
    """[B, H] -> unit-length rows (sentence-transformers' Normalize module)."""

    def call(self, x):
        return tf.math.l2_normalize(x, axis=-1, epsilon=1e-12)


@keras.utils.register_keras_serializable("edgekit")
class NoNorm(keras.layers.Layer):
    """MobileBERT's normalisation: [.., W] * gamma + beta (no statistics; weights in
    LayerNormalization's order, so checkpoints map the same way)."""

    def build(self, input_shape):
        width = input_shape[-1]
        self.gamma = self.add_weight(name="gamma", shape=(width,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(width,), initializer="zeros")
        super().build(input_shape)

    def call(self, x):
        return x * self.gamma + self.beta


@keras.utils.register_keras_serializable("edgekit")
class Trigram(keras.layers.Layer):
    """[B, S, E] -> [B, S, 3E]: the right neighbour's row, the token's own, the left neighbour's
    (MobileBERT's ``trigram_input``; zero rows past either end)."""

    def call(self, x):
        right = tf.pad(x[:, 1:], [[0, 0], [0, 1], [0, 0]])
        left = tf.pad(x[:, :-1], [[0, 0], [1, 0], [0, 0]])
        return tf.concat([right, x, left], axis=-1)
