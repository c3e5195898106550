"""WordPiece tokenisation with the ``tokenizers`` library, from a HF model folder.

``tokenizer.json`` is used when present (it carries its own normaliser, lower-casing
included); otherwise ``vocab.txt`` with ``do_lower_case`` from ``tokenizer_config.json``
(default True, as in transformers' BertTokenizer). A folder with both must hold the same
tokens under the same ids in each (apps on devices read ``vocab.txt``, the rest
``tokenizer.json``). A tokenizer must also fit its model's word-embedding table
(``check_fits``): an id past the table crashes at the first rare word, and a vocabulary far
smaller than the table is another model's tokenizer, whose ids pick the wrong rows.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from edgekit.errors import ModelLoadError
from edgekit.models.files import first_line, is_file, json_value, read_json_object, read_text

# Files that describe a tokenizer in a HF folder; copied verbatim when a model is saved.
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "sentencepiece.bpe.model",
                   "spiece.model", "added_tokens.json", "tokenizer_config.json", "special_tokens_map.json")
# Share of the embedding table's rows a model's own tokenizer covers at least: tables are padded
# a little past the vocabulary (to a multiple of 8 or 64), never by a tenth.
MIN_TABLE_COVERAGE = 0.9


class TextTokenizer:
    """Texts -> int32 arrays ``input_ids``, ``attention_mask``, ``token_type_ids`` of shape [B, S]."""

    def __init__(self, folder: str | Path):
        from tokenizers import Tokenizer
        from tokenizers.implementations import BertWordPieceTokenizer

        self.folder = Path(folder)
        lower, strip, self.pad_token = _read_settings(self.folder / "tokenizer_config.json")
        json_path, vocab_path = self.folder / "tokenizer.json", self.folder / "vocab.txt"
        vocab = _read_vocab_txt(vocab_path) if is_file(vocab_path) else None
        if is_file(json_path):
            self.file = json_path
            text = read_text(json_path)
            try:
                self._tok = Tokenizer.from_str(text)
            except Exception as err:  # tokenizers raises a bare Exception for any bad content
                raise ModelLoadError(f"{json_path}: not a tokenizers file ({first_line(err)})") from None
            if vocab is not None:
                _check_same_vocab(vocab_path, vocab, json_path, self._tok.get_vocab(with_added_tokens=False))
        elif vocab is not None:
            self.file = vocab_path
            for token in ("[CLS]", "[SEP]"):
                if token not in vocab:
                    raise ModelLoadError(f"{vocab_path}: no {token} token (BERT wraps every text in [CLS] ... [SEP])")
            self._tok = BertWordPieceTokenizer(vocab, lowercase=lower,
                                               strip_accents=lower if strip is None else strip)
        else:
            raise ModelLoadError(f"{self.folder}: no tokenizer.json or vocab.txt")
        unk = getattr(self._tok.model, "unk_token", None)
        if unk is not None and self._tok.token_to_id(unk) is None:
            raise ModelLoadError(f"{self.file}: unknown-word token {unk!r} is not in the vocabulary "
                                 "(the first word it does not know would stop tokenisation)")
        self.pad_id = self._tok.token_to_id(self.pad_token)
        if self.pad_id is None:
            raise ModelLoadError(f"{self.file}: pad token {self.pad_token!r} is not in the vocabulary")
        # The highest id it can produce: a vocabulary entry, or a special token its post-processor adds.
        self.max_id = max([*self._tok.get_vocab(with_added_tokens=True).values(), *self._tok.encode("", "").ids,
                           self.pad_id])

    def check_fits(self, rows: int, config_file: Path) -> None:
        """Refuse this tokenizer for a ``rows``-row word-embedding table that it does not fit."""
        tokens = self.vocab_size
        ids = f" (ids up to {self.max_id:,})" if self.max_id != tokens - 1 else ""
        what = f"{self.file}: {tokens:,} tokens{ids} for a {rows:,}-row embedding table ({config_file} vocab_size)"
        if self.max_id >= rows:
            raise ModelLoadError(f"{what}: ids {rows:,}..{self.max_id:,} are past the table; the tokenizer does "
                                 "not belong to this model")
        if tokens < MIN_TABLE_COVERAGE * rows:
            raise ModelLoadError(f"{what}: a model's own tokenizer covers at least {MIN_TABLE_COVERAGE:.0%} of the "
                                 "rows; the tokenizer does not belong to this model")

    @property
    def backend(self):
        """The ``tokenizers.Tokenizer`` itself, for word-aligned and windowed encodings (offsets,
        word ids, overflowing windows). Every method here sets truncation and padding before it
        encodes, so callers set their own and need not restore them."""
        return self._tok

    @property
    def kind(self) -> str:
        """"wordpiece" (BERT, DistilBERT, ELECTRA), "bpe" (RoBERTa's byte-level BPE) or "unigram"
        (SentencePiece: XLM-R, ALBERT): what an app's tokenizer must implement."""
        return {"WordPiece": "wordpiece", "BPE": "bpe", "Unigram": "unigram"}.get(type(self._tok.model).__name__,
                                                                             type(self._tok.model).__name__.lower())

    def definition(self) -> str:
        """The tokenizer as tokenizer.json text (without the padding / truncation ``encode`` set)."""
        return json.dumps(_definition(self._tok), ensure_ascii=False, indent=1)

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
        """Copy the tokenizer files into ``folder`` (and write tokenizer.json if there was none),
        then read them back: they must be this tokenizer (not files edited since it was loaded),
        with vocab.txt and tokenizer.json in agreement."""
        folder = Path(folder)
        for name in TOKENIZER_FILES:
            if is_file(self.folder / name):
                shutil.copyfile(self.folder / name, folder / name)
        if not (folder / "tokenizer.json").exists():
            self._tok.save(str(folder / "tokenizer.json"))
        try:  # the files loaded and agreed when this tokenizer was made from them
            written = TextTokenizer(folder)
        except ModelLoadError:
            written = None
        if written is None or (written.pad_id, _definition(written._tok)) != (self.pad_id, _definition(self._tok)):
            raise ModelLoadError(f"{self.folder}: tokenizer files changed since the model was loaded (load it "
                                 "again, so that what is written is the tokenizer it runs with)")


def _read_settings(path: Path) -> tuple[bool, bool | None, str]:
    """``do_lower_case``, ``strip_accents`` and the pad token of tokenizer_config.json (BertTokenizer's
    defaults without the file)."""
    settings = read_json_object(path) if is_file(path) else {}
    lower, strip = settings.get("do_lower_case", True), settings.get("strip_accents")
    pad = settings.get("pad_token", "[PAD]")
    if isinstance(pad, dict):  # newer tokenizer_config.json stores AddedToken dicts
        pad = pad.get("content")
    for key, value, ok, expected in (
            ("do_lower_case", lower, isinstance(lower, bool), "true or false"),
            ("strip_accents", strip, strip is None or isinstance(strip, bool), "true, false or null"),
            ("pad_token", pad, isinstance(pad, str), "a string")):
        if not ok:
            raise ModelLoadError(f"{path}: {key}: expected {expected}, got {json_value(value)}")
    return lower, strip, pad


def _read_vocab_txt(path: Path) -> dict[str, int]:
    """Token -> id (its line, from 0), read as tokenizers reads it (trailing whitespace dropped)."""
    lines = read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    return {line.rstrip(): i for i, line in enumerate(lines)}


def _check_same_vocab(vocab_path: Path, vocab: dict[str, int], json_path: Path, json_vocab: dict[str, int]) -> None:
    if vocab == json_vocab:
        return
    moved = next((t for t in sorted(vocab, key=vocab.get) if json_vocab.get(t) != vocab[t]), None)
    if moved is None:
        extra = next(t for t in json_vocab if t not in vocab)
        difference = f"{extra!r} is id {json_vocab[extra]} in {json_path.name} and not in {vocab_path.name}"
    else:
        other = f"id {json_vocab[moved]}" if moved in json_vocab else "missing"
        difference = f"{moved!r} is id {vocab[moved]} in {vocab_path.name}, {other} in {json_path.name}"
    raise ModelLoadError(f"{vocab_path} and {json_path} disagree: {difference} ({len(vocab):,} and "
                         f"{len(json_vocab):,} tokens; both must hold the same tokens under the same ids)")


def _definition(tok) -> dict:
    """A tokenizer's serialised form without the truncation/padding state that ``encode`` sets."""
    return {k: v for k, v in json.loads(tok.to_str()).items() if k not in ("truncation", "padding")}
