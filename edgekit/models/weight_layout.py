"""Which HF tensor fills which weight of ``build_encoder``'s layers (no TensorFlow needed)."""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.models.bert_config import BertConfig


@dataclass(frozen=True)
class WeightSlot:
    """One Keras layer and the HF tensors that fill its weights, in ``get_weights()`` order.

    HF stores Dense kernels as [out, in]; Keras as [in, out], hence ``transpose``. Tensors of
    the base model carry a ``bert.`` prefix inside task models; heads (``in_base_model=False``)
    never do.
    """

    layer: str
    hf_names: tuple[str, ...]
    transpose: bool = False
    in_base_model: bool = True


def weight_slots(config: BertConfig) -> list[WeightSlot]:
    """The complete weight layout of ``build_encoder(config)`` (HF names without ``bert.``)."""
    slots = [
        WeightSlot("word_embeddings", ("embeddings.word_embeddings.weight",)),
        WeightSlot("position_embeddings", ("embeddings.position_embeddings.weight",)),
        WeightSlot("embeddings_layer_norm", ("embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias")),
    ]
    if config.type_vocab_size:
        slots.append(WeightSlot("token_type_embeddings", ("embeddings.token_type_embeddings.weight",)))
    for i in range(config.num_layers):
        hf = f"encoder.layer.{i}."
        for name, path in (
            ("query", "attention.self.query"),
            ("key", "attention.self.key"),
            ("value", "attention.self.value"),
            ("attention_output", "attention.output.dense"),
            ("intermediate", "intermediate.dense"),
            ("output", "output.dense"),
        ):
            slots.append(WeightSlot(f"layer_{i}_{name}", (f"{hf}{path}.weight", f"{hf}{path}.bias"), True))
        for name, path in (("attention_layer_norm", "attention.output.LayerNorm"), ("output_layer_norm", "output.LayerNorm")):
            slots.append(WeightSlot(f"layer_{i}_{name}", (f"{hf}{path}.weight", f"{hf}{path}.bias")))
    if config.pooling == "pooler":
        slots.append(WeightSlot("pooler", ("pooler.dense.weight", "pooler.dense.bias"), True))
    if config.num_labels:
        slots.append(WeightSlot("classifier", ("classifier.weight", "classifier.bias"), True, in_base_model=False))
    return slots
