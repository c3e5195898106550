"""Write a folder all-or-nothing: build it in a temporary sibling, then rename into place."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_dir(dest: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``dest``; on success it replaces ``dest``.

    If the body raises, the temporary folder is removed and ``dest`` is left as it was, so
    a reader never sees a half-written result. The folder gets the permissions a plain
    ``mkdir`` would (mkdtemp's are 0700), so services running as other users can read it.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old-{tmp.name}")
        dest.rename(old)
    tmp.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_file(tmp: str | Path, path: str | Path) -> None:
    """Rename a finished temporary file (mkstemp: mode 0600) onto ``path`` with the mode a plain
    ``open(path, "w")`` would give it."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
