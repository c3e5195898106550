"""Token-classification features: pre-tokenised sentences -> model windows, and back to words.

Each sentence is encoded as its words (``is_pretokenized``), untruncated; its content tokens are
split between words into windows that fit ``max_length`` with the tokenizer's own specials
around them (``ondevice.entities.word_windows``, the split a device app makes), so no word is
lost to truncation. A word is labelled, and later read, at its first sub-token only: the loss
ignores -100, as transformers' token-classification heads do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from edgekit.ondevice.entities import decode_entities, first_tokens, word_windows

from edgekit.tasks.base import IGNORE


@dataclass(frozen=True)
class WordWindows:
    """N windows from the sentences given, in order; every window carries its specials."""

    ids: list[np.ndarray]  # int32 [n_i] token ids
    type_ids: list[np.ndarray]  # int32 [n_i]
    labels: list[np.ndarray] | None  # int32 [n_i]: the word's tag at its first sub-token, else IGNORE
    word_index: list[np.ndarray]  # int32 [n_i]: the word (in its sentence) at its first sub-token, else -1
    sentence: np.ndarray  # int64 [N]: the sentence of each window
    windowed: int  # sentences that needed more than one window
    num_words: np.ndarray  # int64 [sentences]


@dataclass(frozen=True)
class _Frame:
    """What the tokenizer's post-processor puts around one sequence ([CLS] ... [SEP] for BERT)."""

    head: np.ndarray  # int32 ids before the content
    head_types: np.ndarray
    tail: np.ndarray  # int32 ids after it
    tail_types: np.ndarray
    content_type: int


def _frame(backend) -> _Frame:
    probe = backend.encode_batch([["a"]], is_pretokenized=True)[0]
    content = [i for i, w in enumerate(probe.word_ids) if w is not None]
    first, last = content[0], content[-1] + 1
    ids, types = np.array(probe.ids, dtype=np.int32), np.array(probe.type_ids, dtype=np.int32)
    return _Frame(ids[:first], types[:first], ids[last:], types[last:], int(types[first]))


def _content(encoding, num_words: int, unk_id: int) -> tuple[np.ndarray, list[int]]:
    """Content token ids and their word ids; a word that encodes to nothing (a control
    character) gets the unknown token, so that every word is predicted."""
    pieces: list[list[int]] = [[] for _ in range(num_words)]
    for token, word in zip(encoding.ids, encoding.word_ids):
        if word is not None:
            pieces[word].append(token)
    ids = [t for p in pieces for t in (p or [unk_id])]
    words = [w for w, p in enumerate(pieces) for _ in (p or [unk_id])]
    return np.array(ids, dtype=np.int32), words


def encode_words(tokenizer, sentences: Sequence[Sequence[str]], max_length: int,
                 tags: Sequence[np.ndarray] | None = None) -> WordWindows:
    """Windows of at most ``max_length`` tokens (specials included) for every sentence of words;
    with ``tags`` (int32 [w] per sentence) each window also gets its token labels.

    ``tokenizer`` is a ``TextTokenizer`` (its ``backend`` is used without truncation or padding).
    """
    if tags is not None and len(tags) != len(sentences):
        raise ValueError(f"{len(tags)} tag rows for {len(sentences)} sentences")
    backend = tokenizer.backend
    backend.no_truncation()
    backend.no_padding()
    frame = _frame(backend)
    unk_id = backend.token_to_id(backend.model.unk_token)
    room = max_length - len(frame.head) - len(frame.tail)
    encodings = backend.encode_batch([list(s) for s in sentences], is_pretokenized=True)
    ids, type_ids, labels, word_index, sentence = [], [], [], [], []
    split = 0
    for i, (encoding, words) in enumerate(zip(encodings, sentences)):
        content, word_ids = _content(encoding, len(words), unk_id)
        row = None if tags is None else np.asarray(tags[i], dtype=np.int32)
        if row is not None and row.shape != (len(words),):
            raise ValueError(f"sentence {i}: tags of shape {row.shape} for {len(words)} words")
        first = first_tokens(word_ids)
        windows = word_windows(word_ids, room)
        split += len(windows) > 1
        for start, end in windows:
            ids.append(np.concatenate([frame.head, content[start:end], frame.tail]))
            type_ids.append(np.concatenate([frame.head_types, np.full(end - start, frame.content_type, np.int32),
                                            frame.tail_types]))
            index = np.concatenate([np.full(len(frame.head), -1, np.int32), first[start:end],
                                    np.full(len(frame.tail), -1, np.int32)])
            word_index.append(index)
            if row is not None:
                labels.append(np.where(index >= 0, row[np.maximum(index, 0)], IGNORE).astype(np.int32))
            sentence.append(i)
    return WordWindows(ids, type_ids, labels if tags is not None else None, word_index,
                       np.array(sentence, dtype=np.int64), split,
                       np.array([len(s) for s in sentences], dtype=np.int64))


def word_tags(windows: WordWindows, logits) -> list[np.ndarray]:
    """Per sentence, int32 [w]: the predicted tag of each word, the argmax at its first sub-token.

    ``logits`` float [N, S, L], one row per window (padded rows: S at least every window's length).
    """
    logits = np.asarray(logits)
    longest = max((len(i) for i in windows.ids), default=0)
    if logits.ndim != 3 or logits.shape[0] != len(windows.ids) or logits.shape[1] < longest:
        raise ValueError(f"logits of shape {logits.shape} for {len(windows.ids)} windows of up to {longest} tokens "
                         "(expected [windows, at least that many tokens, labels])")
    out = [np.full(n, -1, dtype=np.int32) for n in windows.num_words]
    for row, index, s in zip(logits, windows.word_index, windows.sentence):
        at = np.flatnonzero(index >= 0)
        out[s][index[at]] = row[at].argmax(axis=-1)
    return out


@dataclass(frozen=True)
class TextWindows:
    """Raw texts as model windows (the tokenizer's own words), and how to read them back."""

    ids: list[np.ndarray]  # int32 [n_i] per window, specials included
    type_ids: list[np.ndarray]
    text: np.ndarray  # int64 [N]: the text of each window
    word_ids: list[list]  # per text: the word of each content token (its pre-tokenizer's words)
    offsets: list[np.ndarray]  # per text: int32 [n, 2] char offsets of each content token
    heads: int  # specials before a window's content ([CLS])
    tails: int  # and after it ([SEP])


def encode_texts(tokenizer, texts: Sequence[str], max_length: int) -> TextWindows:
    """Texts as the prediction path sees them: untruncated, split between words into windows of at
    most ``max_length`` tokens with the tokenizer's specials (``ondevice.entities.word_windows``)."""
    backend = tokenizer.backend
    backend.no_truncation()
    backend.no_padding()
    frame = _frame(backend)
    room = max_length - len(frame.head) - len(frame.tail)
    ids, type_ids, owner, word_ids, offsets = [], [], [], [], []
    for t, encoding in enumerate(backend.encode_batch(list(texts), add_special_tokens=False)):
        content = np.array(encoding.ids, dtype=np.int32)
        word_ids.append(list(encoding.word_ids))
        offsets.append(np.array(encoding.offsets, dtype=np.int32).reshape(-1, 2))
        for start, end in word_windows(word_ids[-1], room) or [(0, 0)]:
            ids.append(np.concatenate([frame.head, content[start:end], frame.tail]))
            type_ids.append(np.concatenate([frame.head_types, np.full(end - start, frame.content_type, np.int32),
                                            frame.tail_types]))
            owner.append(t)
    return TextWindows(ids, type_ids, np.array(owner, dtype=np.int64), word_ids, offsets, len(frame.head),
                       len(frame.tail))


def text_entities(windows: TextWindows, logits, labels: Sequence[str], texts: Sequence[str]) -> list[list[dict]]:
    """Per text, its entities (``ondevice.entities.decode_entities``) from ``logits`` [N, S, L]."""
    result = []
    for t, text in enumerate(texts):
        rows = np.flatnonzero(windows.text == t)
        content = [logits[r, windows.heads:len(windows.ids[r]) - windows.tails] for r in rows]
        joined = np.concatenate(content) if content else np.zeros((0, len(labels)), np.float32)
        result.append(decode_entities(joined, windows.word_ids[t], windows.offsets[t], labels, text))
    return result
