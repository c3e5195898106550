"""Model import: HF BERT-class checkpoints <-> edgekit's tf-keras encoder (no torch)."""

from edgekit.models.bert_config import BertConfig
from edgekit.models.pretrained import Pretrained, load_pretrained
from edgekit.models.registry import ALIASES, resolve_model
from edgekit.models.tokenizer import TextTokenizer

__all__ = ["ALIASES", "BertConfig", "Pretrained", "TextTokenizer", "load_pretrained", "resolve_model"]
