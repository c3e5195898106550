"""BERT (and every model saved as BertModel, e.g. MiniLM): edgekit's own names, nothing to map."""

from edgekit.models.families import Family

FAMILY = Family(model_type="bert", class_prefix="Bert", base_prefix="bert",
                ignored=("cls.", "embeddings.position_ids"),
                written={"position_embedding_type": "absolute"})
