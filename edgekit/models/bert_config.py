"""Architecture facts of a BERT-class encoder, read from and written to HF ``config.json``."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgekit.errors import ModelLoadError

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish")
POOLINGS = ("cls", "mean", "pooler")

# HF config.json key -> BertConfig field. Keys not listed keep their HF names.
_HF_KEYS = {
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "hidden_dropout_prob": "hidden_dropout",
    "attention_probs_dropout_prob": "attention_dropout",
}


@dataclass(frozen=True)
class BertConfig:
    """One encoder covers BERT, MiniLM, TinyBERT and narrower/shallower students.

    ``num_labels == 0`` means a plain encoder (feature extraction); otherwise a classifier head
    of that many outputs sits on the pooled vector. ``mask_bias`` is the additive attention
    bias for padding: any value ≤ -30 gives float outputs identical to -10000, and bounded
    values are what keeps int8 activations usable (see ``shared/notes``).
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    hidden_dropout: float = 0.1
    attention_dropout: float = 0.1
    pad_token_id: int = 0
    pooling: str = "pooler"
    normalize: bool = False
    num_labels: int = 0
    id2label: tuple[str, ...] = ()
    mask_bias: float = -10000.0

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_heads:
            raise ModelLoadError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_heads}"
            )
        if self.hidden_act not in ACTIVATIONS:
            raise ModelLoadError(
                f"hidden_act {self.hidden_act!r} is not supported (expected one of {', '.join(ACTIVATIONS)})"
            )
        if self.pooling not in POOLINGS:
            raise ModelLoadError(f"pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}")
        if self.num_labels and len(self.id2label) != self.num_labels:
            raise ModelLoadError(f"id2label has {len(self.id2label)} names for {self.num_labels} labels")

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def task(self) -> str:
        return "text-classification" if self.num_labels else "feature-extraction"

    def replace(self, **changes: Any) -> "BertConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_hf(cls, hf: dict[str, Any], *, num_labels: int = 0) -> "BertConfig":
        """Build from a HF ``config.json`` dict; ``num_labels`` comes from the classifier weights."""
        model_type = hf.get("model_type", "bert")
        if model_type != "bert":
            raise ModelLoadError(f"model_type {model_type!r} is not supported (edgekit reads BERT-layout checkpoints)")
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise ModelLoadError("only absolute position embeddings are supported")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {_HF_KEYS.get(k, k): v for k, v in hf.items() if _HF_KEYS.get(k, k) in names}
        values.pop("id2label", None)
        edgekit = hf.get("edgekit", {})
        values.update({k: v for k, v in edgekit.items() if k in names})
        if num_labels:
            id2label = hf.get("id2label") or {}
            values["id2label"] = tuple(
                str(id2label.get(str(i), id2label.get(i, f"LABEL_{i}"))) for i in range(num_labels)
            )
        missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in values]
        if missing:
            raise ModelLoadError(f"config.json lacks {', '.join(missing)}")
        return cls(**values, num_labels=num_labels)

    def to_hf(self) -> dict[str, Any]:
        """HF ``config.json`` content that transformers' BertModel / BertForSequenceClassification load."""
        reverse = {v: k for k, v in _HF_KEYS.items()}
        hf: dict[str, Any] = {"model_type": "bert", "position_embedding_type": "absolute"}
        for f in dataclasses.fields(self):
            if f.name in ("pooling", "normalize", "num_labels", "id2label", "mask_bias"):
                continue
            hf[reverse.get(f.name, f.name)] = getattr(self, f.name)
        if self.num_labels:
            hf["architectures"] = ["BertForSequenceClassification"]
            hf["id2label"] = {str(i): name for i, name in enumerate(self.id2label)}
            hf["label2id"] = {name: i for i, name in enumerate(self.id2label)}
        else:
            hf["architectures"] = ["BertModel"]
        # transformers ignores unknown keys; edgekit reads these back.
        hf["edgekit"] = {"pooling": self.pooling, "normalize": self.normalize, "mask_bias": self.mask_bias}
        return hf
