"""Read text splits from TSV, CSV or JSONL files, or a Hugging Face dataset, and map labels.

Every problem in a file is one ``DataError`` line, ``FILE:LINE: what is wrong (what was
expected)``, with 1-based physical line numbers (the header is line 1), so the user can jump
straight to the bad row. Files are decoded once and split in memory: SST-2's 68k rows load in
a fraction of a second. Blank lines are skipped in every format.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgekit.config.enums import DataFormat
from edgekit.config.recipe import DataSection
from edgekit.data.dataset import TextDataset
from edgekit.errors import DataError, MissingDependencyError

SPLITS = ("train", "validation", "test")
_INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")  # canonical spelling only: "01" is a name, not 1
_SHOWN = 10  # label names listed in a message


def _error(where: Any, line: int | None, what: str, expected: str) -> DataError:
    place = f"{where}:{line}" if line is not None else f"{where}"
    return DataError(f"{place}: {what} ({expected})")


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _listing(names: Any) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:_SHOWN])
    return shown + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "") if names else "nothing"


class _Rows:
    """One split as read: stripped texts and raw labels (as strings), with each row's line."""

    def __init__(self, where: str, kind: str, section: DataSection):
        self.where = where  # the FILE part of messages: a path or an hf source
        self.kind = kind  # "column" or "key", for messages
        self.section = section
        self.texts: list[str] = []
        self.lines: list[int] = []
        self.pairs: list[str] | None = [] if section.text_pair_column else None
        self.labels: list[str] | None = [] if section.label_column else None
        self.class_names: tuple[str, ...] = ()  # an hf ClassLabel's names

    def full(self) -> bool:
        return len(self.texts) == self.section.max_examples

    def add(self, line: int, text: Any, pair: Any, label: Any) -> None:
        self.texts.append(self._cell(line, text, self.section.text_column, "text"))
        if self.pairs is not None:
            self.pairs.append(self._cell(line, pair, self.section.text_pair_column, "text"))
        if self.labels is not None:
            self.labels.append(self._cell(line, label, self.section.label_column, "label"))
        self.lines.append(line)

    def _cell(self, line: int, value: Any, column: str, what: str) -> str:
        if what == "label" and isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # a JSON or ClassLabel integer reads like the same digits in a TSV
        if isinstance(value, str):
            if value := value.strip():
                return value
        elif value is not None:
            kind = "a string or an integer" if what == "label" else "a string"
            raise _error(self.where, line, f"{what} is {_show(value)}", f"expected {kind} in {self.kind} {column!r}")
        raise _error(self.where, line, f"empty {what}",
                     f"expected {'a label' if what == 'label' else 'text'} in {self.kind} {column!r}")

    def columns(self) -> list[str]:
        s = self.section
        return [c for c in (s.text_column, s.text_pair_column, s.label_column) if c]


def _read_text(path: Path) -> str:
    """The whole file as text; a bad byte is reported on the line that holds it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _error(path, None, "no such file", "expected an existing UTF-8 text file") from None
    except OSError as err:
        raise _error(path, None, f"cannot read: {err.strerror}", "expected a readable UTF-8 text file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise _error(path, line, f"invalid UTF-8 byte 0x{data[err.start]:02x}", "expected UTF-8 text") from None
    return text.removeprefix("\ufeff")


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            yield number, line


def _csv_rows(text: str, path: Path) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    while True:
        start = reader.line_num + 1  # a quoted field may span lines: report where the row starts
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise _error(path, reader.line_num, f"malformed CSV: {err}", "expected standard quoted CSV") from None
        if any(f.strip() for f in fields):
            yield start, fields


def _read_table(path: Path, section: DataSection, tsv: bool) -> _Rows:
    """TSV is split on tabs with no quoting (SST-2 has raw quotes in its text); CSV is quoted."""
    text = _read_text(path)
    rows = ((n, line.split("\t")) for n, line in _lines(text)) if tsv else _csv_rows(text, path)
    out = _Rows(str(path), "column", section)
    first = next(rows, None)
    if first is None:
        raise _error(path, 1, "empty file", "expected a header line naming the columns")
    header_line, header = first
    header = [name.strip() for name in header]
    for column in out.columns():
        if column not in header:
            raise _error(path, header_line, f"missing column {column!r}", f"the header has {_listing(header)}")
        if header.count(column) > 1:  # which one was meant? never silently the first
            raise _error(path, header_line, f"column {column!r} named {header.count(column)} times",
                         "expected each column of the header once")
    index = [header.index(c) if c else None for c in (section.text_column, section.text_pair_column,
                                                       section.label_column)]
    kind = "tab-separated" if tsv else "comma-separated"
    for line, fields in rows:
        if out.full():
            break
        if len(fields) != len(header):
            plural = "" if len(fields) == 1 else "s"
            raise _error(path, line, f"found {len(fields)} {kind} field{plural}",
                         f"expected {len(header)}, as in the header")
        out.add(line, *(None if i is None else fields[i] for i in index))
    return out


def _json_object(path: Path, line: int, raw: str) -> dict:
    """One JSONL line as an object, or a DataError naming FILE:LINE."""
    try:
        obj = json.loads(raw)
    except json.JSONDecodeError as err:
        raise _error(path, line, f"invalid JSON: {err.msg} at column {err.colno}",
                     "expected one JSON object per line") from None
    except RecursionError:  # the decoder recurses once per nesting level
        raise _error(path, line, "JSON nested too deeply", "expected one JSON object per line") from None
    if not isinstance(obj, dict):
        raise _error(path, line, f"found {_show(obj)}", "expected one JSON object per line")
    return obj


def _read_jsonl(path: Path, section: DataSection) -> _Rows:
    out = _Rows(str(path), "key", section)
    for line, raw in _lines(_read_text(path)):
        if out.full():
            break
        obj = _json_object(path, line, raw)
        for key in out.columns():
            if key not in obj:
                raise _error(path, line, f"missing key {key!r}", f"the object has {_listing(obj)}")
        out.add(line, obj[section.text_column], obj.get(section.text_pair_column), obj.get(section.label_column))
    return out


def _datasets():
    try:
        import datasets
    except ImportError:
        raise MissingDependencyError("format 'hf' needs the datasets package: pip install datasets") from None
    return datasets


def _hf_name(section: DataSection) -> str:
    return f"hf:{section.hf_dataset}" + (f"/{section.hf_config}" if section.hf_config else "")


def _hf_call(where: str, call, *args, **kwargs) -> Any:
    """Hub and loading failures (offline, unknown name/config/split) become one DataError line."""
    try:
        return call(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - datasets raises many types; the user sees one line
        reason = (str(err).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{where}: cannot load: {type(err).__name__}: {reason} "
                        f"(expected a reachable Hugging Face dataset, config and split)") from err


def _read_hf(section: DataSection, split: str) -> _Rows:
    """Rows are numbered from 1 in place of lines; ClassLabel names serve when no labels are given."""
    datasets = _datasets()
    out = _Rows(f"{_hf_name(section)}:{split}", "column", section)
    wanted = split if section.max_examples is None else f"{split}[:{section.max_examples}]"
    ds = _hf_call(out.where, datasets.load_dataset, section.hf_dataset, section.hf_config, split=wanted)
    for column in out.columns():
        if column not in ds.column_names:
            raise _error(out.where, None, f"missing column {column!r}", f"the dataset has {_listing(ds.column_names)}")
    if section.label_column:
        out.class_names = tuple(getattr(ds.features[section.label_column], "names", None) or ())
    n = len(ds)
    values = [list(ds[c]) if c else [None] * n
              for c in (section.text_column, section.text_pair_column, section.label_column)]
    for row, (text, pair, label) in enumerate(zip(*values), 1):
        out.add(row, text, pair, label)
    return out


@dataclass(frozen=True)
class _Labels:
    names: tuple[str, ...]
    origin: str | None  # the split the names were inferred from; None when given (indices allowed too)

    def encode(self, rows: _Rows) -> np.ndarray:
        lookup = {str(i): i for i in range(len(self.names))} if self.origin is None else {}
        lookup.update((name, i) for i, name in enumerate(self.names))
        try:
            return np.array([lookup[v] for v in rows.labels], dtype=np.int32)
        except KeyError:
            line, value = next((n, v) for n, v in zip(rows.lines, rows.labels) if v not in lookup)
        if self.origin is None:
            expected = f"expected one of {_listing(self.names)} or an index 0..{len(self.names) - 1}"
        else:
            expected = (f"expected one of the {self.origin} split's labels {_listing(self.names)}; "
                        f"name every label in data.labels")
        raise _error(rows.where, line, f"unknown label {value!r}", expected)


def _infer_labels(section: DataSection, rows: _Rows, split: str) -> _Labels:
    """Given names win; then an hf ClassLabel's; else the split's distinct raw labels, sorted."""
    if section.labels:
        return _Labels(tuple(section.labels), None)
    if rows.class_names:
        return _Labels(rows.class_names, None)
    values = set(rows.labels)
    if len(values) == 1:  # a one-class classifier is right by construction: loss 0, accuracy 1.0
        raise _error(rows.where, None, f"every row has the label {values.pop()!r}",
                     f"expected at least 2 classes in {rows.kind} {section.label_column!r}; name them all in "
                     "data.labels, or set label_column: null for unlabeled text")
    if all(_INTEGER.fullmatch(v) for v in values):
        return _Labels(tuple(sorted(values, key=int)), split)
    return _Labels(tuple(sorted(values)), split)


def _present(section: DataSection) -> list[str]:
    if DataFormat(section.format) is DataFormat.HF:
        get_names = _datasets().get_dataset_split_names
        names = _hf_call(_hf_name(section), get_names, section.hf_dataset, section.hf_config)
        return [s for s in SPLITS if s in names]
    return [s for s in SPLITS if getattr(section, s) is not None]


def _read(section: DataSection, split: str) -> _Rows:
    fmt = DataFormat(section.format)
    if fmt is DataFormat.HF:
        rows = _read_hf(section, split)
    elif fmt is DataFormat.JSONL:
        rows = _read_jsonl(Path(getattr(section, split)), section)
    else:
        rows = _read_table(Path(getattr(section, split)), section, tsv=fmt is DataFormat.TSV)
    if not rows.texts:
        raise _error(rows.where, None, "no examples", "expected at least one row of text")
    return rows


def _dataset(rows: _Rows, labels: _Labels | None) -> TextDataset:
    pairs = None if rows.pairs is None else tuple(rows.pairs)
    if labels is None:
        return TextDataset(tuple(rows.texts), None, (), rows.where, pairs)
    return TextDataset(tuple(rows.texts), labels.encode(rows), labels.names, rows.where, pairs)


def _check_held_out(rows: dict[str, _Rows]) -> None:
    """Refuse a validation or test split whose every text is also in train (the same file named
    twice, or a copy): its accuracy would measure memorisation, silently optimistic."""
    if "train" not in rows:
        return

    def keys(r: _Rows) -> list:
        return list(zip(r.texts, r.pairs)) if r.pairs is not None else r.texts

    seen = set(keys(rows["train"]))
    for split in ("validation", "test"):
        if split in rows and all(k in seen for k in keys(rows[split])):
            raise _error(rows[split].where, None, f"every one of its {len(rows[split].texts)} texts is also in "
                         f"the train split {rows['train'].where}", "expected text held out from training; to measure "
                         "on the training data, drop this split and use evaluation.split: train")


def load_splits(section: DataSection) -> dict[str, TextDataset]:
    """Every split the section names (for hf: that the dataset has), sharing one set of label names."""
    present = _present(section)
    rows = {split: _read(section, split) for split in present}
    _check_held_out(rows)
    labels = None
    if section.label_column and present:
        labels = _infer_labels(section, rows[present[0]], present[0])
    return {split: _dataset(r, labels) for split, r in rows.items()}


def load_split(section: DataSection, split: str) -> TextDataset | None:
    """One split, or None when the section has none; inferred label names still come from the
    first split present (train if any), so indices agree with ``load_splits``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    present = _present(section)
    if split not in present:
        return None
    rows = _read(section, split)
    if not section.label_column:
        return _dataset(rows, None)
    given = section.labels or rows.class_names
    first = rows if given or split == present[0] else _read(section, present[0])
    return _dataset(rows, _infer_labels(section, first, present[0]))


def load_unlabeled(path: Path, max_examples: int | None = None) -> TextDataset:
    """One text per line (UTF-8, surrounding whitespace stripped, blank lines skipped)."""
    path = Path(path)
    texts = []
    for _, line in _lines(_read_text(path)):
        if len(texts) == max_examples:
            break
        texts.append(line.strip())
    if not texts:
        raise _error(path, None, "no text", "expected one text per line")
    return TextDataset(tuple(texts), None, (), str(path))
