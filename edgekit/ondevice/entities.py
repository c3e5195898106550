"""Named entities from a token-classification model's logits: numpy + stdlib, Python >= 3.9.

A device app copies this file as-is (it never imports edgekit or TensorFlow). It works on plain
lists from any tokenizer's encoding of one text, with the specials ([CLS], [SEP]) stripped:
``word_ids[i]`` is the word of content token i (None for a token of no word) and ``offsets[i]``
its (char start, end) in the text. A text longer than the model's sequence is split with
``word_windows`` (each window wrapped in the specials and run on its own); the windows' logits,
specials dropped, are concatenated back for ``decode_entities``.

Each word is tagged by its first sub-token, as it was trained. Entities follow IOB2 with the
conlleval / seqeval-default rules (``spans``), which edgekit's metric (``edgekit.tasks.iob``)
imports from here, so the scores measured and the entities a device reports agree.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

OUTSIDE = "O"


def _parse(tag: str) -> tuple[str, str]:
    """("", "") for O, else (prefix B or I, type)."""
    if tag == OUTSIDE:
        return "", ""
    prefix, _, kind = tag.partition("-")
    if prefix not in ("B", "I") or not kind:
        raise ValueError(f"tag {tag!r} is not IOB2 (expected O, B-TYPE or I-TYPE)")
    return prefix, kind


def spans(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, end exclusive) of every entity in one sentence of IOB2 tags.

    An entity starts at B-X, or at I-X after O or after another type (an I- without a B- still
    starts one, as conlleval counts it); it continues over I-X; anything else ends it.
    """
    found = []
    kind, start = None, 0
    for i, tag in enumerate(tags):
        prefix, this = _parse(tag)
        if kind is not None and (prefix != "I" or this != kind):
            found.append((kind, start, i))
            kind = None
        if prefix and kind is None:
            kind, start = this, i
    if kind is not None:
        found.append((kind, start, len(tags)))
    return found


def _units(word_ids: Sequence[int | None]) -> list[tuple[int, int]]:
    """[start, end) token ranges of consecutive tokens of one word; a None token is a unit alone."""
    units = []
    for i, word in enumerate(word_ids):
        if word is None or not units or word_ids[i - 1] != word:
            units.append((i, i + 1))
        else:
            units[-1] = (units[-1][0], i + 1)
    return units


def word_windows(word_ids: Sequence[int | None], max_tokens: int) -> list[tuple[int, int]]:
    """Consecutive [start, end) token ranges of at most ``max_tokens`` tokens covering every
    token once, cut only between words; a word longer than ``max_tokens`` gets windows of its
    own, cut inside it. Greedy: each window takes as many whole words as fit."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens is {max_tokens} (expected at least 1)")
    windows: list[tuple[int, int]] = []
    joinable = False  # may the next word join the last window?
    for start, end in _units(word_ids):
        if end - start > max_tokens:
            windows += [(a, min(a + max_tokens, end)) for a in range(start, end, max_tokens)]
            joinable = False
        elif joinable and end - windows[-1][0] <= max_tokens:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
            joinable = True
    return windows


def first_tokens(word_ids: Sequence[int | None]) -> np.ndarray:
    """int32 [n]: the word index at each word's first sub-token, -1 on every other token."""
    out = np.full(len(word_ids), -1, dtype=np.int32)
    for start, _ in _units(word_ids):
        if word_ids[start] is not None:
            out[start] = word_ids[start]
    return out


def softmax(x, axis: int = -1) -> np.ndarray:
    """Probabilities along ``axis`` (float64), shifted by the maximum so large logits cannot overflow."""
    x = np.asarray(x, dtype=np.float64)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def decode_entities(logits, word_ids: Sequence[int | None], offsets: Sequence[Sequence[int]],
                    labels: Sequence[str], text: str) -> list[dict]:
    """Entities of one text: ``{"type", "text", "start", "end", "score"}``, in text order.

    ``logits`` float [n, L] over the n content tokens; ``labels`` the L IOB2 tag names. A word
    takes the argmax tag of its first sub-token, its score that tag's probability; an entity's
    start/end are character offsets into ``text`` (its first word's first token's start, its last
    word's last token's end) and its score the mean of its words' scores (4 decimals).
    """
    probs = softmax(logits)
    if probs.shape != (len(word_ids), len(labels)) or len(offsets) != len(word_ids):
        raise ValueError(f"logits of shape {probs.shape} and {len(offsets)} offsets for {len(word_ids)} "
                         f"tokens and {len(labels)} labels (expected [tokens, labels] and one offset per token)")
    words = [(a, b) for a, b in _units(word_ids) if word_ids[a] is not None]  # token ranges
    best = probs.argmax(axis=-1)
    tags = [labels[best[a]] for a, _ in words]
    scores = [float(probs[a, best[a]]) for a, _ in words]
    entities = []
    for kind, first, end in spans(tags):
        start, stop = int(offsets[words[first][0]][0]), int(offsets[words[end - 1][1] - 1][1])
        entities.append({"type": kind, "text": text[start:stop], "start": start, "end": stop,
                         "score": round(sum(scores[first:end]) / (end - first), 4)})
    return entities
