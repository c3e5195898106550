"""A recipe fitted to a device profile: export exactly what the device takes, or refuse.

Settings the recipe leaves out (``export.shapes``, ``batch_size``, ``seq_len``) are filled
from the profile (Coral: static, batch 1, its sequence length). A setting the recipe *writes*
that the device cannot take, and every target format × precision the device does not accept,
is refused with one line naming the recipe file, the key and the device rule: the user's
settings are never changed behind their back. TF-free.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from edgekit.config.device import DeviceProfile
from edgekit.config.enums import ShapeMode
from edgekit.config.recipe import ExportSection, Recipe
from edgekit.errors import ConfigError

DEFAULT_SEQ_LEN = next(f.default for f in dataclasses.fields(ExportSection) if f.name == "seq_len")


def fit_recipe(recipe: Recipe, profile: DeviceProfile, written: dict[str, Any], where: Path) -> Recipe:
    """``recipe`` with its export settings set for ``profile``.

    ``written``: the recipe file's own ``export`` mapping (which keys the user wrote);
    ``where``: the recipe file, for messages. Raises ``ConfigError`` on any conflict."""
    export = recipe.export
    if export is None:
        return dataclasses.replace(recipe, device=profile.name)
    name = profile.name

    def refuse(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: export.{key}: device {name} {message}")

    for i, target in enumerate(export.targets):
        if not profile.accepts_target(target.format, target.precision):
            raise refuse(f"targets[{i}]", f"cannot take {target.format.value}:{target.precision.value}; "
                                          f"it accepts {profile.accepts_summary()}")
        if profile.shapes is ShapeMode.STATIC and target.shapes is ShapeMode.DYNAMIC:
            raise refuse(f"targets[{i}].shapes", "needs static shapes (fixed [batch, seq_len] inputs), got 'dynamic'")
    changes: dict[str, Any] = {}
    if profile.shapes is ShapeMode.STATIC:
        if "shapes" in written and export.shapes is not ShapeMode.STATIC:
            raise refuse("shapes", f"needs static shapes (fixed [batch, seq_len] inputs), got {export.shapes.value!r}")
        changes["shapes"] = ShapeMode.STATIC
    if profile.batch_size is not None:
        if "batch_size" in written and export.batch_size != profile.batch_size:
            rank = f" (tensors of at most {profile.max_tensor_rank} dimensions)" if profile.max_tensor_rank else ""
            raise refuse("batch_size", f"needs batch size {profile.batch_size}{rank}, got {export.batch_size}")
        changes["batch_size"] = profile.batch_size
    if "seq_len" in written:
        if export.seq_len > profile.max_seq_len:
            raise refuse("seq_len", f"takes at most {profile.max_seq_len} tokens (max_seq_len), got {export.seq_len}")
    else:
        changes["seq_len"] = min(DEFAULT_SEQ_LEN, profile.max_seq_len)
    return dataclasses.replace(recipe, device=name, export=dataclasses.replace(export, **changes))
