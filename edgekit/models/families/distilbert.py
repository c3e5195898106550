"""DistilBERT: BERT's post-LayerNorm block under other names, no token types, no pooler; its
sentence head is ``pre_classifier`` (dense + ReLU on the first token) then ``classifier``."""

from edgekit.models.families import Family

_LAYER, _OURS = "transformer.layer.{i}.", "encoder.layer.{i}."
FAMILY = Family(
    model_type="distilbert", class_prefix="DistilBert", base_prefix="distilbert",
    base=(
        (_LAYER + "attention.q_lin.", _OURS + "attention.self.query."),
        (_LAYER + "attention.k_lin.", _OURS + "attention.self.key."),
        (_LAYER + "attention.v_lin.", _OURS + "attention.self.value."),
        (_LAYER + "attention.out_lin.", _OURS + "attention.output.dense."),
        (_LAYER + "sa_layer_norm.", _OURS + "attention.output.LayerNorm."),
        (_LAYER + "ffn.lin1.", _OURS + "intermediate.dense."),
        (_LAYER + "ffn.lin2.", _OURS + "output.dense."),
        (_LAYER + "output_layer_norm.", _OURS + "output.LayerNorm."),
    ),
    sequence_head=(("pre_classifier.", "pooler.dense."),),
    config_keys={"dim": "hidden_size", "hidden_dim": "intermediate_size", "n_layers": "num_hidden_layers",
                 "n_heads": "num_attention_heads", "dropout": "hidden_dropout_prob",
                 "attention_dropout": "attention_probs_dropout_prob", "activation": "hidden_act"},
    # DistilBERT has no layer_norm_eps key: its LayerNorms are nn.LayerNorm(dim, eps=1e-12).
    fixed={"type_vocab_size": 0, "layer_norm_eps": 1e-12},
    written={"sinusoidal_pos_embds": False},
    ignored=("vocab_transform.", "vocab_layer_norm.", "vocab_projector.", "embeddings.position_ids"),
    token_types=False, pooler_activation="relu",
)
