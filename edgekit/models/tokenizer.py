"""WordPiece tokenisation with the ``tokenizers`` library, from a HF model folder.

``tokenizer.json`` is used when present (it carries its own normaliser, lower-casing
included); otherwise ``vocab.txt`` with ``do_lower_case`` from ``tokenizer_config.json``
(default True, as in transformers' BertTokenizer).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edgekit.errors import ModelLoadError

# Files that describe a tokenizer in a HF folder; copied verbatim when a model is saved.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json")


class TextTokenizer:
    """Texts -> int32 arrays ``input_ids``, ``attention_mask``, ``token_type_ids`` of shape [B, S]."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer

        self.folder = Path(folder)
        settings = self._read_settings()
        if (self.folder / "tokenizer.json").is_file():
            self._tok = Tokenizer.from_file(str(self.folder / "tokenizer.json"))
        elif (self.folder / "vocab.txt").is_file():
            lower = bool(settings.get("do_lower_case", True))
            strip = settings.get("strip_accents")
            self._tok = BertWordPieceTokenizer(
                str(self.folder / "vocab.txt"), lowercase=lower, strip_accents=lower if strip is None else strip,
            )
        else:
            raise ModelLoadError(f"{self.folder}: no tokenizer.json or vocab.txt")
        self.pad_token = settings.get("pad_token", "[PAD]")
        if isinstance(self.pad_token, dict):  # newer tokenizer_config.json stores AddedToken dicts
            self.pad_token = self.pad_token.get("content", "[PAD]")
        self.pad_id = self._tok.token_to_id(self.pad_token)
        if self.pad_id is None:
            raise ModelLoadError(f"{self.folder}: pad token {self.pad_token!r} is not in the vocabulary")
        self.model_max_length = int(settings.get("model_max_length", 512))

    def _read_settings(self) -> dict:
        path = self.folder / "tokenizer_config.json"
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ModelLoadError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: list[str], max_length: int, pad_to: int | None = None) -> dict[str, np.ndarray]:
        """Tokenise a batch: truncate to ``max_length`` tokens (specials included) and pad to
        the longest text, or to ``pad_to`` for static shapes."""
        self._tok.enable_truncation(max_length=max_length)
        if pad_to is None:
            self._tok.enable_padding(pad_id=self.pad_id, pad_token=self.pad_token)
        else:
            self._tok.enable_padding(pad_id=self.pad_id, pad_token=self.pad_token, length=pad_to)
        encodings = self._tok.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int32),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int32),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int32),
        }

    def encode_ragged(self, texts: list[str], max_length: int,
                      pairs: tuple[str, ...] | list[str] | None = None) -> dict[str, list[np.ndarray]]:
        """Tokenise without padding (training pads per batch): lists of int32 [n_i] arrays."""
        self._tok.enable_truncation(max_length=max_length)
        self._tok.no_padding()
        items = list(texts) if pairs is None else list(zip(texts, pairs))
        encodings = self._tok.encode_batch(items)
        return {
            "input_ids": [np.array(e.ids, dtype=np.int32) for e in encodings],
            "token_type_ids": [np.array(e.type_ids, dtype=np.int32) for e in encodings],
        }

    def lengths(self, texts: list[str], max_length: int) -> list[int]:
        """Token count of each text after truncation (specials included), without padding."""
        self._tok.enable_truncation(max_length=max_length)
        self._tok.no_padding()
        return [len(e.ids) for e in self._tok.encode_batch(list(texts))]

    def save(self, folder: str | Path) -> None:
        """Copy the tokenizer files into ``folder`` (and write tokenizer.json if there was none)."""
        folder = Path(folder)
        for name in TOKENIZER_FILES:
            if (self.folder / name).is_file():
                shutil.copyfile(self.folder / name, folder / name)
        if not (folder / "tokenizer.json").exists():
            self._tok.save(str(folder / "tokenizer.json"))
