"""Write outputs all-or-nothing, and never over files edgekit did not write.

A folder is built in a temporary folder and published whole: renamed into place (next to an
earlier output, which it replaces), or moved into an empty folder that already exists, which stays
(its owner and mode, a shell or a mount sitting in it: ``--out .``). A non-empty folder is
replaced only when the caller recognises it as its own output (``replaces``), and that is checked
before any work (``claim_dir``). Temporary names carry the writer's pid,
``.NAME.edgekit-tmp-<pid>-<hex>``, so the next writer of NAME recovers what a killed run left,
and touches nothing else:

- ``tmp`` (next to NAME, or inside an empty NAME): a build in progress -> removed;
- ``old`` (next to NAME): the previous output, renamed aside just before the new one is renamed
  in -> put back when NAME is missing (the run died between the two renames), else removed;
- ``done`` (inside NAME): a finished build being moved into the empty NAME -> the rest moved in.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from edgekit.errors import OutputError

_TEMP = re.compile(r"\.(?P<name>.+)\.edgekit-(?P<kind>tmp|old|done)-(?P<pid>\d+)-[0-9a-f]{8}")
Replaces = Callable[[Path], bool]


def claim_dir(dest: str | Path, what: str | None = None, replaces: Replaces | None = None, own: str = "",
              apart: Mapping[str, Path] | None = None) -> Path:
    """Check, before any work, that ``dest`` may be written; returns its real path.

    ``dest`` may be missing (created with its parents), an empty folder (filled in place) or a folder
    ``replaces`` accepts (``own`` says what that is, e.g. "an edgekit export"; replaced by two
    renames, so not a mount point). A symlink is written through: its target gets the output
    and the link stays a link, as someone who points ``--out`` at a folder through a link
    expects. ``dest`` must neither be, contain nor be inside a path of ``apart`` (what the
    output is made from, by description). Sweeps what killed writers of ``dest`` left first.
    ``what`` names ``dest`` in the one-line errors (e.g. ``--out x``).
    """
    what = what or str(dest)
    real = Path(os.path.realpath(dest))
    for label, path in (apart or {}).items():
        path = Path(os.path.realpath(path))
        for relation, meets in (("is", path == real), ("contains", path.is_relative_to(real)),
                                ("is inside", real.is_relative_to(path))):
            if meets:
                raise OutputError(f"{what}: {relation} {label} {path}; expected a folder apart from it")
    _sweep(real)
    _probe(real if _mode(real, what, replaces, own) == "fill" else real.parent, real.name, what)
    return real


@contextlib.contextmanager
def atomic_dir(dest: str | Path, what: str | None = None, replaces: Replaces | None = None,
               own: str = "") -> Iterator[Path]:
    """Yield an empty temporary folder that becomes ``dest`` when the body returns.

    ``dest`` is claimed first (``claim_dir``: missing, empty, or replaceable) and checked again
    before publishing. If the body raises, or ``dest`` changed meanwhile so that it may no longer
    be written, the temporary folder is removed and ``dest`` is left exactly as it was. A new
    folder gets the permissions a plain ``mkdir`` would, so services running as other users can
    read it.
    """
    what = what or str(dest)
    real = claim_dir(dest, what, replaces, own)
    tmp = _temp(real if _mode(real, what, replaces, own) == "fill" else real.parent, real.name, "tmp")
    try:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as err:
        raise OutputError(f"{what}: cannot write in {tmp.parent} ({err.strerror})") from None
    try:
        yield tmp
        try:
            _publish(tmp, real, what, replaces, own)
        except OSError as err:
            raise OutputError(f"{what}: could not publish the output ({err.strerror}); {real} is as it was") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def claim_file(path: str | Path, what: str | None = None, replaces: Replaces | None = None,
               own: str = "") -> Path:
    """Check, before any work, that the file ``path`` may be written: it is new, or ``replaces``
    accepts it (``own`` says what that is), and its folder is writable. Returns its real path
    (a symlink is written through)."""
    what = what or str(path)
    real = Path(os.path.realpath(path))
    if real.is_dir():
        raise OutputError(f"{what}: is a folder, expected a file")
    if real.exists() and (replaces is None or not replaces(real)):
        reason = f" and is not {own} (the only kind overwritten)" if own else ""
        raise OutputError(f"{what}: exists{reason}; expected a new file")
    _probe(real.parent, real.name, what)
    return real


def _probe(home: Path, name: str, what: str) -> None:
    """Make and remove a temporary folder in ``home``, or while it does not exist, in the nearest
    folder above it (created later): the one check of writability that root, ACLs and read-only
    mounts cannot fool."""
    while not os.path.lexists(home):
        home = home.parent
    probe = _temp(home, name, "tmp")
    try:
        probe.mkdir()
    except OSError as err:
        raise OutputError(f"{what}: cannot write in {home} ({err.strerror})") from None
    probe.rmdir()


def _publish(tmp: Path, real: Path, what: str, replaces: Replaces | None, own: str) -> None:
    if tmp.parent == real:  # fill the empty folder in place
        if any(p != tmp for p in real.iterdir()):
            raise OutputError(f"{what}: files appeared in it during the run; nothing was written")
        done = tmp.rename(tmp.with_name(tmp.name.replace("-tmp-", "-done-")))
        _move_in(done, real)
        return
    if _mode(real, what, replaces, own) == "create":
        tmp.rename(real)
        return
    old = tmp.with_name(tmp.name.replace("-tmp-", "-old-"))
    real.rename(old)
    try:
        tmp.rename(real)
    except OSError:
        old.rename(real)
        raise
    shutil.rmtree(old.rename(tmp), ignore_errors=True)  # under the tmp name: never put back


def _mode(real: Path, what: str, replaces: Replaces | None, own: str) -> str:
    """How ``real`` gets written: "create", "fill" (an empty folder) or "replace"; else refused."""
    if not real.exists():
        return "create"
    if not real.is_dir():
        raise OutputError(f"{what}: is a file, expected a folder")
    try:
        if not any(real.iterdir()):
            return "fill"
    except OSError as err:
        raise OutputError(f"{what}: cannot read it ({err.strerror})") from None
    if replaces is None or not replaces(real):
        reason = f" and is not {own} (the only kind replaced)" if own else ""
        raise OutputError(f"{what}: holds files{reason}; expected a new or empty folder")
    if os.path.ismount(real):
        raise OutputError(f"{what}: is a mount point, which a new output cannot be renamed onto; "
                          f"expected a folder inside it")
    return "replace"


def _temp(home: Path, name: str, kind: str) -> Path:
    """``home/.NAME.edgekit-KIND-<pid>-<hex>`` (the hex: a reused pid never meets its old names)."""
    return home / f".{name}.edgekit-{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _sweep(real: Path) -> None:
    """Recover what killed writers of ``real`` left (see the module docstring)."""
    for home in (real.parent, real):
        try:
            entries = list(home.iterdir()) if home.is_dir() else []
        except OSError:  # unreadable: nothing of ours to recover there
            continue
        for path in entries:
            found = _TEMP.fullmatch(path.name)
            if not found or found["name"] != real.name or _alive(int(found["pid"])):
                continue
            with contextlib.suppress(OSError):
                if found["kind"] == "tmp":
                    shutil.rmtree(path)
                elif found["kind"] == "old" and home != real and not real.exists():
                    path.rename(real)
                elif found["kind"] == "old" and home != real:
                    shutil.rmtree(path)
                elif found["kind"] == "done" and home == real:
                    _move_in(path, real)


def _move_in(done: Path, real: Path) -> None:
    for entry in sorted(done.iterdir()):
        if not os.path.lexists(real / entry.name):
            entry.rename(real / entry.name)
    shutil.rmtree(done, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def publish_file(tmp: str | Path, path: str | Path) -> None:
    """Rename a finished temporary file (mkstemp: mode 0600) onto ``path`` with the mode a plain
    ``open(path, "w")`` would give it."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
