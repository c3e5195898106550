"""Stage outputs cached by a hash of everything they depend on.

``<root>/<stage>-<key>/`` is a finished stage: a Hugging Face checkpoint plus ``stage.json``;
it is created by an atomic rename, so its existence means it is complete. ``stage.json`` holds
a sha256 of its other keys and of the checkpoint files: a folder edited or half-deleted since (by
hand, by a tool) is not reused but trained again and replaced. While a stage runs,
``<root>/<stage>-<key>.work/`` holds its resumable checkpoints and caches (teacher outputs);
it is removed once the stage has finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

from edgekit.atomic import atomic_dir
from edgekit.errors import ConfigError

STAGE_FILE = "stage.json"
RECORD_DIGEST = "sha256"  # the key of stage.json that holds the folder's digest (``_stage_digest``)
# Bump when a change to the training code makes old cached outputs wrong.
CACHE_VERSION = 1
# Settings added after caches were made: left out of a key while unset, so those caches stay valid.
_ADDED_LATER = ("lora",)


def default_root() -> Path:
    base = os.environ.get("EDGEKIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgekit"
    return Path(base) / "stages"


def check_root(root: Path) -> None:
    """Refuse, before a stage trains, a cache root that is a file, lies under one, or cannot be
    written: the stage would otherwise fail when it first saves, minutes in."""
    where = f"{root}: the stage cache (--cache or $EDGEKIT_CACHE)"
    for existing in (root, *root.parents):
        try:
            mode = existing.stat().st_mode
            break
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as err:  # a link loop, no permission to look
            raise ConfigError(f"{where} cannot be reached ({err.strerror}: {existing})") from None
    if not stat.S_ISDIR(mode):
        at = "is a file" if existing == root else f"is under {existing}, which is not a folder"
        raise ConfigError(f"{where} {at}; expected a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"{where} cannot be written ({existing} is not writable); expected a writable folder")


def digest(*parts) -> str:
    """A short stable hash of parts: JSON values, dataclasses (as dicts) and paths."""
    parts = [_unset_dropped(dataclasses.asdict(p)) if dataclasses.is_dataclass(p) else p for p in parts]
    text = json.dumps([CACHE_VERSION, *parts], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _unset_dropped(value):
    if isinstance(value, dict):
        return {k: _unset_dropped(v) for k, v in value.items() if not (k in _ADDED_LATER and v is None)}
    return value


def folder_digest(folder: Path) -> str:
    """Content hash of a checkpoint folder's config and weights (what a stage reads)."""
    h = hashlib.sha256()
    _feed(h, sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors")))
    return h.hexdigest()[:16]


def _feed(h, paths, separator: bytes = b"", root: Path | None = None) -> None:
    """Stream each file's name (its path under ``root`` if given, then ``separator``) and bytes,
    1 MiB at a time, into the hash ``h``."""
    for path in paths:
        h.update((path.relative_to(root).as_posix() if root else path.name).encode() + separator)
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)


@dataclasses.dataclass(frozen=True)
class StageSlot:
    stage: str
    key: str
    root: Path

    def __post_init__(self):
        check_root(Path(self.root))

    @property
    def folder(self) -> Path:
        return self.root / f"{self.stage}-{self.key}"

    @property
    def work(self) -> Path:
        return self.root / f"{self.stage}-{self.key}.work"

    def finished(self) -> dict | None:
        """The stage record if this stage finished and its folder is as it was published, else None."""
        record = read_record(self.folder)
        if record is None or record.get(RECORD_DIGEST) != _stage_digest(self.folder, record):
            return None
        return record

    def publish(self, pretrained, record: dict, extra: Path | None = None) -> Path:
        """Write the checkpoint, a copy of the ``extra`` folder (a LoRA stage's adapter, under its
        own name) and ``stage.json`` atomically (replacing a folder of this stage that ``finished``
        did not accept), then drop the work folder."""
        from edgekit.models.checkpoint import write_checkpoint

        with atomic_dir(self.folder, replaces=lambda path: True, own="a cached stage") as tmp:
            write_checkpoint(tmp, pretrained.model, pretrained.config)
            pretrained.tokenizer.save(tmp)
            if extra is not None:
                shutil.copytree(extra, tmp / extra.name)
            record = json.loads(json.dumps(record, default=str))  # as read back: lists, strings
            record[RECORD_DIGEST] = _stage_digest(tmp, record)
            (tmp / STAGE_FILE).write_text(json.dumps(record, indent=2) + "\n")
        shutil.rmtree(self.work, ignore_errors=True)
        return self.folder


def read_record(folder: Path) -> dict | None:
    """``folder``'s stage.json, or None when it has none that edgekit could have written."""
    try:
        record = json.loads((folder / STAGE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):  # missing, unreadable, not UTF-8 or not JSON
        return None
    return record if isinstance(record, dict) else None


def _stage_digest(folder: Path, record: dict) -> str:
    """sha256 of a stage's record (without this digest) and of every other file in its folder."""
    h = hashlib.sha256(json.dumps({k: v for k, v in record.items() if k != RECORD_DIGEST}, sort_keys=True).encode())
    try:
        files = sorted(p for p in folder.rglob("*") if p != folder / STAGE_FILE and not p.is_dir())
        _feed(h, files, b"\0", folder)
    except OSError:  # a file it cannot read, a folder put there: not as published
        return ""
    return h.hexdigest()
