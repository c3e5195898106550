"""ELECTRA (the discriminator): BERT's block over embeddings of ``embedding_size`` projected to
the hidden size (``embeddings_project``, when the two differ); no pooler; the sentence head is
``classifier.dense`` + exact GELU on ``[CLS]`` then ``classifier.out_proj``."""

from edgekit.models.families import Family

FAMILY = Family(
    model_type="electra", class_prefix="Electra", base_prefix="electra",
    sequence_head=(("classifier.dense.", "pooler.dense."), ("classifier.out_proj.", "classifier.")),
    ignored=("discriminator_predictions.", "generator_", "embeddings.position_ids"),
    written={"position_embedding_type": "absolute", "summary_type": "first", "summary_use_proj": True,
             "summary_activation": "gelu"},
    pooler_activation="gelu", embedding_projection=True,
)
