"""Read an export folder written by ``edgekit export``: its ``edgekit.json`` manifest, labels,
tokenizer files and artifacts. The app needs nothing else from edgekit.

The manifest says the task (``text-classification`` or ``feature-extraction``), the inputs
(int32 [batch, sequence] by name), the one output (``logits`` [batch, labels] or ``embedding``
[batch, hidden]), ``max_length`` (tokens, specials included) and, per artifact, its file,
format, precision, status and whether it passed the export's evaluation gate.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "edgekit.json"
# Runtime module per artifact format, in the order the app prefers them (LiteRT first: it is
# what Raspberry Pi and Android apps run).
RUNTIME_MODULES = {"tflite": "ai_edge_litert", "onnx": "onnxruntime", "openvino": "openvino"}


class AppError(Exception):
    """A problem the user can fix (bad folder, unknown artifact, missing runtime): one line."""


@dataclass(frozen=True)
class Artifact:
    key: str  # "<format>-<precision>", the file name without its suffix
    format: str
    precision: str
    path: Path
    passed: bool  # exported, evaluated and within the export's evaluation gate
    runtime_installed: bool


@dataclass(frozen=True)
class ExportFolder:
    folder: Path
    task: str
    labels: tuple[str, ...]  # classifiers: label per logit; encoders: ()
    input_names: tuple[str, ...]
    output_name: str
    max_length: int
    artifacts: tuple[Artifact, ...]
    recipe_name: str

    @property
    def classifier(self) -> bool:
        return bool(self.labels)

    def artifact(self, wanted: str | None = None) -> Artifact:
        """``wanted`` (key or file name), else the first passing artifact with its runtime installed."""
        if wanted is not None:
            for a in self.artifacts:
                if wanted in (a.key, a.path.name):
                    if not a.runtime_installed:
                        raise AppError(f"{a.path.name}: needs the {RUNTIME_MODULES[a.format]} Python package, "
                                       f"which is not installed")
                    return a
            names = ", ".join(a.key for a in self.artifacts)
            raise AppError(f"{self.folder / MANIFEST}: no artifact {wanted!r} (expected one of: {names})")
        for fmt in RUNTIME_MODULES:
            for a in self.artifacts:
                if a.format == fmt and a.passed and a.runtime_installed:
                    return a
        raise AppError(f"{self.folder / MANIFEST}: no exported artifact that passed its evaluation can run here "
                       f"(install one of: {', '.join(sorted(set(RUNTIME_MODULES.values())))})")


def _field(doc: dict, key: str, kind: type, where: Path):
    if key not in doc:
        raise AppError(f"{where}: {key}: missing (is this a folder written by `edgekit export`?)")
    if not isinstance(doc[key], kind):
        raise AppError(f"{where}: {key}: expected {kind.__name__}, got {type(doc[key]).__name__}")
    return doc[key]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def read_export(folder: str | Path) -> ExportFolder:
    """The export folder's manifest, checked; raises AppError naming the file and key."""
    folder = Path(folder)
    path = folder / MANIFEST
    if not path.is_file():
        raise AppError(f"{folder}: no {MANIFEST} (expected a folder written by `edgekit export`)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AppError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(doc, dict):
        raise AppError(f"{path}: expected a JSON object")
    task = _field(doc, "task", str, path)
    labels = tuple(_field(doc, "labels", list, path))
    if task == "text-classification" and not labels:
        raise AppError(f"{path}: labels: a text-classification export needs its labels")
    inputs = [i["name"] for i in _field(doc, "inputs", list, path)]
    output = _field(doc, "output", dict, path)
    max_length = _field(doc, "max_length", int, path)
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.txt").is_file():
        raise AppError(f"{folder}: no tokenizer.json or vocab.txt (the export's tokenizer files)")
    artifacts = []
    for row in _field(doc, "artifacts", list, path):
        fmt = row.get("format")
        if fmt not in RUNTIME_MODULES or not row.get("path"):
            continue
        file = folder / row["path"]
        ok = row.get("status") == "ok" and not row.get("gate") and file.is_file()
        artifacts.append(Artifact(key=f"{fmt}-{row.get('precision')}", format=fmt, precision=str(row.get("precision")),
                                  path=file, passed=ok, runtime_installed=_installed(RUNTIME_MODULES[fmt])))
    recipe = doc.get("recipe") if isinstance(doc.get("recipe"), dict) else {}
    return ExportFolder(folder=folder, task=task, labels=labels, input_names=tuple(inputs),
                        output_name=str(output.get("name", "")), max_length=max_length,
                        artifacts=tuple(artifacts), recipe_name=str(recipe.get("name", folder.name)))
