"""Text -> the int32 model inputs, with the export's own tokenizer files (``tokenizers``).

``tokenizer.json`` when present (it carries its normaliser, lower-casing included), else
``vocab.txt`` with ``do_lower_case`` from ``tokenizer_config.json`` — the same rules edgekit
used when it evaluated the artifact, so the app feeds the numbers the export was checked on.

Sentence tasks (``encode``): a text longer than ``max_length`` tokens ([CLS] and [SEP]
included) is truncated, and the encoding says so. Token classification (``tag_windows``): the
text's tokens are split between words into windows that fit, each wrapped in the specials
(``entities.word_windows``, the split edgekit evaluated on), so no word is lost. Question
answering (``pair_windows``): ``[CLS] question [SEP] context [SEP]``, the question cut to
``max_query`` tokens, a long context split by the tokenizers library's overflow with
``doc_stride`` context tokens repeated between windows (both from the manifest's ``windows``:
the settings edgekit evaluated the export with).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo_app.entities import word_windows
from demo_app.exportdir import AppError, error_line

SPECIALS = 3  # [CLS] question [SEP] context [SEP]


def check_pair_windows(max_length: int, doc_stride: int, max_query: int, where: str) -> None:
    """AppError (``where``: what has that ``max_length``) unless a window of ``max_length`` tokens
    holds more context tokens than ``doc_stride`` after a ``max_query``-token question, so that
    each next window moves on through the context."""
    room = max_length - SPECIALS - max_query
    if room <= doc_stride:
        raise AppError(f"{where}: windows of {max_length} tokens leave {room} for the context after "
                       f"edgekit.json's {max_query}-token question; expected more than its doc_stride {doc_stride}")


@dataclass(frozen=True)
class Encoded:
    inputs: dict[str, np.ndarray]  # int32 [1, n] by input name, n <= max_length
    tokens: int  # n: tokens the model reads
    text_tokens: int  # tokens of the whole text (> tokens when truncated)

    @property
    def truncated(self) -> bool:
        return self.text_tokens > self.tokens


@dataclass(frozen=True)
class TokenWindows:
    """One text as windows of whole words; content tokens are the text's own (no specials)."""

    inputs: list[dict[str, np.ndarray]]  # per window: int32 [1, n_i] by input name
    content: list[tuple[int, int]]  # per window: [first, stop) of its content tokens among its n_i
    word_ids: list[int]  # per content token (all windows in order): its word in the text
    offsets: list[tuple[int, int]]  # per content token: (start, end) characters in the text
    tokens: int  # the whole text's tokens, specials included once

    @property
    def windows(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class PairWindows:
    """A question and its context as W windows of at most max_length tokens."""

    inputs: list[dict[str, np.ndarray]]  # per window: int32 [1, n_i] by input name
    offsets: np.ndarray  # int32 [W, S, 2]: context tokens' (start, end) characters; -1 elsewhere; S = max n_i
    question_tokens: int  # the whole question's tokens
    question_kept: int  # of those, the ones every window holds (<= max_query)

    @property
    def windows(self) -> int:
        return len(self.inputs)


class TextEncoder:
    def __init__(self, folder: str | Path, max_length: int, input_names: tuple[str, ...]):
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer

        folder = Path(folder)
        source = folder / "tokenizer.json"
        try:  # a broken file (only with --no-verify: verified files are the export's) is one line
            if source.is_file():
                self._tok = Tokenizer.from_file(str(source))
            else:
                settings, source = {}, folder / "tokenizer_config.json"
                if source.is_file():
                    settings = dict(json.loads(source.read_text(encoding="utf-8")))
                lower = bool(settings.get("do_lower_case", True))
                strip = settings.get("strip_accents")
                source = folder / "vocab.txt"
                self._tok = BertWordPieceTokenizer(str(source), lowercase=lower,
                                                   strip_accents=lower if strip is None else strip)
        except Exception as err:
            raise AppError(f"{source}: cannot load the tokenizer ({error_line(err)})") from None
        self._tok.no_padding()
        self.max_length = max_length
        self.input_names = input_names

    def _inputs(self, ids, type_ids) -> dict[str, np.ndarray]:
        arrays = {"input_ids": ids, "attention_mask": [1] * len(ids), "token_type_ids": type_ids}
        return {n: np.asarray([arrays[n]], dtype=np.int32) for n in self.input_names}

    def encode(self, text: str) -> Encoded:
        self._tok.enable_truncation(max_length=self.max_length)
        enc = self._tok.encode(text)
        text_tokens = len(enc.ids)
        if enc.overflowing:  # count the whole text once, only when it did not fit
            self._tok.no_truncation()
            text_tokens = len(self._tok.encode(text).ids)
        return Encoded(inputs=self._inputs(enc.ids, enc.type_ids), tokens=len(enc.ids), text_tokens=text_tokens)

    def tag_windows(self, text: str) -> TokenWindows:
        """The text as windows of whole words, each ``[CLS] words [SEP]`` of at most max_length
        tokens (a word longer than a window is cut into windows of its own)."""
        self._tok.no_truncation()
        enc = self._tok.encode(text)
        content = [i for i, special in enumerate(enc.special_tokens_mask) if not special]
        if not content:  # nothing but specials (e.g. only control characters): no word to tag
            return TokenWindows([], [], [], [], len(enc.ids))
        first, stop = content[0], content[-1] + 1
        head, tail = slice(0, first), slice(stop, len(enc.ids))
        word_ids = [enc.word_ids[i] for i in range(first, stop)]
        inputs, spans = [], []
        for a, b in word_windows(word_ids, self.max_length - (first + len(enc.ids) - stop)):
            ids = enc.ids[head] + enc.ids[first + a:first + b] + enc.ids[tail]
            types = enc.type_ids[head] + enc.type_ids[first + a:first + b] + enc.type_ids[tail]
            inputs.append(self._inputs(ids, types))
            spans.append((first, first + b - a))
        return TokenWindows(inputs, spans, word_ids, [tuple(o) for o in enc.offsets[first:stop]], len(enc.ids))

    def pair_windows(self, question: str, context: str, stride: int, max_query: int) -> PairWindows:
        """``[CLS] question [SEP] context [SEP]`` windows, token types 0 then 1, the question cut to
        ``max_query`` tokens, consecutive windows sharing ``stride`` context tokens (sizes that
        ``check_pair_windows`` passed)."""
        self._tok.no_truncation()
        asked = self._tok.encode(question, add_special_tokens=False)
        kept = min(len(asked.ids), max_query)
        if kept < len(asked.ids):  # cut at a token boundary: the text tokenizes to those tokens again
            question = question[:asked.offsets[kept - 1][1]]
        self._tok.enable_truncation(self.max_length, stride=stride, strategy="only_second")
        enc = self._tok.encode(question, context)
        windows = [enc, *enc.overflowing]
        offsets = np.full((len(windows), max(len(w.ids) for w in windows), 2), -1, dtype=np.int32)
        for row, window in enumerate(windows):
            for i, (sequence, span) in enumerate(zip(window.sequence_ids, window.offsets)):
                if sequence == 1:
                    offsets[row, i] = span
        return PairWindows([self._inputs(w.ids, w.type_ids) for w in windows], offsets, len(asked.ids), kept)
