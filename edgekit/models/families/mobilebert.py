"""MobileBERT: BERT's tensor names (``mobilebert.`` prefix) plus its bottleneck, stacked-FFN and
``embedding_transformation`` tensors, which edgekit keeps under the same names; the block shape
is ``models.bottleneck``. The pooler is dense + tanh when ``classifier_activation`` is true
(edgekit's ``pooler`` pooling), else the first token."""

from edgekit.models.families import Family

FAMILY = Family(
    model_type="mobilebert", class_prefix="MobileBert", base_prefix="mobilebert",
    ignored=("cls.", "embeddings.position_ids"),
    bottleneck=True,
)
