"""Read word-tagged sentences (NER) from CoNLL files or JSONL into one ``TaggedDataset``.

CoNLL: one ``token ... TAG`` line per word (whitespace-separated columns: the token first, the
tag last, any columns between ignored), a blank line between sentences, ``-DOCSTART-`` lines
skipped. JSONL: one object per line with a list of tokens and a list of tags of the same length.
Tags are IOB2 (``O``, ``B-TYPE``, ``I-TYPE``). Every problem is one ``DataError`` line,
``FILE:LINE: what is wrong (what was expected)``, as in ``edgekit.data.readers``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgekit.data.readers import _error, _json_object, _lines, _listing, _read_text, _show

_FINGERPRINT_VERSION = "edgekit.TaggedDataset/1"  # bump if the hashed payload ever changes
_TAG = re.compile(r"O|[BI]-\S+")
DOCSTART = "-DOCSTART-"


@dataclass(frozen=True, eq=False, repr=False)
class TaggedDataset:
    """Sentences of words, each word with an int32 tag index into ``tag_names``.

    Immutable so that ``fingerprint()`` stays a valid cache key: the tags are copied into
    read-only arrays. ``==`` is identity; compare by fingerprint.
    """

    words: tuple[tuple[str, ...], ...]
    tags: tuple[np.ndarray, ...]  # int32 [w_i] per sentence
    tag_names: tuple[str, ...]  # "O", "B-PER", "I-PER", ...
    lines: tuple[int, ...]  # 1-based line of each sentence (its first token's, or its JSON object's)
    source: str  # the file path

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "words", tuple(tuple(w) for w in self.words))
        set_(self, "tag_names", tuple(self.tag_names))
        set_(self, "lines", tuple(self.lines))
        tags = tuple(np.array(t, dtype=np.int32) for t in self.tags)
        if len(tags) != len(self.words) or len(self.lines) != len(self.words):
            raise ValueError(f"{len(tags)} tag rows and {len(self.lines)} lines for {len(self.words)} sentences")
        for i, (row, words) in enumerate(zip(tags, self.words)):
            if row.shape != (len(words),):
                raise ValueError(f"sentence {i}: tags of shape {row.shape} for {len(words)} words")
            if row.size and (row.min() < 0 or row.max() >= len(self.tag_names)):
                raise ValueError(f"sentence {i}: tag indices outside 0..{len(self.tag_names) - 1}")
            row.flags.writeable = False
        set_(self, "tags", tags)

    def __len__(self) -> int:
        return len(self.words)

    def __repr__(self) -> str:  # the default would print every word
        return f"TaggedDataset({self.source!r}, {len(self)} sentences, tag_names={self.tag_names})"

    def fingerprint(self) -> str:
        """sha256 hex of the content (words, tags, tag names; not the source path or lines)."""
        payload = [_FINGERPRINT_VERSION, self.words, [t.tolist() for t in self.tags], self.tag_names]
        return hashlib.sha256(json.dumps(payload).encode("ascii")).hexdigest()


class _Sentences:
    """Sentences as read, with tag strings checked as they come (so errors name their line)."""

    def __init__(self, path: Path, labels: Sequence[str], max_examples: int | None):
        self.path = path
        self.labels = tuple(labels)
        self.max_examples = max_examples
        self.words: list[tuple[str, ...]] = []
        self.tags: list[list[str]] = []
        self.lines: list[int] = []

    def full(self) -> bool:
        return len(self.words) == self.max_examples

    def tag(self, line: int, tag: str) -> str:
        if not _TAG.fullmatch(tag):
            raise _error(self.path, line, f"tag {tag!r} is not IOB2", "expected O, B-TYPE or I-TYPE")
        if self.labels and tag not in self.labels:
            raise _error(self.path, line, f"tag {tag!r} is not among the labels",
                         f"expected one of {_listing(self.labels)}; name every tag in data.labels")
        return tag

    def add(self, line: int, words: Sequence[str], tags: list[str]) -> None:
        self.words.append(tuple(words))
        self.tags.append(tags)
        self.lines.append(line)

    def dataset(self, expected: str) -> TaggedDataset:
        """Tag names: the given labels in their order; else O, then B-T, I-T for each type seen, sorted."""
        if not self.words:
            raise _error(self.path, None, "no sentences", expected)
        names = self.labels
        if not names:
            types = sorted({t[2:] for tags in self.tags for t in tags if t != "O"})
            names = ("O", *(f"{prefix}-{kind}" for kind in types for prefix in "BI"))
        index = {name: i for i, name in enumerate(names)}
        tags = [np.array([index[t] for t in row], dtype=np.int32) for row in self.tags]
        return TaggedDataset(tuple(self.words), tuple(tags), names, tuple(self.lines), str(self.path))


def read_conll(path: str | Path, labels: Sequence[str] = (), max_examples: int | None = None) -> TaggedDataset:
    """The first ``max_examples`` sentences (all when None) of a CoNLL file; CRLF and trailing
    spaces are fine. ``labels`` fixes the tag names and their order (a tag outside them is an
    error); without it the names are those seen in the file."""
    path = Path(path)
    out = _Sentences(path, labels, max_examples)
    words: list[str] = []
    tags: list[str] = []
    start = 0
    for number, raw in enumerate([*_read_text(path).split("\n"), ""], 1):  # "": close the last sentence
        fields = raw.split()
        if not fields or fields[0] == DOCSTART:
            if words:
                out.add(start, words, tags)
                words, tags = [], []
                if out.full():
                    break
            continue
        if len(fields) == 1:
            raise _error(path, number, f"one column {fields[0]!r}", "expected a token and its tag, separated by "
                         "whitespace")
        if not words:
            start = number
        words.append(fields[0])
        tags.append(out.tag(number, fields[-1]))
    return out.dataset("expected 'token TAG' lines, a blank line between sentences")


def _strings(path: Path, line: int, obj: dict, key: str, what: str) -> list[str]:
    """The non-empty list of non-empty strings under ``key``."""
    if key not in obj:
        raise _error(path, line, f"missing key {key!r}", f"the object has {_listing(obj)}")
    values: Any = obj[key]
    if not isinstance(values, list):
        raise _error(path, line, f"key {key!r} is {_show(values)}", f"expected a list of {what} strings")
    if not values:
        raise _error(path, line, "empty sentence", f"expected at least one {what} in key {key!r}")
    for i, value in enumerate(values):
        if not isinstance(value, str) or not value.strip():
            found = "blank" if isinstance(value, str) else _show(value)
            raise _error(path, line, f"{key}[{i}] is {found}", f"expected each {what} a non-blank string")
    return values


def read_tagged_jsonl(path: str | Path, labels: Sequence[str] = (), max_examples: int | None = None,
                      tokens_key: str = "tokens", tags_key: str = "tags") -> TaggedDataset:
    """Like ``read_conll``, from one JSON object per line (blank lines skipped), e.g.
    ``{"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"]}``."""
    path = Path(path)
    out = _Sentences(path, labels, max_examples)
    for line, raw in _lines(_read_text(path)):
        if out.full():
            break
        obj = _json_object(path, line, raw)
        words = _strings(path, line, obj, tokens_key, "token")
        tags = _strings(path, line, obj, tags_key, "tag")
        if len(words) != len(tags):
            raise _error(path, line, f"key {tokens_key!r} has {len(words)} items and key {tags_key!r} {len(tags)}",
                         "expected one tag per token")
        out.add(line, words, [out.tag(line, tag) for tag in tags])
    return out.dataset("expected one JSON object per line")
