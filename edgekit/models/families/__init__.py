"""Where BERT-class families differ, as data: one converter file per family maps its HF
``config.json`` keys and tensor names onto edgekit's (BERT's names without the ``bert.`` prefix,
``weight_layout``) and back. Everything past the converter (the tf-keras encoder, the ONNX and
TFLite graph builders, distillation, pruning) reads edgekit's names only.

``get(model_type)`` is the one table of families; a model_type not in it is refused in one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import ModelLoadError

TEXT_CLASSIFICATION = "text-classification"


@dataclass(frozen=True)
class Family:
    """One family's layout. Tensor-name pairs are (HF pattern, edgekit pattern) prefixes where
    ``{i}`` stands for a layer index; ``base`` pairs apply under the base model's prefix,
    ``sequence_head`` pairs to the top-level tensors of the sentence-classification head.

    ``config_keys``: HF key -> BERT key of the same meaning (keys not listed keep their name);
    ``fixed``: BERT keys with a value the family has no key for; ``written``: extra HF keys
    ``to_hf`` writes. ``offset_positions``: position ids start at ``pad_token_id + 1``
    (RoBERTa's ``create_position_ids_from_input_ids``). ``pooler_activation``: the activation
    of the sentence head's dense layer on the first token (BERT's pooler: tanh)."""

    model_type: str
    class_prefix: str  # transformers class names: f"{class_prefix}Model", f"{class_prefix}For..."
    base_prefix: str  # the base model's attribute inside task models ("bert" -> "bert.encoder...")
    base: tuple[tuple[str, str], ...] = ()
    sequence_head: tuple[tuple[str, str], ...] = ()
    config_keys: Mapping[str, str] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    written: Mapping[str, Any] = field(default_factory=dict)
    ignored: tuple[str, ...] = ()  # tensor prefixes a checkpoint may carry that edgekit does not use
    offset_positions: bool = False
    token_types: bool = True
    pooler_activation: str = "tanh"
    embedding_projection: bool = False  # embeddings of ``embedding_size`` projected to hidden_size
    always_project: bool = False  # the projection is there even when the widths are equal (ALBERT)
    shared_layers: bool = False  # blocks share stored layers (ALBERT's groups, ``sharing``)
    bottleneck: bool = False  # MobileBERT's bottlenecked blocks (``models.bottleneck``)
    tokenizer: str = "WordPiece"  # the tokenizer its checkpoints ship (read through tokenizer.json)

    @property
    def sentence_dense(self) -> bool:
        """Its sentence head always holds a dense layer on the first token (DistilBERT's
        pre_classifier, RoBERTa's and ELECTRA's classifier.dense): edgekit's pooler."""
        return any(ours == "pooler.dense." for _, ours in self.sequence_head)

    def architecture(self, bert_architecture: str) -> str:
        """transformers' class of this family for a task's BERT class (``BertForQuestionAnswering``)."""
        return self.class_prefix + bert_architecture.removeprefix("Bert")

    def config_values(self, hf: Mapping[str, Any]) -> dict[str, Any]:
        """A family config.json as BERT's keys (``BertConfig.from_hf`` reads the rest)."""
        values = {self.config_keys.get(k, k): v for k, v in hf.items()}
        values.update(self.fixed)
        return values

    def hf_config(self, bert: dict[str, Any]) -> dict[str, Any]:
        """BERT-keyed config.json content (``BertConfig.to_hf``) in this family's keys."""
        reverse = {v: k for k, v in self.config_keys.items()}
        hf = {reverse.get(k, k): v for k, v in bert.items() if k not in self.fixed}
        hf["model_type"] = self.model_type
        hf.update(self.written)
        return hf

    def to_edgekit(self, name: str) -> str:
        """An HF tensor name (with or without the base prefix) -> edgekit's name."""
        base = name.removeprefix(f"{self.base_prefix}.")
        if base == name:
            renamed = _rename(name, self.sequence_head, 0)
            if renamed is not None:
                return renamed
        return _rename(base, self.base, 0) or base

    def to_hf(self, name: str, *, in_base_model: bool, task_model: bool, task: str) -> str:
        """edgekit's tensor name -> the HF name transformers' class for ``task`` loads."""
        if task == TEXT_CLASSIFICATION:
            renamed = _rename(name, self.sequence_head, 1)
            if renamed is not None:
                return renamed
        if not in_base_model:
            return name
        name = _rename(name, self.base, 1) or name
        return f"{self.base_prefix}.{name}" if task_model else name

    def ignores(self, name: str) -> bool:
        return name.removeprefix(f"{self.base_prefix}.").startswith(self.ignored)


def _rename(name: str, pairs: tuple[tuple[str, str], ...], side: int) -> str | None:
    """``name`` with the first matching prefix of ``pairs`` (side 0: HF -> edgekit, 1: back) replaced."""
    for pair in pairs:
        source, target = pair[side], pair[1 - side]
        match = re.match(re.escape(source).replace(r"\{i\}", r"(?P<i>\d+)"), name)
        if match:
            index = match.groupdict().get("i")
            return target.replace("{i}", index or "") + name[match.end():]
    return None


def _table() -> dict[str, Family]:
    from edgekit.models.families import albert, bert, distilbert, electra, mobilebert, roberta

    return {f.model_type: f for f in (bert.FAMILY, distilbert.FAMILY, roberta.FAMILY, roberta.XLM_FAMILY,
                                      electra.FAMILY, albert.FAMILY, mobilebert.FAMILY)}


_FAMILIES: dict[str, Family] = {}
# Families transformers has that edgekit does not convert yet (named in the refusal).
NOT_YET = ("deberta-v2",)


def names() -> tuple[str, ...]:
    if not _FAMILIES:
        _FAMILIES.update(_table())
    return tuple(_FAMILIES)


def describe() -> list[str]:
    """One line per family for ``edgekit models`` (classes, tokenizer), then the families not converted yet."""
    lines = []
    for name in names():
        f = _FAMILIES[name]
        lines.append(f"{name:<12} {f.class_prefix}Model, {f.class_prefix}For{{Sequence,Token}}Classification, "
                     f"{f.class_prefix}ForQuestionAnswering; {f.tokenizer}")
    lines.append(f"{', '.join(NOT_YET)}: not converted yet (refused in one line)")
    return lines


def get(model_type: Any) -> Family:
    """The family of a config.json ``model_type``; a one-line ModelLoadError for any other."""
    known = names()
    if model_type not in known:
        later = f"; {model_type} is not converted yet" if model_type in NOT_YET else ""
        raise ModelLoadError(f"model_type {model_type!r} is not supported (expected one of {', '.join(known)}{later})")
    return _FAMILIES[model_type]


__all__ = ["Family", "describe", "get", "names"]
