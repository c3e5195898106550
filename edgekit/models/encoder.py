"""edgekit's BERT-class encoder in tf-keras, and how its layers map to HF weight names.

Inputs (int32): ``input_ids`` [B, S], ``attention_mask`` [B, S] and, when the config has
token types, ``token_type_ids`` [B, S]. Outputs (dict): ``last_hidden_state`` [B, S, H],
``pooled`` [B, H] (the sentence vector: cls / mean / pooler, L2-normalised if configured),
the task's named outputs (``edgekit.tasks``: ``embedding`` = ``pooled`` without a head, else
the head's, e.g. ``logits`` or ``start_logits`` / ``end_logits``), and optionally ``hidden_states`` (L+1 × [B, S, H])
and ``attentions`` (L × [B, N, S, S]) for distillation. Layer names are the ones
``weight_layout.weight_slots`` maps to edgekit's tensor names. Every family is this one graph:
BERT's post-LayerNorm blocks (MobileBERT's bottlenecked ones) over word + position (+ token
type) embeddings, with the family's differences taken from the config (see ``BertConfig``). Query, key and value are
``num_heads * head_size`` wide, which is less than H in head-pruned models.

``importance_masks=True`` adds two float inputs, ``head_mask`` [B, L, N] and ``ffn_mask``
[B, L * F, intermediate_size] (F = ``config.ffns_per_block``: MobileBERT's stacked FFNs, row
``i * F + j`` for FFN j of block i), that multiply each head's context and each FFN neuron's
activation (1 = unchanged); gradients with respect to them are what
``edgekit.train.prune`` ranks heads and neurons by. Exported models never have them.
"""

from __future__ import annotations

from edgekit import tasks
from edgekit._tf import tf_modules
from edgekit.models import layers as L
from edgekit.models.bert_config import BertConfig

tf, keras = tf_modules()


def _init():
    """BERT's initialiser; a new instance per layer (Keras warns when one is shared)."""
    return keras.initializers.TruncatedNormal(stddev=0.02)


def _dense(units: int, name: str, activation=None):
    return keras.layers.Dense(units, activation=activation, name=name, kernel_initializer=_init())


def _layer_norm(config: BertConfig, name: str):
    if config.bottleneck is not None:  # MobileBERT: NoNorm everywhere
        return L.NoNorm(name=name)
    return keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, name=name)


def _ffn(config: BertConfig, name: str, x, mask=None):
    """Dense to the intermediate size + activation (times the FFN mask): [B, S, W] -> [B, S, I]."""
    ffn = L.HiddenActivation(config.hidden_act, name=f"{name}_activation")(
        _dense(config.intermediate_size, f"{name}_intermediate")(x))
    return ffn if mask is None else ffn * mask[:, None, :]


def _transformer_block(config: BertConfig, i: int, x, bias, masks=None):
    """One post-LayerNorm BERT block: [B, S, H] -> ([B, S, H], attention probs)."""
    split = L.SplitHeads(config.num_heads, config.head_size, name=f"layer_{i}_split_heads")
    q, k, v = (split(_dense(config.all_head_size, f"layer_{i}_{n}")(x)) for n in ("query", "key", "value"))
    if masks is not None:
        # Scaling a head's values scales its context (context = probs @ v) by the same factor.
        v = L.ScaleHeads(name=f"layer_{i}_head_mask")(v, masks[0][:, i])
    context, probs = L.ScaledDotProductAttention(config.attention_dropout, name=f"layer_{i}_attention")(q, k, v, bias)
    attn = _dense(config.hidden_size, f"layer_{i}_attention_output")(context)
    attn = keras.layers.Dropout(config.hidden_dropout)(attn)
    x = _layer_norm(config, f"layer_{i}_attention_layer_norm")(x + attn)
    ffn = _ffn(config, f"layer_{i}", x, None if masks is None else masks[1][:, i])
    ffn = _dense(config.hidden_size, f"layer_{i}_output")(ffn)
    ffn = keras.layers.Dropout(config.hidden_dropout)(ffn)
    return _layer_norm(config, f"layer_{i}_output_layer_norm")(x + ffn), probs


def _bottleneck_block(config: BertConfig, i: int, x, bias, masks=None):
    """One MobileBERT block (``models.bottleneck``): [B, S, H] -> ([B, S, H], attention probs);
    inside it [B, S, T]."""
    t = config.block_width

    def dense_norm(y, part: str, units: int, residual=None):
        y = _dense(units, f"layer_{i}_{part}")(y)
        return L.NoNorm(name=f"layer_{i}_{part}_norm")(y if residual is None else y + residual)

    inner = dense_norm(x, "bottleneck_input", t)
    shared = dense_norm(x, "bottleneck_attention", t)  # the query's and key's input
    split = L.SplitHeads(config.num_heads, config.head_size, name=f"layer_{i}_split_heads")
    q, k, v = (split(_dense(config.all_head_size, f"layer_{i}_{n}")(y)) for n, y in
               (("query", shared), ("key", shared), ("value", x)))
    if masks is not None:
        v = L.ScaleHeads(name=f"layer_{i}_head_mask")(v, masks[0][:, i])
    context, probs = L.ScaledDotProductAttention(config.attention_dropout, name=f"layer_{i}_attention")(q, k, v, bias)
    y = dense_norm(context, "attention_output", t, inner)
    f = config.ffns_per_block
    for j in range(f - 1):
        y = dense_norm(_ffn(config, f"layer_{i}_ffn_{j}", y, None if masks is None else masks[1][:, i * f + j]),
                       f"ffn_{j}_output", t, y)
    y = dense_norm(_ffn(config, f"layer_{i}", y, None if masks is None else masks[1][:, i * f + f - 1]), "output", t, y)
    out = keras.layers.Dropout(config.hidden_dropout)(_dense(config.hidden_size, f"layer_{i}_output_bottleneck")(y))
    return L.NoNorm(name=f"layer_{i}_output_bottleneck_norm")(out + x), probs


def build_encoder(
    config: BertConfig,
    *,
    output_hidden_states: bool = False,
    output_attentions: bool = False,
    importance_masks: bool = False,
    mask_lookup: bool = False,
):
    """A randomly initialised tf-keras functional model for ``config`` (dynamic B and S).

    ``mask_lookup``: build the padding bias as a table lookup (``layers.AttentionMaskBias``),
    for graphs converted to full-int8 TFLite; same outputs."""
    input_ids = keras.Input((None,), dtype="int32", name="input_ids")
    attention_mask = keras.Input((None,), dtype="int32", name="attention_mask")
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    masks = None
    if importance_masks:
        masks = (keras.Input((config.num_layers, config.num_heads), name="head_mask"),
                 keras.Input((config.num_layers * config.ffns_per_block, config.intermediate_size), name="ffn_mask"))
        inputs.update(head_mask=masks[0], ffn_mask=masks[1])

    e = config.embedding_width
    x = keras.layers.Embedding(config.vocab_size, config.word_width, embeddings_initializer=_init(),
                               name="word_embeddings")(input_ids)
    if config.bottleneck is not None:  # MobileBERT: [B, S, E] (trigrams: 3E) -> [B, S, H] before positions
        if config.bottleneck.trigram:
            x = L.Trigram(name="trigram")(x)
        x = _dense(config.hidden_size, "embedding_transformation")(x)
    x = x + L.PositionEmbedding(config.max_position_embeddings, e, config.position_offset,
                                name="position_embeddings")(input_ids)
    if config.type_vocab_size == 1:  # one token type (RoBERTa): its row is added to every token, no input
        x = L.SingleTypeEmbedding(e, name="token_type_embeddings")(x)
    elif config.type_vocab_size:
        token_type_ids = keras.Input((None,), dtype="int32", name="token_type_ids")
        inputs["token_type_ids"] = token_type_ids
        x = x + keras.layers.Embedding(config.type_vocab_size, e, embeddings_initializer=_init(),
                                       name="token_type_embeddings")(token_type_ids)
    x = _layer_norm(config, "embeddings_layer_norm")(x)
    x = keras.layers.Dropout(config.hidden_dropout)(x)
    if config.embedding_size is not None:
        x = _dense(config.hidden_size, "embeddings_project")(x)

    bias = L.AttentionMaskBias(config.mask_bias, lookup=mask_lookup, name="attention_mask_bias")(attention_mask)
    hidden_states, attentions = [x], []
    block = _transformer_block if config.bottleneck is None else _bottleneck_block
    for i in range(config.num_layers):
        x, probs = block(config, i, x, bias, masks)
        hidden_states.append(x)
        attentions.append(probs)

    if config.pooling == "pooler":
        act = config.pooler_activation
        pooled = _dense(config.hidden_size, "pooler", activation=act if act in ("tanh", "relu") else None)(x[:, 0])
        if act not in ("tanh", "relu"):
            pooled = L.HiddenActivation(act, name="pooler_activation")(pooled)
    else:
        pooled = L.Pooling(config.pooling, name="pooling")(x, attention_mask)
    if config.normalize:
        pooled = L.L2Normalize(name="normalize")(pooled)

    outputs = {"last_hidden_state": x, "pooled": pooled}
    head = tasks.for_config(config).head(config)
    if head is None:
        outputs["embedding"] = pooled
    else:
        features = keras.layers.Dropout(config.hidden_dropout)(pooled if head.over == "pooled" else x)
        outputs.update(head.split(_dense(head.width, head.layer)(features)))
    if output_hidden_states:
        outputs["hidden_states"] = hidden_states
    if output_attentions:
        outputs["attentions"] = attentions
    return keras.Model(inputs, outputs, name="bert_encoder")
