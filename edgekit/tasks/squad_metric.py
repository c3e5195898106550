"""The official SQuAD v1.1 evaluation (``evaluate-v1.1.py``): exact match and token F1.

Same normalisation in the same order as the official script (lower-case, drop punctuation,
drop the articles a/an/the as whole words, collapse whitespace), each score the best over a
question's gold answers. Scores here are fractions in [0, 1]; the official script prints
percentages (x 100).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from typing import Mapping, Sequence

from edgekit.data.squad import QADataset

_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """``"The  Denver Broncos!"`` -> ``"denver broncos"``."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _f1(prediction: str, truth: str) -> float:
    predicted, gold = normalize_answer(prediction).split(), normalize_answer(truth).split()
    same = sum((Counter(predicted) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, truths: Sequence[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer, else 0.0."""
    predicted = normalize_answer(prediction)
    return float(max(predicted == normalize_answer(t) for t in truths))


def f1(prediction: str, truths: Sequence[str]) -> float:
    """Harmonic mean of token precision and recall (tokens counted with multiplicity), best over
    ``truths``."""
    return max(_f1(prediction, t) for t in truths)


def squad_scores(predictions: Mapping[str, str], dataset: QADataset) -> dict[str, float]:
    """Mean exact match and F1 over every question of ``dataset`` (a question without a
    prediction scores 0, predictions for other ids are ignored, as in the official script)."""
    if not len(dataset):
        raise ValueError("no questions to score")
    em = total_f1 = 0.0
    for qid, truths in zip(dataset.ids, dataset.answers):
        if qid in predictions:
            em += exact_match(predictions[qid], truths)
            total_f1 += f1(predictions[qid], truths)
    return {"exact_match": em / len(dataset), "f1": total_f1 / len(dataset)}
