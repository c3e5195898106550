"""SQuAD questions -> overlapping token windows with gold span labels, and logits -> answers.

BERT's SQuAD layout: ``[CLS] question [SEP] context [SEP]``, token types 0 then 1, the question
cut to ``max_query_length`` tokens. A context too long for one window is split by the
``tokenizers`` library's own overflow (``strategy="only_second"``): each next window repeats
the last ``doc_stride`` context tokens of the one before, so every context token is in some
window and an answer near a cut is whole in at least one window when it is at most
``doc_stride`` tokens long. The target is the first gold answer, unless it starts or ends inside
a token and another does not (``_target``); a window that does not hold all of the target is
labelled (0, 0), the [CLS] position, as BERT trains SQuAD.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgekit.data.squad import QADataset
from edgekit.models.tokenizer import TextTokenizer
from edgekit.ondevice.answers import best_span


@dataclass(frozen=True, eq=False, repr=False)
class QAWindows:
    """N windows over the questions of one ``QADataset``, grouped by question in dataset order."""

    ids: list[np.ndarray]  # int32 [n_i] token ids of window i, unpadded
    type_ids: list[np.ndarray]  # int32 [n_i]: 0 for [CLS] question [SEP], 1 for context [SEP]
    offsets: list[np.ndarray]  # int32 [n_i, 2] char (start, end) into the context; (-1, -1) off the context
    example: np.ndarray  # int64 [N]: index in the dataset of each window's question, ascending
    start_positions: np.ndarray  # int32 [N]: token index of the target answer's first token, or 0
    end_positions: np.ndarray  # int32 [N]: token index of its last token, or 0
    windowed: int  # questions whose context needed more than one window

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        return f"QAWindows({len(self)} windows of {int(self.example[-1]) + 1} questions, {self.windowed} windowed)"


def encode_questions(tokenizer: TextTokenizer, dataset: QADataset, max_length: int, doc_stride: int,
                     max_query_length: int) -> QAWindows:
    """Every question of ``dataset`` as one or more windows of at most ``max_length`` tokens
    (``question_answering.windows`` has the settings for ``max_length``)."""
    backend = tokenizer.backend
    # context tokens a window holds at least (pair specials: 3 for BERT's, 4 for RoBERTa's <s> q </s></s> c </s>)
    room = max_length - backend.num_special_tokens_to_add(True) - max_query_length
    if max_query_length < 1 or doc_stride < 0 or room <= doc_stride:
        raise ValueError(f"max_length {max_length} leaves {room} context tokens after a {max_query_length}-token "
                         f"question; expected more than doc_stride {doc_stride} (and doc_stride >= 0)")
    questions = _cut_questions(backend, dataset.questions, max_query_length)
    backend.no_padding()
    backend.enable_truncation(max_length, stride=doc_stride, strategy="only_second")
    encodings = backend.encode_batch(list(zip(questions, dataset.contexts)))
    ids, type_ids, offsets, example, starts, ends = [], [], [], [], [], []
    windowed = 0
    for q, encoding in enumerate(encodings):
        windows = [encoding, *encoding.overflowing]
        windowed += len(windows) > 1
        question_spans = [_context_offsets(window) for window in windows]
        first, stop = _target(question_spans, dataset.answer_starts[q], dataset.answers[q])
        for window, spans in zip(windows, question_spans):
            start, end = _gold_tokens(spans, first, stop)
            ids.append(np.array(window.ids, dtype=np.int32))
            type_ids.append(np.array(window.type_ids, dtype=np.int32))
            offsets.append(spans)
            example.append(q)
            starts.append(start)
            ends.append(end)
    return QAWindows(ids, type_ids, offsets, np.array(example, dtype=np.int64), np.array(starts, dtype=np.int32),
                     np.array(ends, dtype=np.int32), windowed)


def _cut_questions(backend, questions: tuple[str, ...], max_tokens: int) -> list[str]:
    """Each question cut after its ``max_tokens``-th token. Cut at a token boundary, the text
    tokenizes to those same tokens again (WordPiece matches greedily from the left)."""
    backend.no_truncation()
    backend.no_padding()
    encodings = backend.encode_batch(list(questions), add_special_tokens=False)
    return [text if len(e.offsets) <= max_tokens else text[:e.offsets[max_tokens - 1][1]]
            for text, e in zip(questions, encodings)]


def _context_offsets(window) -> np.ndarray:
    """int32 [n, 2]: the window's character offsets for context tokens, (-1, -1) elsewhere."""
    spans = np.array(window.offsets, dtype=np.int32).reshape(-1, 2)
    spans[[s != 1 for s in window.sequence_ids]] = -1
    return spans


def _target(spans: list[np.ndarray], starts: tuple[int, ...], texts: tuple[str, ...]) -> tuple[int, int]:
    """Characters [first, stop) of the answer to train on: the first gold answer that begins and
    ends on token boundaries, else the first. SQuAD has answers that are (also) found inside a
    longer word, e.g. '8' at the '8' of '20–18' where another annotator marked 'eight'; trained
    on, the tokens around them would teach the model '18'."""
    if not starts:  # a question asked at prediction time: no answer to train on
        return -1, -1
    context = np.concatenate(spans)
    begins, finishes = set(context[:, 0].tolist()), set(context[:, 1].tolist())
    aligned = (k for k, (s, t) in enumerate(zip(starts, texts)) if s in begins and s + len(t) in finishes)
    k = next(aligned, 0)
    return starts[k], starts[k] + len(texts[k])


def _gold_tokens(offsets: np.ndarray, first: int, stop: int) -> tuple[int, int]:
    """Token indices of the first and last token covering characters [first, stop) of the
    context, or (0, 0) when the window's context tokens do not cover all of them."""
    context = np.flatnonzero(offsets[:, 0] >= 0)
    if not context.size or offsets[context[0], 0] > first or offsets[context[-1], 1] < stop:
        return 0, 0
    start = context[np.searchsorted(offsets[context, 0], first, side="right") - 1]
    end = context[np.searchsorted(offsets[context, 1], stop, side="left")]
    return int(start), int(end)


def best_spans(windows: QAWindows, questions: int, start_logits, end_logits, **best_span_kw) -> list:
    """Per question, ``answers.best_span`` over its windows (a dict with character offsets into its
    context, or None). ``start_logits``, ``end_logits``: float [N, S], one row per window in
    ``windows`` order, S >= the longest window (padding is ignored)."""
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    longest = max(len(i) for i in windows.ids)
    if start_logits.shape != end_logits.shape or start_logits.ndim != 2 or len(start_logits) != len(windows) \
            or start_logits.shape[1] < longest:
        raise ValueError(f"expected start and end logits [{len(windows)}, >= {longest}], got {start_logits.shape} "
                         f"and {end_logits.shape}")
    if int(windows.example[-1]) + 1 != questions:
        raise ValueError(f"windows of {int(windows.example[-1]) + 1} questions for {questions}")
    bounds = np.searchsorted(windows.example, np.arange(questions + 1))
    spans = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        offsets = np.full((hi - lo, start_logits.shape[1], 2), -1, dtype=np.int32)
        for row, window in enumerate(windows.offsets[lo:hi]):
            offsets[row, :len(window)] = window
        spans.append(best_span(start_logits[lo:hi], end_logits[lo:hi], offsets, **best_span_kw))
    return spans


def predict_answers(windows: QAWindows, dataset: QADataset, start_logits, end_logits,
                    **best_span_kw) -> dict[str, str]:
    """Question id -> answer text (``""`` when no window has a valid span), from ``best_spans``."""
    spans = best_spans(windows, len(dataset), start_logits, end_logits, **best_span_kw)
    return {q: "" if span is None else context[span["start"]:span["end"]]
            for q, context, span in zip(dataset.ids, dataset.contexts, spans)}
