"""Read an export folder written by ``edgekit export``: its ``edgekit.json`` manifest, labels,
tokenizer files and artifacts. The app needs nothing else from edgekit.

The manifest (version 3) says the task, the inputs (int32 [batch, sequence] by name), the
named outputs (``TASK_OUTPUTS``: ``logits`` [batch, labels], ``embedding`` [batch, hidden],
``logits`` [batch, sequence, tags], or ``start_logits`` and ``end_logits`` [batch, sequence]),
``max_length`` (tokens, specials included), the labels (token classification: IOB2 tags),
question answering's ``windows`` (``WINDOW_SETTINGS``: the stride, question cap, answer length
and n-best edgekit windowed and decoded with; a QA manifest without them is refused), the
tokenizer files, per artifact its files, format, precision, status and whether it passed the
export's evaluation gate, and the size and sha256 of every file (``digests``): the app checks
the files it loads against them, so an artifact or tokenizer changed after the export is
refused, not run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "edgekit.json"
MANIFEST_VERSION = 3  # the edgekit_manifest this app reads
CHUNK = 1 << 20  # bytes hashed at a time
# Runtime module per artifact format, in the order the app prefers them (LiteRT first: it is
# what Raspberry Pi and Android apps run).
RUNTIME_MODULES = {"tflite": "ai_edge_litert", "onnx": "onnxruntime", "openvino": "openvino"}
# The outputs each task's artifacts return (the manifest's "outputs" names) and the command that runs them.
TASK_OUTPUTS = {"text-classification": ("logits",), "feature-extraction": ("embedding",),
                "token-classification": ("logits",), "question-answering": ("start_logits", "end_logits")}
TASK_COMMANDS = {"text-classification": "classify", "feature-extraction": "embed or nearest",
                 "token-classification": "ner", "question-answering": "answer"}
# A question-answering manifest's "windows", each with its least value: context tokens shared by
# consecutive windows, question tokens kept, tokens of an answer, spans tried per window.
WINDOW_SETTINGS = {"doc_stride": 0, "max_query_length": 1, "max_answer_length": 1, "n_best": 1}


class AppError(Exception):
    """A problem the user can fix (bad folder, unknown artifact, missing runtime): one line."""


SOURCE_LOCATION = re.compile(r"(Exception from|Check '.*' failed at) \S+:\d+:")  # OpenVINO's message lines


def error_line(err: BaseException) -> str:
    """The first line of a runtime's error that says what went wrong (OpenVINO puts source
    locations first, e.g. ``Exception from src/inference/src/cpp/core.cpp:84:``)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return next((line for line in lines if not SOURCE_LOCATION.fullmatch(line)), lines[0] if lines else
                type(err).__name__)


@dataclass(frozen=True)
class Artifact:
    key: str  # "<format>-<precision>", the file name without its suffix
    format: str
    precision: str
    path: Path
    files: tuple[str, ...]  # names in the export folder that make up the artifact (OpenVINO: .xml and .bin)
    passed: bool  # exported, evaluated and within the export's evaluation gate
    runtime_installed: bool


@dataclass(frozen=True)
class ExportFolder:
    folder: Path
    task: str
    labels: tuple[str, ...]  # label per logit (token classification: IOB2 tags); encoders, QA: ()
    input_names: tuple[str, ...]
    max_length: int
    artifacts: tuple[Artifact, ...]
    recipe_name: str
    shared_files: tuple[str, ...]  # what every artifact needs: the tokenizer files, labels_file if any
    digests: dict  # file name -> {"bytes": int, "sha256": hex}, as written by the export
    windows: dict  # question answering: WINDOW_SETTINGS' keys -> int, as written by the export; others: {}

    def require(self, task: str, what: str) -> None:
        """AppError unless this is a ``task`` export: ``what`` it cannot do, and the command that fits."""
        if self.task != task:
            raise AppError(f"{self.folder}: a {self.task} export {what} (use {TASK_COMMANDS[self.task]})")

    def verify(self, artifact: Artifact) -> None:
        """Refuse (AppError) any file ``artifact`` and the tokenizer need that is missing or differs
        from the manifest's ``digests``: size first, then sha256 streamed once."""
        fix = "re-export, or pass --no-verify"
        for name in (*artifact.files, *self.shared_files):
            path, entry = self.folder / name, self.digests.get(name)
            if not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int) \
                    or not isinstance(entry.get("sha256"), str):
                raise AppError(f"{path}: has no digest in {MANIFEST} (a manifest edited by hand? {fix})")
            if not path.is_file():
                raise AppError(f"{path}: missing (listed in {MANIFEST}; {fix})")
            if path.stat().st_size != entry["bytes"] or _sha256(path) != entry["sha256"]:
                raise AppError(f"{path}: sha256 does not match {MANIFEST} (changed after export; {fix})")

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


def _field(doc: dict, key: str, kind: type, where: Path, row: str = ""):
    """``doc[key]`` of type ``kind``; ``row`` (e.g. ``artifacts[0].``) prefixes the key in messages."""
    if key not in doc:
        raise AppError(f"{where}: {row}{key}: missing (is this a folder written by `edgekit export`?)")
    if not isinstance(doc[key], kind):
        raise AppError(f"{where}: {row}{key}: expected {kind.__name__}, got {type(doc[key]).__name__}")
    return doc[key]


def _file_name(name, key: str, where: Path) -> str:
    """``name`` when it names a file inside the export folder (not absolute, no ``..``)."""
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        raise AppError(f"{where}: {key}: expected a file name inside the export folder, got {name!r}")
    return name


def _names(doc: dict, key: str, where: Path, row: str = "") -> list[str]:
    return [_file_name(name, row + key, where) for name in _field(doc, key, list, where, row)]


def _labels(labels: list, task: str, where: Path) -> tuple[str, ...]:
    """The manifest's labels, checked for what ``task`` needs: names for a classifier, IOB2 tags
    (``O``, ``B-TYPE``, ``I-TYPE``) for token classification."""
    if not all(isinstance(name, str) and name for name in labels):
        raise AppError(f"{where}: labels: expected non-empty strings, got {labels!r:.80}")
    if task in ("text-classification", "token-classification") and not labels:
        raise AppError(f"{where}: labels: a {task} export needs its labels")
    if task == "token-classification":
        bad = next((t for t in labels if t != "O" and not re.fullmatch(r"[BI]-.+", t)), None)
        if bad is not None:
            raise AppError(f"{where}: labels: expected IOB2 tags (O, B-TYPE, I-TYPE), got {bad!r}")
    return tuple(labels)


def _windows(doc: dict, task: str, where: Path) -> dict:
    """A question-answering manifest's ``windows``, checked ({} for the other tasks)."""
    if task != "question-answering":
        return {}
    if "windows" not in doc:
        raise AppError(f"{where}: windows: missing (a question-answering export records the "
                       f"{', '.join(WINDOW_SETTINGS)} it was evaluated with; re-export the folder)")
    windows = _field(doc, "windows", dict, where)
    for key, least in WINDOW_SETTINGS.items():
        value = windows.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise AppError(f"{where}: windows.{key}: expected an int >= {least}, got {value!r}")
    return {key: windows[key] for key in WINDOW_SETTINGS}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
    except OSError as err:
        raise AppError(f"{path}: cannot read it ({err.strerror or err})") from None
    if not isinstance(doc, dict):
        raise AppError(f"{path}: expected a JSON object")
    version = _field(doc, "edgekit_manifest", int, path)
    if version != MANIFEST_VERSION:
        age, fix = ("an older", "re-export the folder") if version < MANIFEST_VERSION else \
            ("a newer", "use the demo_app of the edgekit that wrote it")
        raise AppError(f"{path}: edgekit_manifest {version} was written by {age} edgekit "
                       f"(this app reads {MANIFEST_VERSION}); {fix}")
    task = _field(doc, "task", str, path)
    if task not in TASK_OUTPUTS:
        raise AppError(f"{path}: task: expected one of {', '.join(TASK_OUTPUTS)}, got {task!r}")
    labels = _labels(_field(doc, "labels", list, path), task, path)
    inputs = _field(doc, "inputs", list, path)
    if not all(isinstance(i, dict) and isinstance(i.get("name"), str) for i in inputs):
        raise AppError(f"{path}: inputs: expected objects with a name, e.g. {{\"name\": \"input_ids\"}}")
    outputs = _field(doc, "outputs", list, path)
    names = tuple(o.get("name") if isinstance(o, dict) else None for o in outputs)
    if not set(TASK_OUTPUTS[task]) <= set(names):
        raise AppError(f"{path}: outputs: expected objects named {', '.join(TASK_OUTPUTS[task])} for a {task} "
                       f"export, e.g. {{\"name\": \"{TASK_OUTPUTS[task][0]}\"}}")
    max_length = _field(doc, "max_length", int, path)
    if max_length < 2:  # the tokenizer would truncate to nothing, or fail on a negative length
        raise AppError(f"{path}: max_length: expected a token count >= 2 ([CLS] and [SEP]), got {max_length}")
    windows = _windows(doc, task, path)
    shared = _names(doc, "tokenizer", path)
    if "tokenizer.json" not in shared and "vocab.txt" not in shared:
        raise AppError(f"{path}: tokenizer: lists no tokenizer.json or vocab.txt (the export's tokenizer files)")
    if "labels_file" in doc:
        shared.append(_file_name(doc["labels_file"], "labels_file", path))
    read = ["tokenizer.json"] if (folder / "tokenizer.json").is_file() else \
        [name for name in ("vocab.txt", "tokenizer_config.json") if (folder / name).is_file()]
    shared += [name for name in read if name not in shared]  # what TextEncoder reads is verified, listed or not
    digests = _field(doc, "digests", dict, path)
    artifacts = []
    for i, row in enumerate(_field(doc, "artifacts", list, path)):
        if not isinstance(row, dict):
            raise AppError(f"{path}: artifacts[{i}]: expected an object, got {type(row).__name__}")
        fmt = row.get("format")
        if fmt not in RUNTIME_MODULES or not isinstance(row.get("path"), str) or not row["path"]:
            continue
        files = _names(row, "files", path, f"artifacts[{i}].")
        name = _file_name(row["path"], f"artifacts[{i}].path", path)
        unlisted = [n for n in (name, *([str(Path(name).with_suffix(".bin"))] if fmt == "openvino" else ()))
                    if n not in files]
        if row.get("status") == "ok" and unlisted:  # verify() checks the files, the runtime loads the path
            raise AppError(f"{path}: artifacts[{i}].files: expected to list {', '.join(unlisted)} (the files that run)")
        file = folder / name
        ok = row.get("status") == "ok" and not row.get("gate") and file.is_file()
        artifacts.append(Artifact(key=f"{fmt}-{row.get('precision')}", format=fmt, precision=str(row.get("precision")),
                                  path=file, files=tuple(files), passed=ok,
                                  runtime_installed=_installed(RUNTIME_MODULES[fmt])))
    recipe = doc.get("recipe") if isinstance(doc.get("recipe"), dict) else {}
    return ExportFolder(folder=folder, task=task, labels=labels, input_names=tuple(i["name"] for i in inputs),
                        max_length=max_length,
                        artifacts=tuple(artifacts), recipe_name=str(recipe.get("name", folder.name)),
                        shared_files=tuple(shared), digests=digests, windows=windows)
