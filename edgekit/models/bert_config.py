"""Architecture facts of a BERT-class encoder, read from and written to HF ``config.json``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from edgekit.errors import ModelLoadError
from edgekit.models.bottleneck import Bottleneck
from edgekit.models.files import json_kind, json_value

ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "relu", "silu", "swish")
POOLINGS = ("cls", "mean", "pooler")
# Lowest padding bias (the recipe's quantize.mask_bias has the same range).
MASK_BIAS_MIN = -1e9

# HF config.json key -> BertConfig field. Keys not listed keep their HF names.
_HF_KEYS = {
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "hidden_dropout_prob": "hidden_dropout",
    "attention_probs_dropout_prob": "attention_dropout",
}
# Fields that transformers' config.json lacks, kept under its "edgekit" key.
_EDGEKIT_KEYS = ("pooling", "normalize", "mask_bias")
# Smallest value of each size; a checkpoint with less cannot be built.
_MINIMUMS = {"vocab_size": 1, "hidden_size": 1, "num_layers": 1, "intermediate_size": 1,
             "max_position_embeddings": 2, "type_vocab_size": 0}
# JSON types of the scalar fields read from config.json, by annotation.
_JSON_TYPES = {"int": ((int,), "an integer"), "int | None": ((int,), "an integer"), "float": ((int, float), "a number"),
               "str": ((str,), "a string"),
               "bool": ((bool,), "true or false")}


@dataclass(frozen=True)
class BertConfig:
    """One encoder covers the BERT-class families (``model_type``: ``edgekit.models.families``),
    MiniLM, TinyBERT and narrower/shallower students.

    Where families differ it is said here in BERT's terms: ``type_vocab_size`` 0 (DistilBERT:
    no token types), ``position_offset`` (RoBERTa: position ids start at ``pad_token_id + 1``,
    so rows ``position_offset..`` of the table serve positions 0..), ``embedding_size`` (ELECTRA:
    narrower embeddings projected to ``hidden_size``; None: the hidden size) and
    ``pooler_activation`` (the sentence head's dense layer: tanh, ReLU, GELU) and ``bottleneck``
    (MobileBERT: blocks of a narrower width inside the hidden stream, NoNorm; its attention heads
    split ``block_width``).

    ``task`` names the head on the encoder (``edgekit.tasks``): none for feature extraction, a
    ``classifier`` of ``num_labels`` rows on the pooled vector (text classification) or on every
    token (token classification), or ``qa_outputs`` on every token (question answering). ``mask_bias`` is the additive attention
    bias for padding: any value ≤ -30 gives float outputs identical to -10000, and bounded
    values are what keeps int8 activations usable (see ``shared/notes``).

    Head-pruned models keep the head size but have fewer heads, so ``num_heads *
    head_size`` may be smaller than ``hidden_size``: ``attention_head_size`` (None:
    ``hidden_size // num_heads``) says so, and ``pruned_heads`` holds, per layer, the removed
    heads in the original numbering (every layer keeps the same number of heads). In HF
    ``config.json`` this is transformers' own representation: ``num_attention_heads`` is the
    original count and ``pruned_heads`` maps a layer index (str) to its removed heads. When
    ``attention_head_size`` narrows the attention and ``pruned_heads`` is empty, the
    highest-numbered heads count as removed.
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
    task: str | None = None  # None: text-classification with a classifier (num_labels), else feature-extraction
    mask_bias: float = -10000.0
    attention_head_size: int | None = None
    pruned_heads: tuple[tuple[int, ...], ...] = ()
    model_type: str = "bert"
    embedding_size: int | None = None
    position_offset: int = 0
    initializer_range: float = 0.02  # std of the checkpoint's initialiser (new heads; written back as read)
    bottleneck: Bottleneck | None = None  # MobileBERT's narrow blocks (``bottleneck``)

    def __post_init__(self) -> None:
        for name, low in _MINIMUMS.items():
            if getattr(self, name) < low:
                raise ModelLoadError(f"{_HF_NAMES.get(name, name)} must be at least {low}, got {getattr(self, name)}")
        if not 0 <= self.pad_token_id < self.vocab_size:  # transformers refuses such a padding_idx
            raise ModelLoadError(f"pad_token_id must be in 0..{self.vocab_size - 1} (vocab_size {self.vocab_size}), "
                                 f"got {self.pad_token_id}")
        if not 0 < self.layer_norm_eps < math.inf:
            raise ModelLoadError(f"layer_norm_eps must be a finite number > 0, got {self.layer_norm_eps}")
        if not 0 < self.initializer_range < math.inf:
            raise ModelLoadError(f"initializer_range must be a finite number > 0, got {self.initializer_range}")
        if not MASK_BIAS_MIN <= self.mask_bias < 0:  # 0, positive or NaN: padding is attended to, or all is NaN
            raise ModelLoadError(f"edgekit.mask_bias must be in [{MASK_BIAS_MIN:g}, 0), got {self.mask_bias}")
        for name in ("hidden_dropout", "attention_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ModelLoadError(f"{_HF_NAMES[name]} must be in [0, 1), got {getattr(self, name)}")
        family = _family(self.model_type)
        if self.embedding_size == self.hidden_size and not family.always_project:
            object.__setattr__(self, "embedding_size", None)
        if self.embedding_size is not None and (self.embedding_size < 1 or not family.embedding_projection):
            raise ModelLoadError(f"embedding_size {self.embedding_size}: expected the hidden size {self.hidden_size}"
                                 f"{' or a positive width' if family.embedding_projection else ''} for a "
                                 f"{self.model_type} model")
        if self.type_vocab_size and not family.token_types:
            raise ModelLoadError(f"a {self.model_type} model has no token types, got type_vocab_size "
                                 f"{self.type_vocab_size}")
        if not 0 <= self.position_offset <= self.max_position_embeddings - 2:
            raise ModelLoadError(f"position offset {self.position_offset} (pad_token_id + 1) leaves fewer than 2 of "
                                 f"the {self.max_position_embeddings} max_position_embeddings")
        if self.num_heads < 1:
            raise ModelLoadError(f"num_attention_heads must be at least 1, got {self.num_heads}")
        if (self.bottleneck is not None) != family.bottleneck:
            raise ModelLoadError(f"a {self.model_type} model {'needs' if family.bottleneck else 'has no'} "
                                 "MobileBERT bottleneck settings")
        if self.bottleneck is not None:
            self.bottleneck.check(self.hidden_size, self.original_num_heads if self.attention_head_size else
                                  self.num_heads)
        if not any(self.pruned_heads):
            object.__setattr__(self, "pruned_heads", ())
        if self.attention_head_size is not None and self.attention_head_size * self.num_heads == self.block_width:
            object.__setattr__(self, "attention_head_size", None)  # the default head size, said explicitly
        if self.attention_head_size is None:
            if self.block_width % self.num_heads:
                raise ModelLoadError(
                    f"hidden_size {self.hidden_size} is not divisible by num_attention_heads {self.num_heads}"
                )
            if self.pruned_heads:
                raise ModelLoadError("pruned_heads needs attention_head_size (the size of the remaining heads)")
        else:
            self._check_narrow_attention()
        if self.hidden_act not in ACTIVATIONS:
            raise ModelLoadError(
                f"hidden_act {self.hidden_act!r} is not supported (expected one of {', '.join(ACTIVATIONS)})"
            )
        if self.pooling not in POOLINGS:
            raise ModelLoadError(f"pooling {self.pooling!r} is not one of {', '.join(POOLINGS)}")
        from edgekit.config.enums import Task

        if self.task is None:
            object.__setattr__(self, "task", (Task.TEXT_CLASSIFICATION if self.num_labels else Task.FEATURE_EXTRACTION).value)
        if self.task not in {t.value for t in Task}:
            raise ModelLoadError(f"task {self.task!r} is not one of {', '.join(t.value for t in Task)}")
        labelled = self.task in (Task.TEXT_CLASSIFICATION.value, Task.TOKEN_CLASSIFICATION.value)
        if labelled != bool(self.num_labels):
            raise ModelLoadError(f"a {self.task} model has {'a' if labelled else 'no'} classifier, got "
                                 f"num_labels {self.num_labels}")
        if self.num_labels and len(self.id2label) != self.num_labels:
            raise ModelLoadError(f"id2label has {len(self.id2label)} names for {self.num_labels} labels")

    def _check_narrow_attention(self) -> None:
        size = self.attention_head_size
        width = self.block_width
        if size < 1 or width % size or self.num_heads > width // size:
            raise ModelLoadError(
                f"attention_head_size {size} with {self.num_heads} heads cannot be written as a pruned "
                f"BERT: {'intra_bottleneck_size' if self.bottleneck else 'hidden_size'} {width} must be a multiple "
                "of the head size and hold at least num_attention_heads heads"
            )
        original = width // size
        removed = original - self.num_heads
        pruned = tuple(tuple(sorted(int(h) for h in layer)) for layer in self.pruned_heads)
        if not pruned and removed:
            pruned = (tuple(range(self.num_heads, original)),) * self.num_layers
        if pruned:
            if len(pruned) != self.num_layers:
                raise ModelLoadError(f"pruned_heads lists {len(pruned)} layers for a {self.num_layers}-layer model")
            for i, layer in enumerate(pruned):
                if len(layer) != removed or len(set(layer)) != removed or any(not 0 <= h < original for h in layer):
                    raise ModelLoadError(
                        f"pruned_heads of layer {i} is {list(layer)}: expected {removed} distinct heads of "
                        f"0..{original - 1} ({original} heads of size {size}, {self.num_heads} kept)"
                    )
        object.__setattr__(self, "pruned_heads", pruned if removed else ())

    @property
    def embedding_width(self) -> int:
        """Width of the embedding tables and their LayerNorm."""
        return self.embedding_size or self.hidden_size

    @property
    def block_width(self) -> int:
        """Width inside a block, where attention runs: MobileBERT's bottleneck, else the hidden size."""
        return self.bottleneck.size if self.bottleneck is not None else self.hidden_size

    @property
    def ffns_per_block(self) -> int:
        """FFNs in each block: MobileBERT's stacked ones and its own, else 1."""
        return self.bottleneck.feedforwards if self.bottleneck is not None else 1

    @property
    def word_width(self) -> int:
        """Width of the word-embedding table (MobileBERT's is narrower than its position table)."""
        return self.bottleneck.embedding_size if self.bottleneck is not None else self.embedding_width

    @property
    def max_positions(self) -> int:
        """Longest input in tokens (specials included): the position table's rows past the offset."""
        return self.max_position_embeddings - self.position_offset

    @property
    def pooler_activation(self) -> str:
        """Activation of the dense layer on the first token (``pooling: pooler``): the family's
        sentence head's for text classification, BERT's pooler's (tanh) otherwise."""
        from edgekit.config.enums import Task

        return _family(self.model_type).pooler_activation if self.task == Task.TEXT_CLASSIFICATION.value else "tanh"

    @property
    def head_size(self) -> int:
        return self.attention_head_size or self.block_width // self.num_heads

    @property
    def all_head_size(self) -> int:
        """Width of the query/key/value projections: ``num_heads * head_size``."""
        return self.num_heads * self.head_size

    @property
    def original_num_heads(self) -> int:
        """Heads before pruning (``num_attention_heads`` in HF config.json)."""
        return self.block_width // self.head_size

    def replace(self, **changes: Any) -> "BertConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_hf(cls, hf: dict[str, Any], *, num_labels: int = 0, task: str | None = None) -> "BertConfig":
        """Build from a HF ``config.json`` dict; ``num_labels`` comes from the classifier weights and
        ``task`` from the head the weights hold (None: a classifier's rows make it text-classification)."""
        model_type = hf.get("model_type", "bert")
        family = _family(model_type)
        hf = family.config_values(hf)
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise ModelLoadError("only absolute position embeddings are supported")
        names = {f.name for f in dataclasses.fields(cls)}
        values = {_HF_KEYS.get(k, k): v for k, v in hf.items() if _HF_KEYS.get(k, k) in names}
        for derived in ("id2label", "attention_head_size", "num_labels", "task", "model_type", "position_offset"):  # set below, from the tensors / heads
            values.pop(derived, None)
        for key in ("pad_token_id", "embedding_size"):  # transformers writes null for "none"
            if key in values and values[key] is None:
                del values[key]
        _check_types(values)
        pruned = values.pop("pruned_heads", None)
        if family.bottleneck:
            values["bottleneck"] = Bottleneck.from_hf(hf)
        if pruned:  # heads split the block width (MobileBERT's bottleneck)
            split = {**values, "hidden_size": values["bottleneck"].size} if family.bottleneck else values
            values.update(_read_pruned_heads(pruned, split))
        edgekit = hf.get("edgekit", {})
        if not isinstance(edgekit, dict):
            raise ModelLoadError(f"edgekit: expected an object, got {json_kind(edgekit)}")
        unknown = next((k for k in edgekit if k not in _EDGEKIT_KEYS), None)
        if unknown is not None:  # a misspelt key would silently keep the default
            raise ModelLoadError(f"edgekit.{unknown}: unknown key (expected {', '.join(_EDGEKIT_KEYS)})")
        _check_types(edgekit, "edgekit.")
        values.update(edgekit)
        if num_labels:
            values["id2label"] = _read_id2label(hf, num_labels)
        missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in values]
        if missing:
            names = ", ".join(_HF_NAMES.get(m, m) for m in missing)
            raise ModelLoadError(f"no {names} (expected in a BERT config.json)")
        if not family.embedding_projection:
            values.pop("embedding_size", None)
        if family.offset_positions:
            values["position_offset"] = values.get("pad_token_id", 0) + 1
        return cls(**values, num_labels=num_labels, task=task, model_type=model_type)

    def to_hf(self) -> dict[str, Any]:
        """HF ``config.json`` content that transformers' class for the task (``BertModel``,
        ``BertFor{Sequence,Token}Classification``, ``BertForQuestionAnswering``) loads."""
        reverse = {v: k for k, v in _HF_KEYS.items()}
        hf: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in ("pooling", "normalize", "num_labels", "id2label", "task", "mask_bias",
                          "attention_head_size", "pruned_heads", "model_type", "embedding_size", "position_offset",
                          "bottleneck"):
                continue
            hf[reverse.get(f.name, f.name)] = getattr(self, f.name)
        if self.pruned_heads:
            # transformers builds the original heads, prunes these, then loads the smaller tensors.
            hf["num_attention_heads"] = self.original_num_heads
            hf["pruned_heads"] = {str(i): list(heads) for i, heads in enumerate(self.pruned_heads)}
        from edgekit import tasks

        family = _family(self.model_type)
        if family.embedding_projection:
            hf["embedding_size"] = self.embedding_width
        if self.bottleneck is not None:  # MobileBERT's pooler is a dense + tanh only with classifier_activation
            first_token = self.task == "text-classification" and self.pooling == "cls"  # heads over the bare [CLS]
            hf.update(self.bottleneck.to_hf(), classifier_activation=not first_token)
        hf["architectures"] = [family.architecture(tasks.for_config(self).architecture)]
        if self.num_labels:
            hf["id2label"] = {str(i): name for i, name in enumerate(self.id2label)}
            hf["label2id"] = {name: i for i, name in enumerate(self.id2label)}
        # transformers ignores unknown keys; edgekit reads these back.
        hf["edgekit"] = {key: getattr(self, key) for key in _EDGEKIT_KEYS}
        return family.hf_config(hf)


def _check_types(values: dict[str, Any], prefix: str = "") -> None:
    """Refuse a config.json value of the wrong JSON type (``true`` is not a number here)."""
    for f in dataclasses.fields(BertConfig):
        if f.name not in values or f.type not in _JSON_TYPES:
            continue
        allowed, word = _JSON_TYPES[f.type]
        value = values[f.name]
        if isinstance(value, bool) != (bool in allowed) or not isinstance(value, allowed):
            raise ModelLoadError(f"{prefix}{_HF_NAMES.get(f.name, f.name)}: expected {word}, got {json_value(value)}")


def _read_id2label(hf: dict[str, Any], rows: int) -> tuple[str, ...]:
    """The names of a ``rows``-output classifier: ``id2label`` must name exactly ids 0..rows-1, each
    differently (predictions are keyed by name), or be absent (``LABEL_0``...)."""
    declared = hf.get("num_labels", rows)
    if declared != rows:
        raise ModelLoadError(f"num_labels: expected {rows} (the classifier's rows), got {json_value(declared)}")
    id2label = hf.get("id2label")
    if not id2label:
        return tuple(f"LABEL_{i}" for i in range(rows))
    if not isinstance(id2label, dict):
        raise ModelLoadError(f"id2label: expected an object mapping label ids to names, got {json_kind(id2label)}")
    if sorted(id2label, key=lambda k: (len(k), k)) != [str(i) for i in range(rows)]:
        ids = ", ".join(list(id2label)[:8]) + (", ..." if len(id2label) > 8 else "")
        raise ModelLoadError(f"id2label: expected the ids 0..{rows - 1} (the classifier's {rows} rows), got {ids}")
    names = tuple(id2label[str(i)] for i in range(rows))
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ModelLoadError(f"id2label.{i}: expected a label name, got {json_value(name)}")
        if name in names[:i]:
            raise ModelLoadError(f"id2label.{i}: {name!r} also names label {names.index(name)}; expected distinct names")
    return names


def _read_pruned_heads(pruned: Any, values: dict[str, Any]) -> dict[str, Any]:
    """num_heads / attention_head_size / pruned_heads from HF's ``pruned_heads`` (uniform only)."""
    if not isinstance(pruned, dict):
        raise ModelLoadError(f"pruned_heads must map layer indices to head lists, got {json_kind(pruned)}")
    try:
        layers, original, hidden = values["num_layers"], values["num_heads"], values["hidden_size"]
    except KeyError as err:
        name = _HF_NAMES.get(err.args[0], err.args[0])
        raise ModelLoadError(f"no {name} (expected in a BERT config.json)") from None
    if original < 1 or hidden % original:
        raise ModelLoadError(f"hidden_size {hidden} is not divisible by num_attention_heads {original}")
    by_layer: dict[int, list[int]] = {}
    for key, heads in pruned.items():
        try:
            index = int(key)
            by_layer[index] = sorted({int(h) for h in heads})
        except (TypeError, ValueError):
            raise ModelLoadError(f"pruned_heads entry {key!r}: {heads!r} is not a layer index and head list") from None
        if not 0 <= index < layers:
            raise ModelLoadError(f"pruned_heads names layer {index} of a {layers}-layer model")
    per_layer = [by_layer.get(i, []) for i in range(layers)]
    counts = [original - len(heads) for heads in per_layer]
    if len(set(counts)) > 1:
        raise ModelLoadError(
            f"pruned_heads: per-layer head counts differ ({counts} heads left); edgekit's encoder needs "
            "the same number of heads in every layer"
        )
    if counts[0] < 1:
        raise ModelLoadError("pruned_heads removes every head of a layer")
    return {
        "num_heads": counts[0],
        "attention_head_size": hidden // original,
        "pruned_heads": tuple(tuple(heads) for heads in per_layer),
    }


def _family(model_type: Any):
    from edgekit.models import families

    return families.get(model_type)


_HF_NAMES = {v: k for k, v in _HF_KEYS.items()}
