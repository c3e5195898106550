"""RoBERTa and XLM-RoBERTa: BERT's tensors and block; positions start at ``pad_token_id + 1``,
one token type; the sentence head is ``classifier.dense`` (+ tanh, on ``<s>``) then
``classifier.out_proj``, which is BERT's pooler and classifier under other names."""

from edgekit.models.families import Family

_COMMON = {
    "base_prefix": "roberta",
    "sequence_head": (("classifier.dense.", "pooler.dense."), ("classifier.out_proj.", "classifier.")),
    "ignored": ("lm_head.", "embeddings.position_ids", "embeddings.token_type_ids"),
    "written": {"position_embedding_type": "absolute"},
    "offset_positions": True,
}
FAMILY = Family(model_type="roberta", class_prefix="Roberta", tokenizer="byte-level BPE", **_COMMON)
XLM_FAMILY = Family(model_type="xlm-roberta", class_prefix="XLMRoberta", tokenizer="SentencePiece Unigram", **_COMMON)
