"""Text -> the int32 model inputs, with the export's own tokenizer files (``tokenizers``).

``tokenizer.json`` when present (it carries its normaliser, lower-casing included), else
``vocab.txt`` with ``do_lower_case`` from ``tokenizer_config.json`` — the same rules edgekit
used when it evaluated the artifact, so the app feeds the numbers the export was checked on.
Texts longer than ``max_length`` tokens ([CLS] and [SEP] included) are truncated, and the
encoding says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo_app.exportdir import AppError, error_line


@dataclass(frozen=True)
class Encoded:
    inputs: dict[str, np.ndarray]  # int32 [1, n] by input name, n <= max_length
    tokens: int  # n: tokens the model reads
    text_tokens: int  # tokens of the whole text (> tokens when truncated)

    @property
    def truncated(self) -> bool:
        return self.text_tokens > self.tokens


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
        self._tok.enable_truncation(max_length=max_length)
        self.max_length = max_length
        self.input_names = input_names

    def encode(self, text: str) -> Encoded:
        enc = self._tok.encode(text)
        text_tokens = len(enc.ids)
        if enc.overflowing:  # count the whole text once, only when it did not fit
            self._tok.no_truncation()
            text_tokens = len(self._tok.encode(text).ids)
            self._tok.enable_truncation(max_length=self.max_length)
        arrays = {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "token_type_ids": enc.type_ids}
        inputs = {n: np.asarray([arrays[n]], dtype=np.int32) for n in self.input_names}
        return Encoded(inputs=inputs, tokens=len(enc.ids), text_tokens=text_tokens)
