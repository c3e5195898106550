"""MobileBERT's block shape, read from and written to its HF ``config.json`` (``BertConfig.bottleneck``).

A MobileBERT block runs at a narrow inner width T (``intra_bottleneck_size``) inside a wider
residual stream H: a bottleneck dense H -> T feeds the attention's residual path, a second one
(``key_query_shared_bottleneck``) the query and key, the value reads the stream itself; after
attention ``feedforwards - 1`` stacked FFNs (T -> I -> T, each with its residual) and the
block's own FFN, whose output is projected back T -> H and added to the block input. Every
normalisation is ``NoNorm`` (x * weight + bias). Word embeddings are E wide; with
``trigram`` each token's row is concatenated with its right and left neighbours' (zero past
the ends): [B, S, 3E], and ``embedding_transformation`` projects that to H before positions
and token types are added.

Read: the configuration every released MobileBERT uses (bottleneck, shared query/key
bottleneck, no_norm); the others are refused in one line until a fixture proves them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgekit.errors import ModelLoadError
from edgekit.models.files import json_value

# config.json key -> value edgekit builds (the variants transformers also has are refused).
_REQUIRED = {"use_bottleneck": True, "key_query_shared_bottleneck": True, "use_bottleneck_attention": False,
             "normalization_type": "no_norm"}


@dataclass(frozen=True)
class Bottleneck:
    """``embedding_size`` E, ``size`` T (< or = H), ``feedforwards`` FFNs per block (≥ 1)."""

    embedding_size: int
    size: int
    feedforwards: int = 1
    trigram: bool = True

    @property
    def embedded_width(self) -> int:
        """Width of the word embeddings as ``embedding_transformation`` reads them (3E with trigrams)."""
        return self.embedding_size * (3 if self.trigram else 1)

    def check(self, hidden_size: int, num_heads: int) -> None:
        for key, value in (("embedding_size", self.embedding_size), ("intra_bottleneck_size", self.size),
                           ("num_feedforward_networks", self.feedforwards)):
            if value < 1:
                raise ModelLoadError(f"{key} must be at least 1, got {value}")
        if self.size % num_heads:
            raise ModelLoadError(f"intra_bottleneck_size {self.size} is not divisible by num_attention_heads "
                                 f"{num_heads}")
        if not self.trigram and self.embedding_size == hidden_size:
            raise ModelLoadError("trigram_input false with embedding_size equal to hidden_size (no "
                                 "embedding_transformation) is not supported; expected trigram_input true")

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> "Bottleneck":
        for key, value in _REQUIRED.items():
            if hf.get(key, value) != value:
                raise ModelLoadError(f"{key} {json_value(hf[key])}: edgekit builds MobileBERT's released layout "
                                     f"(expected {json_value(value)})")
        values = {}
        for key, field, kind in (("embedding_size", "embedding_size", int), ("intra_bottleneck_size", "size", int),
                                 ("num_feedforward_networks", "feedforwards", int), ("trigram_input", "trigram", bool)):
            if key not in hf:
                if key in ("embedding_size", "intra_bottleneck_size"):
                    raise ModelLoadError(f"no {key} (expected in a MobileBERT config.json)")
                continue
            value = hf[key]
            if isinstance(value, bool) != (kind is bool) or not isinstance(value, kind):
                raise ModelLoadError(f"{key}: expected {'true or false' if kind is bool else 'an integer'}, "
                                     f"got {json_value(value)}")
            values[field] = value
        true_size = hf.get("true_hidden_size", values["size"])
        if true_size != values["size"]:
            raise ModelLoadError(f"true_hidden_size {json_value(true_size)}: expected intra_bottleneck_size "
                                 f"{values['size']} (a bottlenecked MobileBERT)")
        return cls(**values)

    def to_hf(self) -> dict[str, Any]:
        return {**_REQUIRED, "embedding_size": self.embedding_size, "intra_bottleneck_size": self.size,
                "true_hidden_size": self.size, "num_feedforward_networks": self.feedforwards,
                "trigram_input": self.trigram}
