"""One strict YAML → frozen-dataclass loader for recipes and device profiles.

Every error is a ``ConfigError`` whose one-line message reads
``FILE: key.path: expected WHAT, got VALUE`` so the user can jump straight to the fix.
Supported field types: dataclasses, ``str``/``int``/``float``/``bool``, ``Path``,
``str`` enums, ``X | None``, ``tuple[X, ...]`` and ``dict[str, X]``.
Paths are resolved relative to the YAML file; fields whose metadata says ``exists=True``
must name an existing file or folder.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from edgekit.errors import ConfigError

T = TypeVar("T")


class FieldError(ValueError):
    """Raised from a section's ``__post_init__``: ``key`` is relative to that section."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


def require(condition: bool, key: str, message: str) -> None:
    """Validation helper for ``__post_init__`` checks."""
    if not condition:
        raise FieldError(key, message)


def path_field(*, exists: bool = True, default: Any = None) -> Any:
    """A ``Path | None`` field resolved against the YAML file's folder (and checked to exist)."""
    return dataclasses.field(default=default, metadata={"exists": exists})


@dataclasses.dataclass(frozen=True)
class Range:
    """The values a number field takes: ``low``/``high`` bounds (None: unbounded), each
    inclusive unless open; ``str()`` says it the way messages do."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:  # written so that nan is in no range
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def __str__(self) -> str:
        low, high = (None if v is None else str(v) if isinstance(v, int) else f"{v:g}" for v in (self.low, self.high))
        if (low, high) == ("0", "1") and not self.low_open:
            return "a fraction between 0 and 1" if not self.high_open else "a fraction in [0, 1)"
        if high is None:
            return f"a number greater than {low}" if self.low_open else f"at least {low}"
        if low is None:
            return f"a number less than {high}" if self.high_open else f"at most {high}"
        if not (self.low_open or self.high_open):
            return f"{low}..{high}"
        return f"a number in {'(' if self.low_open else '['}{low}, {high}{')' if self.high_open else ']'}"


def ranged(default: Any, low: float | None = None, high: float | None = None, *,
           low_open: bool = False, high_open: bool = False) -> Any:
    """A number field whose value must lie in a ``Range`` (checked by ``check_ranges``)."""
    return dataclasses.field(default=default, metadata={"range": Range(low, high, low_open, high_open)})


def check_ranges(section: Any) -> None:
    """Raise ``FieldError`` for the first ``ranged`` field of ``section`` outside its range."""
    for f in dataclasses.fields(section):
        bounds, value = f.metadata.get("range"), getattr(section, f.name)
        require(bounds is None or value is None or value in bounds, f.name, f"expected {bounds}, got {value}")


class _Loader(yaml.SafeLoader):
    """``yaml.safe_load``, but a key written twice in one mapping is an error: YAML keeps the
    last silently, so ``seed: 3`` ... ``seed: 5`` would train with 5. Merge keys (``<<: *base``)
    still override what they bring in."""

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        first: dict[tuple[str, str], yaml.Node] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                seen = first.setdefault((key.tag, key.value), key)
                if seen is not key:
                    raise yaml.MarkedYAMLError(problem=f"duplicate key {key.value!r} (first at line "
                                                       f"{seen.start_mark.line + 1}; expected each key once)",
                                               problem_mark=key.start_mark)
        return node


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping at the top of a YAML file; syntax errors become one-line ConfigErrors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except RecursionError:  # the composer recurses once per nesting level
        raise ConfigError(f"{path}: invalid YAML: nested too deeply (expected a recipe or device profile)") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ConfigError(f"{path}: invalid YAML: {where}{problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level, got {_describe(data)}")
    return data


def load_dataclass(cls: type[T], path: str | Path, data: dict[str, Any] | None = None) -> T:
    """Build ``cls`` from the YAML file at ``path`` (or from ``data`` read from it)."""
    path = Path(path)
    raw = read_yaml(path) if data is None else data
    return _Builder(path).build(cls, raw, "")


_REPR = reprlib.Repr()  # keyword arguments need Python 3.12
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother = 2, 4, 4, 40, 40


def _describe(value: Any) -> str:
    """``type value``, at most 40 characters: bounded work too, since YAML aliases can make a value
    that is small in the file and billions of items when printed."""
    if value is None:
        return "nothing (null)"
    text = _REPR.repr(value)
    text = text if len(text) <= 40 else text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is tuple:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(typing.get_args(tp)[1])}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return {str: "text", int: "an integer", float: "a number", bool: "true or false",
            Path: "a path"}.get(tp, getattr(tp, "__name__", str(tp)))


class _Builder:
    def __init__(self, file: Path):
        self.file = file

    def fail(self, key: str, message: str) -> ConfigError:
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        return ConfigError(where + message)

    def build(self, cls: type[T], data: Any, key: str) -> T:
        if not isinstance(data, dict):
            raise self.fail(key, f"expected a mapping, got {_describe(data)}")
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        hints = typing.get_type_hints(cls)
        for name in data:
            if name not in fields:
                close = difflib.get_close_matches(str(name), list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                allowed = ", ".join(fields)
                raise self.fail(_join(key, str(name)), f"unknown key{hint}; allowed keys: {allowed}")
        values = {}
        for name, field in fields.items():
            sub = _join(key, name)
            if name not in data:
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                    raise self.fail(sub, f"missing required key (expected {_type_name(hints[name])})")
                continue
            values[name] = self.value(hints[name], data[name], sub, field.metadata)
        try:
            return cls(**values)
        except FieldError as err:
            raise self.fail(_join(key, err.key), err.message) from None

    def value(self, tp: Any, value: Any, key: str, meta: Any = None) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if value is None:
                return None
            return self.value(args[0], value, key, meta)
        if origin is tuple:
            items = value if isinstance(value, list) else None
            if items is None:
                raise self.fail(key, f"expected {_type_name(tp)}, got {_describe(value)}")
            inner = typing.get_args(tp)[0]
            return tuple(self.value(inner, v, f"{key}[{i}]") for i, v in enumerate(items))
        if origin is dict:
            if not isinstance(value, dict):
                raise self.fail(key, f"expected {_type_name(tp)}, got {_describe(value)}")
            inner = typing.get_args(tp)[1]
            return {str(k): self.value(inner, v, _join(key, str(k))) for k, v in value.items()}
        if dataclasses.is_dataclass(tp):
            return self.build(tp, value, key)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            try:
                return tp(value)
            except ValueError:
                close = difflib.get_close_matches(value, [m.value for m in tp], n=1) if isinstance(value, str) else []
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.fail(key, f"expected {_type_name(tp)}, got {_describe(value)}{hint}") from None
        if tp is Path:
            return self.path(value, key, meta or {})
        return self.scalar(tp, value, key)

    def scalar(self, tp: type, value: Any, key: str) -> Any:
        ok = {
            bool: isinstance(value, bool),
            int: isinstance(value, int) and not isinstance(value, bool),
            float: isinstance(value, (int, float)) and not isinstance(value, bool),
            str: isinstance(value, str),
        }.get(tp)
        if ok is None:
            raise TypeError(f"config field type {tp!r} is not supported by the loader")
        if not ok:
            raise self.fail(key, f"expected {_type_name(tp)}, got {_describe(value)}")
        if tp is float and not math.isfinite(value):  # YAML's .nan / .inf
            raise self.fail(key, f"expected a finite number, got {value}")
        return float(value) if tp is float else value

    def path(self, value: Any, key: str, meta: Any) -> Path:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, f"expected a path, got {_describe(value)}")
        path = Path(value).expanduser()
        if not path.is_absolute():
            path = (self.file.parent / path).resolve()
        if meta.get("exists") and not path.exists():
            raise self.fail(key, f"expected an existing file or folder, got {value!r} (no such path: {path})")
        return path


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name
