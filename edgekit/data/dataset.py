"""The one in-memory text dataset type that every training and evaluation stage consumes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

_FINGERPRINT_VERSION = "edgekit.TextDataset/1"  # bump if the hashed payload ever changes


@dataclass(frozen=True, eq=False, repr=False)
class TextDataset:
    """Texts (with optional second segments) and int32 label indices into ``label_names``.

    Immutable so that ``fingerprint()`` stays a valid cache key: the labels are copied into a
    read-only array. ``==`` is identity (the labels are an array); compare by fingerprint.
    """

    texts: tuple[str, ...]
    labels: np.ndarray | None  # int32 [N]; None for unlabeled text
    label_names: tuple[str, ...]  # () for unlabeled text
    source: str  # the file path, or "hf:<name>[/<config>]:<split>"
    text_pairs: tuple[str, ...] | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "texts", tuple(self.texts))
        set_(self, "label_names", tuple(self.label_names))
        if self.text_pairs is not None:
            set_(self, "text_pairs", tuple(self.text_pairs))
            if len(self.text_pairs) != len(self.texts):
                raise ValueError(f"{len(self.text_pairs)} text pairs for {len(self.texts)} texts")
        if self.labels is not None:
            labels = np.array(self.labels, dtype=np.int32)
            if labels.shape != (len(self.texts),):
                raise ValueError(f"labels of shape {labels.shape} for {len(self.texts)} texts")
            if labels.size and (labels.min() < 0 or labels.max() >= len(self.label_names)):
                raise ValueError(f"label indices outside 0..{len(self.label_names) - 1}")
            labels.flags.writeable = False
            set_(self, "labels", labels)

    def __len__(self) -> int:
        return len(self.texts)

    def __repr__(self) -> str:  # the default would print every text
        pairs = ", text_pairs" if self.text_pairs is not None else ""
        return f"TextDataset({self.source!r}, {len(self)} rows, label_names={self.label_names}{pairs})"

    def subset(self, indices) -> TextDataset:
        """The rows at ``indices`` (integers, negative allowed), in the given order."""
        idx = np.asarray(indices)
        if idx.size == 0:
            idx = idx.astype(np.intp).reshape(0)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise TypeError(f"expected a 1-D sequence of integer row indices, got {idx.dtype} of shape {idx.shape}")
        rows = idx.tolist()
        return TextDataset(
            texts=tuple(self.texts[i] for i in rows),
            labels=None if self.labels is None else self.labels[idx],
            label_names=self.label_names,
            source=self.source,
            text_pairs=None if self.text_pairs is None else tuple(self.text_pairs[i] for i in rows),
        )

    def fingerprint(self) -> str:
        """sha256 hex of the content (texts, pairs, labels, label names; not the source path).

        Stable across runs and machines, so it keys caches of tokenized inputs and teacher logits.
        """
        labels = None if self.labels is None else self.labels.tolist()
        payload = [_FINGERPRINT_VERSION, self.texts, self.text_pairs, labels, self.label_names]
        return hashlib.sha256(json.dumps(payload).encode("ascii")).hexdigest()
