"""The small files of a model folder, read so that every failure is one line naming the file.

``Path.is_file`` answers False for a file it may not stat (permission denied), which would
turn an unreadable file into a misleading "no such file"; these helpers raise instead.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

from edgekit.errors import ModelLoadError

_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true or false",
               type(None): "null"}


def unreadable(path: Path, err: OSError) -> ModelLoadError:
    return ModelLoadError(f"{path}: cannot read: {err.strerror or err}")


def is_file(path: Path) -> bool:
    """Whether ``path`` is a regular file; a path that cannot be looked at is an error, not False."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        raise unreadable(path, err) from None


def check_readable(path: Path) -> None:
    """Open and close ``path`` (safetensors reports permission denied as "no such file")."""
    try:
        with path.open("rb"):
            pass
    except OSError as err:
        raise unreadable(path, err) from None


def utf8_text(data: bytes, where: str, error: type[Exception] = ModelLoadError) -> str:
    """``data`` decoded (a BOM dropped); a bad byte is reported with its offset and line."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise error(f"{where}:{line}: invalid UTF-8 byte 0x{data[err.start]:02x} at byte offset {err.start} "
                    "(expected UTF-8 text)") from None


def read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise unreadable(path, err) from None
    return utf8_text(data, str(path))


def read_json(path: Path):
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise ModelLoadError(f"{path}: invalid JSON (nested too deeply)") from None


def read_json_object(path: Path) -> dict:
    """The JSON object in ``path``; bytes, syntax and a top level that is not an object are refused."""
    value = read_json(path)
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, got {json_kind(value)}")
    return value


def first_line(err: Exception) -> str:
    """The first line of a library's exception text (some span many lines, some are empty)."""
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def json_kind(value) -> str:
    """How a JSON value's type is named in messages: "an array", "a string", ..."""
    return _JSON_KINDS.get(type(value), type(value).__name__)


def json_value(value) -> str:
    """A JSON value as its file spells it, cut short: ``"32"``, ``true``, ``null``."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
