"""Extractive QA decoding: the best answer span from start/end logits, numpy only.

Runs on the device as-is (no edgekit import, Python >= 3.9): a demo app tokenizes the question
and context into windows, runs the model, and calls ``best_span`` on that question's windows
with the ``n_best`` and ``max_answer_length`` of the export's ``edgekit.json`` (``windows``), the
settings its artifacts were scored with.
"""

from __future__ import annotations

import numpy as np


def best_span(start_logits, end_logits, offsets, *, n_best: int, max_answer_length: int):
    """The highest-scoring answer span over the windows of one question, or None.

    ``start_logits``, ``end_logits``: float [W, S] (W windows of S tokens, padding included);
    ``offsets``: int [W, S, 2], each context token's (start, end) character offsets into the
    context and (-1, -1) for every other token (question, [CLS]/[SEP], padding).

    In each window the ``n_best`` highest start and end logits among its context tokens are
    paired; a pair counts when end >= start and it spans at most ``max_answer_length`` tokens.
    Returns ``{"start": char, "end": char, "score": float, "window": w}``: the answer is
    ``context[start:end]``; ``score`` is start logit + end logit, the log of the span's
    unnormalised probability (higher is better; comparable between spans and windows of one
    question, not a probability, not comparable across questions). Ties go to the earliest
    window, start and end.
    """
    start_logits = np.asarray(start_logits, dtype=np.float64)
    end_logits = np.asarray(end_logits, dtype=np.float64)
    offsets = np.asarray(offsets)
    if start_logits.ndim != 2 or end_logits.shape != start_logits.shape or \
            offsets.shape != start_logits.shape + (2,):
        raise ValueError(f"expected start and end logits [W, S] and offsets [W, S, 2], got "
                         f"{start_logits.shape}, {end_logits.shape} and {offsets.shape}")
    if n_best < 1 or max_answer_length < 1:
        raise ValueError(f"n_best and max_answer_length must be >= 1, got {n_best} and {max_answer_length}")
    best = None
    for w in range(start_logits.shape[0]):
        context = offsets[w, :, 0] >= 0
        starts = _top(start_logits[w], context, n_best)
        ends = _top(end_logits[w], context, n_best)
        scores = start_logits[w, starts][:, None] + end_logits[w, ends][None, :]
        length = ends[None, :] - starts[:, None] + 1
        scores[(length < 1) | (length > max_answer_length)] = -np.inf
        if not scores.size or not np.isfinite(scores.max()):
            continue
        i, j = np.unravel_index(np.argmax(scores), scores.shape)
        if best is None or scores[i, j] > best["score"]:
            best = {"start": int(offsets[w, starts[i], 0]), "end": int(offsets[w, ends[j], 1]),
                    "score": float(scores[i, j]), "window": w}
    return best


def _top(logits: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """Token indices, ascending, of the ``n`` highest finite logits at ``allowed`` positions (the
    earlier token first among equal logits)."""
    candidates = np.flatnonzero(allowed & np.isfinite(logits))
    order = np.argsort(-logits[candidates], kind="stable")
    return np.sort(candidates[order[:n]])
