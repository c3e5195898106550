"""ALBERT: BERT's block under other names, run by ``num_hidden_layers`` blocks that share the
``num_hidden_groups`` stored layers (``sharing``); embeddings of ``embedding_size`` always
projected to the hidden size (``encoder.embedding_hidden_mapping_in``); the pooler is a bare
``pooler`` dense + tanh; SentencePiece Unigram tokenizer."""

from edgekit.models.families import Family

_LAYER, _OURS = "encoder.albert_layer_groups.{i}.albert_layers.0.", "encoder.layer.{i}."
FAMILY = Family(
    model_type="albert", class_prefix="Albert", base_prefix="albert",
    base=(
        ("encoder.embedding_hidden_mapping_in.", "embeddings_project."),
        ("pooler.", "pooler.dense."),
        (_LAYER + "attention.query.", _OURS + "attention.self.query."),
        (_LAYER + "attention.key.", _OURS + "attention.self.key."),
        (_LAYER + "attention.value.", _OURS + "attention.self.value."),
        (_LAYER + "attention.dense.", _OURS + "attention.output.dense."),
        (_LAYER + "attention.LayerNorm.", _OURS + "attention.output.LayerNorm."),
        (_LAYER + "ffn_output.", _OURS + "output.dense."),
        (_LAYER + "ffn.", _OURS + "intermediate.dense."),
        (_LAYER + "full_layer_layer_norm.", _OURS + "output.LayerNorm."),
    ),
    ignored=("predictions.", "sop_classifier.", "embeddings.position_ids", "embeddings.token_type_ids"),
    written={"position_embedding_type": "absolute"},
    embedding_projection=True, always_project=True, shared_layers=True, tokenizer="SentencePiece Unigram",
)
