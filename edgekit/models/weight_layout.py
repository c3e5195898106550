"""Which tensor fills which weight of ``build_encoder``'s layers (no TensorFlow needed).

Tensors are named by edgekit's names: BERT's HF names without the ``bert.`` prefix, plus
ELECTRA's ``embeddings_project`` and MobileBERT's bottleneck tensors (its own names,
``bottleneck_slots``); ``families`` maps each family's HF names onto them."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit import tasks
from edgekit.models.bert_config import BertConfig


@dataclass(frozen=True)
class WeightSlot:
    """One Keras layer and the HF tensors that fill its weights, in ``get_weights()`` order.

    HF stores Dense kernels as [out, in]; Keras as [in, out], hence ``transpose``. ``shapes``
    are the HF tensors' shapes, so a checkpoint can be checked before TensorFlow builds (and
    allocates) a model from its config.json. Tensors of the base model carry the family's prefix
    (``bert.``) inside task models; heads (``in_base_model=False``) never do.
    """

    layer: str
    hf_names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    transpose: bool = False
    in_base_model: bool = True


def graph_positions(config: BertConfig, tensors: dict) -> tuple:
    """(positions [max_positions, E] for ids 0.., token types [T, E] or None) as a graph builder
    reads them: the rows from the position offset on (RoBERTa), and a single token type added to
    every position row, with no token_type_ids input."""
    positions = tensors["embeddings.position_embeddings.weight"][config.position_offset:]
    types = tensors.get("embeddings.token_type_embeddings.weight") if config.type_vocab_size else None
    if config.type_vocab_size == 1:
        return positions + types[0], None
    return positions, types


def weight_slots(config: BertConfig) -> list[WeightSlot]:
    """The complete weight layout of ``build_encoder(config)``, by edgekit's tensor names."""
    h, a, f, e = config.hidden_size, config.all_head_size, config.intermediate_size, config.embedding_width
    norm = ((h,), (h,))

    def dense(layer: str, path: str, out: int, into: int, **kw) -> WeightSlot:
        return WeightSlot(layer, (f"{path}.weight", f"{path}.bias"), ((out, into), (out,)), True, **kw)

    slots = [
        WeightSlot("word_embeddings", ("embeddings.word_embeddings.weight",), ((config.vocab_size, config.word_width),)),
        WeightSlot("position_embeddings", ("embeddings.position_embeddings.weight",),
                   ((config.max_position_embeddings, e),)),
        WeightSlot("embeddings_layer_norm", ("embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"),
                   ((e,), (e,))),
    ]
    if config.type_vocab_size:
        slots.append(WeightSlot("token_type_embeddings", ("embeddings.token_type_embeddings.weight",),
                                ((config.type_vocab_size, e),)))
    if config.embedding_size is not None:
        slots.append(dense("embeddings_project", "embeddings_project", h, e))
    if config.bottleneck is not None:
        slots.append(dense("embedding_transformation", "embeddings.embedding_transformation", h,
                           config.bottleneck.embedded_width))
        slots += bottleneck_slots(config, dense)
    for i in range(config.num_layers if config.bottleneck is None else 0):
        hf = f"encoder.layer.{i}."
        for name, path, out, into in (
            ("query", "attention.self.query", a, h),
            ("key", "attention.self.key", a, h),
            ("value", "attention.self.value", a, h),
            ("attention_output", "attention.output.dense", h, a),
            ("intermediate", "intermediate.dense", f, h),
            ("output", "output.dense", h, f),
        ):
            slots.append(dense(f"layer_{i}_{name}", hf + path, out, into))
        for name, path in (("attention_layer_norm", "attention.output.LayerNorm"), ("output_layer_norm", "output.LayerNorm")):
            slots.append(WeightSlot(f"layer_{i}_{name}", (f"{hf}{path}.weight", f"{hf}{path}.bias"), norm))
    if config.pooling == "pooler":
        slots.append(dense("pooler", "pooler.dense", h, h))
    head = tasks.for_config(config).head(config)
    if head is not None:
        slots.append(dense(head.layer, head.layer, head.width, h, in_base_model=False))
    return slots


def bottleneck_slots(config: BertConfig, dense) -> list[WeightSlot]:
    """MobileBERT's blocks (``models.bottleneck``), by its HF names: Keras layer ``layer_<i>_<part>``
    for the Dense at ``encoder.layer.<i>.<path>``, ``..._norm`` for the NoNorm after it."""
    h, t, f, a = config.hidden_size, config.block_width, config.intermediate_size, config.all_head_size
    slots = []
    for i in range(config.num_layers):
        parts = [("bottleneck_input", "bottleneck.input", t, h, True),
                 ("bottleneck_attention", "bottleneck.attention", t, h, True),
                 ("query", "attention.self.query", a, t, False), ("key", "attention.self.key", a, t, False),
                 ("value", "attention.self.value", a, h, False),
                 ("attention_output", "attention.output", t, a, True)]
        for j in range(config.bottleneck.feedforwards - 1):
            parts += [(f"ffn_{j}_intermediate", f"ffn.{j}.intermediate", f, t, False),
                      (f"ffn_{j}_output", f"ffn.{j}.output", t, f, True)]
        parts += [("intermediate", "intermediate", f, t, False), ("output", "output", t, f, True),
                  ("output_bottleneck", "output.bottleneck", h, t, True)]
        for name, path, out, into, normed in parts:
            hf = f"encoder.layer.{i}.{path}"
            slots.append(dense(f"layer_{i}_{name}", hf if name in ("query", "key", "value") else f"{hf}.dense",
                               out, into))
            if normed:
                slots.append(WeightSlot(f"layer_{i}_{name}_norm", (f"{hf}.LayerNorm.weight", f"{hf}.LayerNorm.bias"),
                                        ((out,), (out,))))
    return slots
