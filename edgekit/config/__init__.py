"""Typed, validated recipes and device profiles (see ``loader`` for the error format)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from edgekit.bundled import bundled
from edgekit.config.device import Accepts, DeviceProfile, Power
from edgekit.config.enums import (
    Calibration,
    DataFormat,
    Distribute,
    Format,
    Gate,
    LoraTarget,
    Pooling,
    Precision,
    PruneMethod,
    RecoveryTeacher,
    Runtime,
    ShapeMode,
    Task,
)
from edgekit.config.loader import FieldError, load_dataclass, read_yaml
from edgekit.config.recipe import (
    DataSection,
    DistillSection,
    EvaluationSection,
    ExportSection,
    ExportTarget,
    FinetuneSection,
    LoraSection,
    ModelSection,
    PruneSection,
    QuantizeSection,
    Recipe,
    RecoveryDistill,
    StudentSection,
    TrainSchedule,
)
from edgekit.errors import ConfigError

# The profiles shipped in the package (the repository's devices/ links to them).
DEVICES_DIR = bundled("devices")


def list_devices(folder: Path = DEVICES_DIR) -> list[str]:
    """Names of the device profiles in ``folder`` (file stems), sorted."""
    return sorted(p.stem for p in folder.glob("*.yaml"))


def device_path(name_or_path: str | Path, folder: Path = DEVICES_DIR) -> Path:
    """The YAML file of a built-in profile name, or the given path to a profile file."""
    text = str(name_or_path)
    if text.lower().endswith((".yaml", ".yml")) or "/" in text:
        return Path(text)
    path = folder / f"{text}.yaml"
    if not path.is_file():
        import difflib

        names = list_devices(folder)
        close = difflib.get_close_matches(text, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown device {text!r}{hint}; known devices: {', '.join(names)}")
    return path


def load_device(name_or_path: str | Path) -> DeviceProfile:
    """A device profile by built-in name (``rpi5``) or by path to a YAML file."""
    path = device_path(name_or_path)
    profile = load_dataclass(DeviceProfile, path)
    if profile.name != path.stem:
        raise ConfigError(f"{path}: name: expected the file name {path.stem!r}, got {profile.name!r}")
    return profile


def load_recipe(path: str | Path, device: str | None = None) -> Recipe:
    """A validated recipe; a named device profile must exist and load too.

    ``model.source`` is a built-in model name or a folder relative to the recipe file;
    the returned recipe holds the resolved absolute folder. ``device`` (``--device``)
    replaces the recipe's own ``device``; with either, the export settings are fitted to
    that profile or refused (``device_fit``). Last, the recipe is checked against its model's
    config.json (``model_fit``), so that training never rejects it midway.
    """
    path = Path(path)
    raw = read_yaml(path)
    recipe = load_dataclass(Recipe, path, raw)
    from edgekit.models.registry import ALIASES

    source = recipe.model.source
    if source not in {a.name for a in ALIASES}:
        folder = (path.parent / Path(source).expanduser()).resolve()
        if not source.strip() or not folder.is_dir():  # "" would be the recipe's own folder
            names = ", ".join(a.name for a in ALIASES)
            where = f" (no such folder: {folder})" if source.strip() else ""
            raise ConfigError(f"{path}: model.source: expected a built-in model ({names}) or an existing "
                              f"folder, got {source!r}{where}")
        recipe = dataclasses.replace(recipe, model=dataclasses.replace(recipe.model, source=str(folder)))
    name = device if device is not None else recipe.device  # --device "" is refused, not ignored
    if name is not None:
        from edgekit.config.device_fit import fit_recipe

        try:
            profile = load_device(name)
        except ConfigError as err:
            raise ConfigError(f"--device: {err}" if device is not None else f"{path}: device: {err}") from None
        recipe = fit_recipe(recipe, profile, raw.get("export") or {}, path)
    alias = next((a for a in ALIASES if a.name == recipe.model.source), None)
    folder = alias.folder() if alias else Path(recipe.model.source)
    if folder is not None:  # None: a built-in model not installed, which training names
        from edgekit.config.model_fit import check_model

        recipe = check_model(recipe, folder, path, seq_len_written="seq_len" in (raw.get("export") or {}))
    return recipe


__all__ = [
    "Accepts", "Calibration", "ConfigError", "DataFormat", "DataSection",
    "DeviceProfile", "Distribute", "DistillSection", "EvaluationSection", "ExportSection", "ExportTarget",
    "FieldError", "FinetuneSection", "Format", "Gate", "LoraSection", "LoraTarget", "ModelSection", "Pooling",
    "Power", "Precision", "PruneMethod", "PruneSection", "QuantizeSection", "Recipe", "RecoveryDistill", "RecoveryTeacher", "Runtime",
    "ShapeMode", "StudentSection", "Task", "TrainSchedule", "list_devices", "load_device", "load_recipe", "read_yaml",
]
