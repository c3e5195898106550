"""Entity-level precision, recall and F1 for IOB2 tagging (CoNLL-2003 NER), strict match.

Written here rather than depending on seqeval: its default mode is this short rule set
(conlleval's chunking, an entity counted right only with the same type, start and end), the
package is unmaintained since 2020 and pulls in scikit-learn for it. The chunking rule
(``spans``) lives in ``edgekit.ondevice.entities``, which a device app copies without edgekit,
so the entities measured here and the ones a device reports come from one copy of the rule.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

from edgekit.ondevice.entities import spans

__all__ = ["entity_scores", "spans"]


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def _scores(correct: int, predicted: int, gold: int) -> dict[str, float]:
    return {"f1": _ratio(2 * correct, predicted + gold), "precision": _ratio(correct, predicted),
            "recall": _ratio(correct, gold)}


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict:
    """Micro-averaged ``{"f1", "precision", "recall"}`` (fractions; 0.0 where nothing divides)
    over every entity of every sentence, plus ``"per_type": {type: {"f1", "precision", "recall",
    "support"}}`` (support: gold entities of that type) for each type in either side.

    ``gold`` and ``predicted`` are sentences of tag strings, the same number of each and the same
    length sentence by sentence. A predicted entity that overlaps a gold one without the same
    type, start and end is both a false positive and a false negative.
    """
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences and {len(predicted)} predicted (expected the same number)")
    gold_spans, predicted_spans = set(), set()
    for i, (truth, guess) in enumerate(zip(gold, predicted)):
        if len(truth) != len(guess):
            raise ValueError(f"sentence {i}: {len(truth)} gold tags and {len(guess)} predicted (expected equal)")
        gold_spans.update((i, *span) for span in spans(truth))
        predicted_spans.update((i, *span) for span in spans(guess))
    hits = gold_spans & predicted_spans
    correct = Counter(span[1] for span in hits)
    in_gold = Counter(span[1] for span in gold_spans)
    in_predicted = Counter(span[1] for span in predicted_spans)
    result: dict = _scores(len(hits), len(predicted_spans), len(gold_spans))
    result["per_type"] = {kind: {**_scores(correct[kind], in_predicted[kind], in_gold[kind]),
                                 "support": in_gold[kind]}
                          for kind in sorted(in_gold.keys() | in_predicted.keys())}
    return result
