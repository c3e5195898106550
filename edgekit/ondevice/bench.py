#!/usr/bin/env python3
"""edgekit's on-device benchmark: one file, numpy + one runtime, Python >= 3.9.

Copy it (``edgekit bench-script --out bench.py``) with an edgekit export folder to the device:

    python3 bench.py OUT/tflite-int8-full.tflite --seq-len natural --threads 4
    python3 bench.py OUT --seq-len 128 --delegate edgetpu --watts 2 --power-source "Coral datasheet"

Runtimes: ai_edge_litert or tflite_runtime (.tflite, optional Edge TPU delegate), onnxruntime
(.onnx), openvino (.xml). It never imports TensorFlow or edgekit. Before loading anything it
checks the files it will read (artifact, tokenizer, labels.txt) against the sizes and sha256 in
``edgekit.json`` (``--no-verify`` skips that, and the JSON says so). The inputs are the task's
(the manifest's ``task``): texts, or for question answering (question, context) pairs, the
context's token type 1 (``--texts FILE`` of ``question<TAB>context`` lines); by default the
export's evaluation file (a tsv column, a CoNLL file's sentences, a SQuAD file's questions).
They are tokenized with the ``tokenizers`` package when installed, else with the built-in
``WordPiece`` (BERT exports); each result says which (``inputs.tokenizer`` / ``inputs.source``)
and the names and shapes of the outputs the artifact returned (the manifest's ``outputs``,
checked on the first call). ``edgekit bench`` imports
this module for its manifest reader, sampler, inputs and JSON, so host and device results share one schema
(``SCHEMA``; ``validate``) and ``edgekit bench --compare A.json B.json`` can line them up.
Latency: batch 1, ``time.perf_counter_ns``, milliseconds; energy = p50 ms x nominal watts (mJ),
an estimate; peak RSS of the process in MB (VmHWM, reset before loading the artifact when Linux
allows it) and the RSS just before the load, so peak - before is what the artifact added.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import itertools
import json
import math
import os
import platform
import re
import sys
import time
import unicodedata
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Callable

import numpy as np

SCHEMA_VERSION = 3  # 2: bytes of the file run, verified, export_metrics, inputs.tokenizer; 3: task, outputs, pairs
MANIFEST = "edgekit.json"
MANIFEST_VERSION = 3  # edgekit.json's "edgekit_manifest": the one version this script reads (3: named outputs)
TASKS = ("text-classification", "feature-extraction", "token-classification", "question-answering")
PAIRED = ("question-answering",)  # tasks whose inputs are (question, context) pairs, token types 0 then 1
TEXTS_FILE = "english-eval.tsv"  # written next to this script by `edgekit bench-script`
EDGETPU_LIBS = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
RUNTIME_PACKAGES = ("ai-edge-litert", "tflite-runtime", "onnxruntime", "openvino", "numpy", "tokenizers")
MAX_TEXTS = 100  # natural length cycles through at most this many texts


class BenchError(Exception):
    """A user-facing problem (missing file, absent device, bad option): one line, exit 1."""


# -- the sampler ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LatencyStats:
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float

    @classmethod
    def from_samples(cls, samples_ms) -> "LatencyStats":
        s = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(s, [50, 90, 99])
        return cls(len(s), float(p50), float(p90), float(p99), float(s.mean()), float(s.min()))

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def measure(fn: Callable[[], object], *, warmup: int = 3, min_runs: int = 20, min_seconds: float = 1.0,
            max_runs: int = 100_000) -> LatencyStats:
    """Call ``fn`` ``warmup`` times untimed, then time it until ``min_runs`` and ``min_seconds``."""
    for _ in range(warmup):
        fn()
    samples = []
    deadline = time.perf_counter_ns() + int(min_seconds * 1e9)
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter_ns() < deadline):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return LatencyStats.from_samples(samples)


# -- memory and machine facts --------------------------------------------------------------------

def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0) so the next reading covers what follows."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mb(key: str) -> float | None:
    """A ``/proc/self/status`` figure (VmRSS: now, VmHWM: peak) in MB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


def peak_rss_mb() -> float | None:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20) if sys.platform == "darwin" else peak / 1024, 1)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        for key in ("model name", "Model", "Hardware"):
            value = next((v.strip() for k, v in fields.items() if k.strip() == key), None)
            if value:
                return value
    except OSError:
        pass
    return platform.processor() or platform.machine()


def package_versions(names) -> dict:
    """{distribution name: installed version or None}."""
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def device_facts() -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count() or 0, "os": platform.platform(),
            "python": platform.python_version(), "machine": platform.machine(),
            "runtimes": package_versions(RUNTIME_PACKAGES)}


# -- the export folder ---------------------------------------------------------------------------

MANIFEST_SCHEMA = {"task": TASKS, "inputs": list, "outputs": list, "max_length": int, "tokenizer": list,
                   "digests": dict, "artifacts": list}
ROW_SCHEMAS = {"inputs": {"name": str}, "outputs": {"name": str, "dtype": ("float32",), "shape": list},
               "artifacts": {"path": str, "format": str, "precision": str, "status": str, "files": list}}
DIGEST_SCHEMA = {"bytes": int, "sha256": str}
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")  # what this script can feed
BATCH, SEQUENCE = "batch", "sequence"  # the free axes of a manifest shape
FORMAT_SUFFIXES = {"tflite": ".tflite", "onnx": ".onnx", "openvino": ".xml"}


def manifest_problems(doc) -> list:
    """What keeps ``doc`` from being a manifest this script reads ([] = none), e.g. ``artifacts[0].path: missing``."""
    if not isinstance(doc, dict):
        return [f"expected a JSON object, got {_json_kind(type(doc))}"]
    if "edgekit_manifest" not in doc:
        return ["no edgekit_manifest key (not a manifest written by `edgekit export`)"]
    version = doc["edgekit_manifest"]
    if version != MANIFEST_VERSION:
        age = "an older" if isinstance(version, int) and version < MANIFEST_VERSION else "another"
        return [f"edgekit_manifest {version!r} was written by {age} edgekit (this one reads {MANIFEST_VERSION}); "
                "re-export the folder"]
    problems = [p.lstrip(".") for p in schema_problems(doc, MANIFEST_SCHEMA, "")]
    if problems:
        return problems
    rows = [(f"{key}[{i}]", row, rule) for key, rule in ROW_SCHEMAS.items() for i, row in enumerate(doc[key])]
    rows += [(f"digests[{name!r}]", digest, DIGEST_SCHEMA) for name, digest in doc["digests"].items()]
    return [p for where, row, rule in rows for p in schema_problems(row, rule, where)] or _content_problems(doc)


def _inside(name) -> bool:
    """``name`` is a plain file name: the export writes every file flat in its folder (a path
    with a folder, ``..`` or absolute would load, or verify, a file elsewhere)."""
    return isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name


def _content_problems(doc: dict) -> list:
    """What the types cannot say: every file name is inside the folder, an artifact's ``files``
    hold what runs (so what is verified is what is loaded), its format matches its suffix, each
    artifact is listed once, digests are sizes and sha256 hex (else a hand edit reads as a changed
    file), the inputs are ones this script feeds, the outputs are named once and shaped as
    ``_output_problems`` says, and ``max_length`` can hold the specials."""
    names = [("tokenizer", n) for n in doc["tokenizer"]] + [("digests", n) for n in doc["digests"]]
    names += [("labels_file", doc["labels_file"])] if "labels_file" in doc else []
    problems = []
    for i, row in enumerate(doc["artifacts"]):
        where, suffix = f"artifacts[{i}]", FORMAT_SUFFIXES.get(row["format"])
        names += [(f"{where}.path", row["path"])] + [(f"{where}.files", n) for n in row["files"]]
        if suffix is None:
            problems.append(f"{where}.format: expected one of {', '.join(FORMAT_SUFFIXES)}, got {row['format']!r}")
        elif not row["path"].endswith(suffix):
            problems.append(f"{where}.path: expected a {suffix} file for format {row['format']}, got {row['path']!r}")
        runs = [row["path"]] + ([row["path"][:-len(suffix)] + ".bin"] if suffix == ".xml" else [])
        unlisted = [n for n in runs if n not in row["files"]]
        if row["status"] == "ok" and unlisted:
            problems.append(f"{where}.files: expected to list {', '.join(unlisted)} (the files that run)")
    problems = [f"{key}: expected a file name in the export folder (no path), got {name!r}"
                for key, name in names if not _inside(name)] + problems
    problems += [f"digests[{name!r}]: expected bytes >= 0 and sha256 as 64 lowercase hex digits, got {digest['bytes']} "
                 f"and {digest['sha256']!r}" for name, digest in doc["digests"].items()
                 if digest["bytes"] < 0 or not re.fullmatch("[0-9a-f]{64}", digest["sha256"])]
    paths = [row["path"] for row in doc["artifacts"]]
    problems += [f"artifacts[{i}].path: {path!r} is listed twice" for i, path in enumerate(paths) if path in paths[:i]]
    inputs = [i["name"] for i in doc["inputs"]]
    if "input_ids" not in inputs or not set(inputs) <= set(INPUT_NAMES):
        problems.append(f"inputs: expected input_ids and optionally attention_mask, token_type_ids; got {inputs}")
    problems += _output_problems(doc["outputs"])
    low = 3 if doc["task"] in PAIRED else 2  # [CLS] and [SEP], and a pair's second [SEP]
    if doc["max_length"] < low:
        problems.append(f"max_length: expected a token count >= {low}, got {doc['max_length']}")
    return problems


def _output_problems(outputs: list) -> list:
    """The ``outputs`` list: at least one, names distinct, each shape ``["batch"]``, then
    ``"sequence"`` for a per-token output, then the size of a last axis (e.g. ``["batch", 384]``,
    ``["batch", "sequence", 9]``, ``["batch", "sequence"]``)."""
    if not outputs:
        return ["outputs: expected at least one output, got []"]
    problems, names = [], [o["name"] for o in outputs]
    for i, o in enumerate(outputs):
        shape = o["shape"]
        rest = shape[2:] if shape[1:2] == [SEQUENCE] else shape[1:]
        if shape[:1] != [BATCH] or len(rest) > 1 or not _sizes(rest, 1):
            problems.append(f"outputs[{i}].shape: expected [\"{BATCH}\"], then \"{SEQUENCE}\" for a per-token "
                            f"output, then an axis size >= 1; got {shape}")
        if o["name"] in names[:i]:
            problems.append(f"outputs[{i}].name: {o['name']!r} is listed twice")
    return problems


def read_manifest(folder: Path) -> dict:
    """``folder``'s edgekit.json, checked: one line naming the file when it is absent, not JSON, of
    another manifest version or missing what this script reads."""
    path = Path(folder) / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{folder}: no {MANIFEST} (expected an export folder written by `edgekit export`, "
                         "or an artifact inside one)") from None
    except OSError as err:
        raise BenchError(f"{path}: cannot read it ({err.strerror or err})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        where = f"{err.msg} at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else "not UTF-8"
        raise BenchError(f"{path}: invalid JSON ({where})") from None
    problems = manifest_problems(doc)
    if problems:
        raise BenchError(f"{path}: {problems[0]}")
    return doc


def check_artifact_name(path: Path) -> None:
    """Refuse a file that is not an artifact by its suffix, naming it (before any manifest is read)."""
    if Path(path).suffix not in RUNTIME_MODULES:
        raise BenchError(f"{path}: not an artifact (expected a .tflite, .onnx or .xml (OpenVINO IR) file, "
                         "or an export folder)")


def artifact_entry(manifest: dict, path: Path) -> dict:
    """The manifest row of ``path`` (an Edge TPU build ``X_edgetpu.tflite`` maps to ``X.tflite``)."""
    name = path.name.replace("_edgetpu.tflite", ".tflite")
    for entry in manifest["artifacts"]:
        if entry["path"] == name:
            return entry
    known = ", ".join(a["path"] for a in manifest["artifacts"])
    raise BenchError(f"{path}: not listed in {MANIFEST} (artifacts: {known})")


def file_digest(path: Path) -> dict:
    """``{"bytes", "sha256"}`` of a file, read once in 1 MiB blocks (the manifest's ``digests`` entry)."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
            size += len(block)
    return {"bytes": size, "sha256": h.hexdigest()}


def tokenizer_files(folder: Path) -> list:
    """The names ``load_tokenizer`` reads in ``folder``: tokenizer.json when there is one, else
    vocab.txt and tokenizer_config.json."""
    folder = Path(folder)
    if (folder / "tokenizer.json").is_file():
        return ["tokenizer.json"]
    return [name for name in ("vocab.txt", "tokenizer_config.json") if (folder / name).is_file()]


def loaded_files(folder: Path, manifest: dict, runs: list) -> list:
    """Names of what a run loads, in the order read: the tokenizer files (the manifest's and any
    other the tokenizer would read), labels.txt and the files of each ``(entry, path)`` run whose
    path is the manifest's own (an Edge TPU build made on the device from it is not in the manifest)."""
    names = [*manifest["tokenizer"], *tokenizer_files(folder)]
    names += [manifest["labels_file"]] if manifest.get("labels_file") else []
    for entry, path in runs:
        if entry["status"] == "ok" and Path(path).name == entry["path"]:
            names += entry["files"]
    return list(dict.fromkeys(names))


def verify_files(folder: Path, manifest: dict, names) -> None:
    """Each of ``names`` is present with the size and sha256 ``edgekit.json`` recorded at export,
    else one line naming the first that is not."""
    fix = "re-export, or pass --no-verify"
    for name in names:
        path, expected = Path(folder) / name, manifest["digests"].get(name)
        if expected is None:
            raise BenchError(f"{path}: has no digest in {MANIFEST} (added after export, or a manifest edited by hand? "
                             f"{fix})")
        if not path.is_file():
            raise BenchError(f"{path}: missing (listed in {MANIFEST}; {fix})")
        if path.stat().st_size != expected["bytes"] or file_digest(path)["sha256"] != expected["sha256"]:
            raise BenchError(f"{path}: sha256 does not match {MANIFEST} (changed after export; {fix})")


def artifact_file(folder: Path, entry: dict, edgetpu: bool) -> Path:
    """The file to run for a manifest row: its Edge TPU build (``X_edgetpu.tflite``, written by
    edgetpu_compiler next to ``X.tflite``) when running on an Edge TPU and one exists."""
    path = Path(folder) / entry["path"]
    compiled = path.with_name(f"{path.stem}_edgetpu.tflite")
    return compiled if edgetpu and path.suffix == ".tflite" and compiled.is_file() else path


def _read_text(path: Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise BenchError(f"{path}: not UTF-8 text (byte 0x{err.object[err.start]:02x} at offset {err.start})") from None
    except OSError as err:
        raise BenchError(f"{path}: cannot read texts ({err.strerror or err})") from None


def read_texts(path: Path, column: str = "sentence", pair_column=None) -> list:
    """Texts from a .tsv (the named column, or the first) or a one-text-per-line file; with a
    ``pair_column`` (a sentence-pair classifier's), (text, pair) tuples from a .tsv with both."""
    lines = [line for line in _read_text(path).splitlines() if line.strip()]
    head = lines[0].split("\t") if lines else []
    index = head.index(column) if column in head else 0
    rows = [row.split("\t") for row in (lines[1:] if column in head else lines)]
    if pair_column is not None:
        if pair_column not in head:
            raise BenchError(f"{path}: no {pair_column} column (the export's text_pair_column)")
        j = head.index(pair_column)
        texts = [(f[index], f[j]) for f in rows if len(f) > max(index, j)][:MAX_TEXTS]
    else:
        texts = [f[index] for f in rows if len(f) > index][:MAX_TEXTS]
    if not texts:
        raise BenchError(f"{path}: no texts")
    return texts


PAIR_COLUMNS = ["question", "context"]  # a --texts file's optional header line for pairs


def read_pairs(path: Path) -> list:
    """(question, context) pairs from ``question<TAB>context`` lines (the first may be the header
    ``question<TAB>context``); every line is checked, the first ``MAX_TEXTS`` are kept."""
    lines = [(n, line) for n, line in enumerate(_read_text(path).splitlines(), 1) if line.strip()]
    if lines and lines[0][1].split("\t") == PAIR_COLUMNS:
        lines = lines[1:]
    pairs = []
    for number, line in lines:
        fields = line.split("\t")
        if len(fields) != 2:
            raise BenchError(f"{path}:{number}: {len(fields)} tab-separated column{'s' * (len(fields) > 1)} "
                             "(expected question<TAB>context)")
        empty = [name for name, field in zip(PAIR_COLUMNS, fields) if not field.strip()]
        if empty:
            raise BenchError(f"{path}:{number}: empty {empty[0]} (expected question<TAB>context)")
        pairs.append((fields[0].strip(), fields[1]))
    if not pairs:
        raise BenchError(f"{path}: no question<TAB>context lines")
    return pairs[:MAX_TEXTS]


def read_conll_texts(path: Path) -> list:
    """The sentences of a CoNLL file (``token ... TAG`` lines, a blank line between sentences,
    ``-DOCSTART-`` skipped), each its tokens joined by spaces."""
    sentences, words = [], []
    for line in [*_read_text(path).splitlines(), ""]:
        fields = line.split()
        if fields and fields[0] != "-DOCSTART-":
            words.append(fields[0])
        elif words:
            sentences.append(" ".join(words))
            words = []
    if not sentences:
        raise BenchError(f"{path}: no sentences")
    return sentences[:MAX_TEXTS]


def read_squad_pairs(path: Path, articles=None) -> list:
    """(question, context) of the questions of a SQuAD v1.1 JSON file, of the ``articles``
    [first, stop) when given, in file order."""
    try:
        data = json.loads(_read_text(path))["data"]
        chosen = data if articles is None else data[articles[0]:articles[1]]
        pairs = [(qa["question"].strip(), paragraph["context"]) for article in chosen
                 for paragraph in article["paragraphs"] for qa in paragraph["qas"]]
        if not all(isinstance(context, str) and context.strip() for _, context in pairs):
            raise TypeError("a context is not text")
    except json.JSONDecodeError as err:
        raise BenchError(f"{path}: invalid JSON ({err.msg} at line {err.lineno})") from None
    except (KeyError, TypeError, AttributeError):
        raise BenchError(f"{path}: not SQuAD v1.1 JSON (expected data[].paragraphs[] with a context and "
                         "qas[].question)") from None
    if not pairs:
        raise BenchError(f"{path}: no questions")
    return pairs[:MAX_TEXTS]


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _articles(value):
    """A recipe's ``<split>_articles`` [first, stop) as a pair of ints, else None (every article)."""
    ints = isinstance(value, list) and len(value) == 2 and all(type(v) is int for v in value)
    return tuple(value) if ints else None


def _pair_column(manifest: dict):
    """A sentence-pair classifier's second text column (``data.text_pair_column``), else None."""
    column = _object(_object(manifest.get("recipe")).get("data")).get("text_pair_column")
    return column if manifest.get("task") == "text-classification" and isinstance(column, str) else None


def paired(manifest: dict) -> bool:
    """Whether the export reads text pairs (question/context, or a pair classifier's two texts)."""
    return manifest.get("task") in PAIRED or _pair_column(manifest) is not None


def natural_texts(manifest: dict, folder: Path, explicit: Path | None = None,
                  fallbacks: tuple = ()) -> tuple:
    """(texts, source): ``explicit``, else the export's evaluation texts (a tsv column, a CoNLL
    file's sentences, a SQuAD file's questions), else ``fallbacks``. For a task in ``PAIRED`` the
    texts are (question, context) pairs, from ``explicit`` or the SQuAD file only; for a pair
    classifier (text, pair) tuples from ``explicit`` (first<TAB>second lines) or its tsv."""
    pairs = manifest.get("task") in PAIRED
    pair_column = _pair_column(manifest)
    if explicit is not None:
        return (read_pairs(explicit) if pairs or pair_column else read_texts(explicit)), Path(explicit).name
    data = _object(_object(manifest.get("recipe")).get("data"))  # keys no reader needs: a hand edit may break them
    split = str(_object(manifest.get("evaluation")).get("split", "test"))
    file, kind = data.get(split), data.get("format")
    column = data.get("text_column") if isinstance(data.get("text_column"), str) else "sentence"
    readers = {"tsv": lambda p: read_texts(p, column, pair_column), "conll": read_conll_texts,
               "squad": lambda p: read_squad_pairs(p, _articles(data.get(f"{split}_articles")))}
    own = Path(file) if isinstance(file, str) and file and kind in readers and (kind == "squad") == pairs else None
    if own is not None and own.is_file():
        return readers[kind](own), own.name
    if pairs or pair_column is not None:
        kind = "question/context" if pairs else "text"
        raise BenchError(f"{manifest['task']} needs {kind} pairs and the export's evaluation file "
                         f"({file if isinstance(file, str) else 'none'}) is not here; pass --texts FILE of "
                         "question<TAB>context lines (the on-device script)")
    for path in [Path(folder) / TEXTS_FILE, *fallbacks]:
        if path.is_file():
            return read_texts(path, column), path.name
    raise BenchError("--seq-len natural needs texts: the export's evaluation file is not here; pass --texts FILE "
                     f"(one text per line or a .tsv), e.g. the {TEXTS_FILE} written by `edgekit bench-script`")


CJK = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
       (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))  # the ideographs BertNormalizer spaces out


def _tokenizer_settings(folder: Path) -> dict:
    path = Path(folder) / "tokenizer_config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BenchError(f"{path}: invalid JSON") from None


class WordPiece:
    """BERT's tokenizer in plain Python, so that a device without the ``tokenizers`` package runs
    the export's defaults: ``BertNormalizer`` (clean text, space out CJK ideographs, strip
    accents, lower-case), ``BertPreTokenizer`` (whitespace and punctuation), greedy
    longest-match WordPiece, ``[CLS] text [SEP]`` and, for a pair, ``[CLS] a [SEP] b [SEP]`` (token
    types 0, then 1 from b on) truncated as ``tokenizers`` does by default (longest first). Tests
    hold it to ``tokenizers``' ids and token types."""

    def __init__(self, name: str, vocab: dict, specials: dict, lowercase: bool = True, strip_accents=None,
                 unk: str = "[UNK]", prefix: str = "##", max_chars: int = 100):
        self.name = name  # says in results which files it read, e.g. "built-in WordPiece (vocab.txt)"
        self.vocab, self.lowercase, self.prefix, self.max_chars = vocab, lowercase, prefix, max_chars
        self.strip_accents = lowercase if strip_accents is None else strip_accents
        self.unk, self.cls, self.sep = vocab[unk], vocab[specials["cls"]], vocab[specials["sep"]]
        names = sorted((t for t in specials["added"] if t in vocab), key=len, reverse=True)
        self._added = re.compile("(" + "|".join(map(re.escape, names)) + ")") if names else None

    @classmethod
    def from_folder(cls, folder: Path):
        """From ``tokenizer.json`` when it is a BERT WordPiece one, else ``vocab.txt`` with
        ``tokenizer_config.json``'s ``do_lower_case``; None when it can do neither."""
        folder = Path(folder)
        if (folder / "tokenizer.json").is_file():
            return cls._from_json(folder / "tokenizer.json")
        if not (folder / "vocab.txt").is_file():
            return None
        tokens = (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()
        vocab = {t: i for i, t in reversed(list(enumerate(tokens)))}
        settings = _tokenizer_settings(folder)
        specials = {"cls": "[CLS]", "sep": "[SEP]", "added": ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
        if not {"[UNK]", "[CLS]", "[SEP]"} <= set(vocab):
            return None
        return cls("built-in WordPiece (vocab.txt)", vocab, specials, bool(settings.get("do_lower_case", True)),
                   settings.get("strip_accents"))

    @classmethod
    def _from_json(cls, path: Path):
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BenchError(f"{path}: invalid JSON") from None
        model, norm = doc.get("model") or {}, doc.get("normalizer") or {}
        post = doc.get("post_processor") or {}
        if post.get("type") == "BertProcessing":
            specials = {"cls": post["cls"][0], "sep": post["sep"][0]}
        elif post.get("type") == "TemplateProcessing":
            single = [next(iter(piece.items())) for piece in post.get("single", [])]
            pair = [(kind, value.get("id"), value.get("type_id")) for kind, value in
                    (next(iter(piece.items())) for piece in post.get("pair", []))]
            if [kind for kind, _ in single] != ["SpecialToken", "Sequence", "SpecialToken"]:
                return None
            specials = {"cls": single[0][1]["id"], "sep": single[2][1]["id"]}
            start, end = ("SpecialToken", specials["cls"]), ("SpecialToken", specials["sep"])
            if pair != [(*start, 0), ("Sequence", "A", 0), (*end, 0), ("Sequence", "B", 1), (*end, 1)]:
                return None
        else:
            return None
        if (model.get("type") != "WordPiece" or norm.get("type") != "BertNormalizer"
                or not norm.get("clean_text", True) or not norm.get("handle_chinese_chars", True)
                or (doc.get("pre_tokenizer") or {}).get("type") != "BertPreTokenizer"
                or not {model.get("unk_token"), specials["cls"], specials["sep"]} <= set(model.get("vocab", {}))):
            return None
        specials["added"] = [t["content"] for t in doc.get("added_tokens", [])]
        return cls("built-in WordPiece (tokenizer.json)", model["vocab"], specials, norm.get("lowercase", True),
                   norm.get("strip_accents"), model["unk_token"], model.get("continuing_subword_prefix", "##"),
                   model.get("max_input_chars_per_word", 100))

    def _normalize(self, text: str) -> str:
        out = []
        for c in text:
            if c in "\x00\ufffd" or (unicodedata.category(c).startswith("C") and c not in "\t\n\r"):
                continue
            if any(lo <= ord(c) <= hi for lo, hi in CJK):
                out.append(f" {c} ")
            else:
                out.append(" " if c.isspace() else c)
        text = "".join(out)
        if self.strip_accents:
            text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
        return text.lower() if self.lowercase else text

    @staticmethod
    def _words(text: str) -> list:
        """Whitespace-separated words with every punctuation character a word of its own."""
        words, word = [], []
        for c in text:
            punct = 33 <= ord(c) <= 47 or 58 <= ord(c) <= 64 or 91 <= ord(c) <= 96 or 123 <= ord(c) <= 126 \
                or unicodedata.category(c).startswith("P")
            if c.isspace() or punct:
                words += ["".join(word)] if word else []
                words += [c] if punct else []
                word = []
            else:
                word.append(c)
        return words + (["".join(word)] if word else [])

    def _pieces(self, word: str) -> list:
        if len(word) > self.max_chars:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else self.prefix + word[start:end]
                if piece in self.vocab:
                    ids.append(self.vocab[piece])
                    start = end
                    break
            else:
                return [self.unk]
        return ids

    def _content(self, text: str) -> list:
        ids = []
        for i, part in enumerate(self._added.split(text) if self._added else [text]):
            if i % 2:  # an added token (e.g. [MASK]) written in the text
                ids.append(self.vocab[part])
            else:
                ids += [t for w in self._words(self._normalize(part)) for t in self._pieces(w)]
        return ids

    def encode(self, text: str, max_length: int, pair: str | None = None) -> tuple:
        """(ids, token type ids) of ``text`` (and ``pair``), specials included, truncated to ``max_length``."""
        first = self._content(text)
        if pair is None:
            ids = [self.cls, *first[:max(max_length - 2, 0)], self.sep]
            return ids, [0] * len(ids)
        second = self._content(pair)
        a, b = longest_first(len(first), len(second), max(max_length - 3, 0))
        return [self.cls, *first[:a], self.sep, *second[:b], self.sep], [0] * (a + 2) + [1] * (b + 1)


def longest_first(a: int, b: int, room: int) -> tuple:
    """Tokens kept of two sequences of ``a`` and ``b`` tokens in ``room``: both when they fit, else
    the shorter whole if the longer still gets as many, else half each (the odd one to the
    longer, to the second when equal); ``tokenizers``' ``TruncationStrategy::LongestFirst``."""
    if a + b <= room:
        return a, b
    short, long = (b, a) if a > b else (a, b)
    keep_short, keep_long = short, max(short, room - short)
    if keep_short + keep_long > room:
        keep_short, keep_long = room // 2, room // 2 + room % 2
    return (min(a, keep_long), min(b, keep_short)) if a > b else (min(a, keep_short), min(b, keep_long))


class LibraryTokenizer:
    """The ``tokenizers`` package on the export's files, as edgekit evaluated the artifacts."""

    def __init__(self, folder: Path):
        from tokenizers import Tokenizer, __version__
        from tokenizers.implementations import BertWordPieceTokenizer

        folder = Path(folder)
        if (folder / "tokenizer.json").is_file():
            self._tok, source = Tokenizer.from_file(str(folder / "tokenizer.json")), "tokenizer.json"
        else:
            settings = _tokenizer_settings(folder)
            lower, strip = bool(settings.get("do_lower_case", True)), settings.get("strip_accents")
            self._tok = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lower,
                                               strip_accents=lower if strip is None else strip)
            source = "vocab.txt"
        self._tok.no_padding()
        self.name = f"tokenizers {__version__} ({source})"

    def encode(self, text: str, max_length: int, pair: str | None = None) -> tuple:
        """(ids, token type ids), as ``WordPiece.encode``."""
        self._tok.enable_truncation(max_length=max_length)
        encoding = self._tok.encode(text, pair)
        return encoding.ids, encoding.type_ids


def load_tokenizer(folder: Path):
    """The export's tokenizer: the ``tokenizers`` package when it is installed, else the built-in
    ``WordPiece``; None when neither applies (no tokenizer files, or a kind only ``tokenizers`` reads)."""
    folder = Path(folder)
    if not (folder / "tokenizer.json").is_file() and not (folder / "vocab.txt").is_file():
        return None
    try:
        return LibraryTokenizer(folder)
    except ImportError:
        return WordPiece.from_folder(folder)


def vocab_size(folder: Path) -> int:
    """From tokenizer.json or vocab.txt, without the tokenizers package."""
    path = Path(folder) / "tokenizer.json"
    if path.is_file():
        return len(json.loads(path.read_text(encoding="utf-8"))["model"]["vocab"])
    path = Path(folder) / "vocab.txt"
    if path.is_file():
        return len(path.read_text(encoding="utf-8").splitlines())
    raise BenchError(f"{folder}: no tokenizer.json or vocab.txt to size synthetic token ids")


def _sample(ids, type_ids, names) -> dict:
    ids = np.asarray(ids, dtype=np.int32)[None, :]
    values = {"input_ids": ids, "attention_mask": np.ones_like(ids),
              "token_type_ids": np.asarray(type_ids, dtype=np.int32).reshape(ids.shape)}
    return {n: values[n] for n in names}


FALLBACK_SEQ_LEN = 128  # natural length without a tokenizer: this many synthetic ids (or max_length)


def _fixed_length(texts: list, tokenizer, seq_len: int) -> tuple:
    """(ids, type ids) of exactly ``seq_len`` tokens: every text joined (for pairs, the first
    question and every context joined), repeated until long enough, then truncated; None when
    64 repeats are still too short."""
    pairs = isinstance(texts[0], tuple)
    joined = " ".join(c for _, c in texts) if pairs else " ".join(texts)
    for repeat in range(1, 65):
        more = " ".join([joined] * repeat)
        ids, type_ids = tokenizer.encode(texts[0][0], seq_len, more) if pairs else tokenizer.encode(more, seq_len)
        if len(ids) >= seq_len:
            return ids, type_ids
    return None


def make_inputs(folder: Path, manifest: dict, seq_len, texts: tuple | None = None, tokenizer=None) -> tuple:
    """(samples, info): batch-1 int32 input dicts with every token real (mask 1) and a summary
    whose ``source`` says what they are.

    ``seq_len`` an int: one input of exactly that many tokens (tokenized text when a tokenizer
    is given, else synthetic ids); ``"natural"``: each text at its own token count, or, without
    a tokenizer, one fixed input of synthetic ids (said so). ``texts`` is ``natural_texts``'s
    (texts, source); (question, context) pairs are encoded as one input, the context's token
    type 1 (``info["pairs"]``)."""
    names = [i["name"] for i in manifest["inputs"]]
    limit, pairs = manifest["max_length"], paired(manifest) and tokenizer is not None
    question = manifest["task"] in PAIRED  # pairs of (question, context), else of two texts
    low = 3 if pairs else 2  # a pair's three specials
    if seq_len != "natural" and not low <= seq_len <= limit:
        raise BenchError(f"--seq-len {seq_len}: expected {low}..{limit} (the export's max_length)")
    mode, why = ("natural" if seq_len == "natural" else "fixed"), ""
    if tokenizer is None:
        if seq_len == "natural":
            seq_len, mode = min(FALLBACK_SEQ_LEN, limit), "fixed"
            why = ", in place of natural length"
        rng = np.random.default_rng(0)
        size = vocab_size(folder)
        samples = [_sample(rng.integers(min(1000, size // 2), size, seq_len), [0] * seq_len, names)]
        source = (f"synthetic ids, {seq_len} tokens{why} (this export's tokenizer needs the tokenizers package: "
                  "pip install tokenizers)")
    elif seq_len == "natural":
        samples = [_sample(*(tokenizer.encode(t[0], limit, t[1]) if pairs else tokenizer.encode(t, limit)), names)
                   for t in texts[0]]
        what = ("question/context pairs" if question else "text pairs") if pairs else "texts"
        source = f"{texts[1]} ({len(samples)} {what}) tokenized by {tokenizer.name}"
    else:
        encoded = _fixed_length(texts[0], tokenizer, seq_len)
        if encoded is None:
            raise BenchError(f"{texts[1]}: too little text for {seq_len} tokens")
        what = "" if not pairs else (" (its first question, every context)" if question
                                     else " (its first text, every second text)")
        samples, source = [_sample(*encoded, names)], (f"{texts[1]}{what} tokenized by {tokenizer.name}, "
                                                      f"first {seq_len} tokens")
    counts = [s[names[0]].shape[1] for s in samples]
    info = {"mode": mode, "seq_len": None if mode == "natural" else seq_len, "samples": len(samples), "batch": 1,
            "tokens_mean": round(float(np.mean(counts)), 2), "tokens_min": min(counts), "tokens_max": max(counts),
            "tokenizer": tokenizer.name if tokenizer is not None else None, "pairs": pairs, "source": source}
    return samples, info


# -- runtimes ------------------------------------------------------------------------------------

def _fit_static(inputs: dict, shape) -> dict:
    """Pad (mask 0) or truncate [1, n] inputs to a fixed [B, S] artifact shape."""
    rows, seq = shape
    return {n: np.pad(v[:, :seq], ((0, rows - v.shape[0]), (0, max(seq - v.shape[1], 0)))) for n, v in inputs.items()}


def output_keys(found: dict, count: int, outputs: list, path: Path) -> dict:
    """{manifest output name: the runtime's key for it}: ``found`` maps the names an artifact's
    ``count`` outputs go by to those keys. By name, or, for an artifact of one output and a
    manifest of one, that output whatever its name; ValueError naming both sides otherwise."""
    wanted = [o["name"] for o in outputs]
    if set(wanted) <= set(found):
        return {n: found[n] for n in wanted}
    if len(wanted) == count == 1 and found:
        return {wanted[0]: next(iter(found.values()))}
    raise ValueError(f"{Path(path).name} has outputs {', '.join(sorted(found)) or 'without names'}; "
                     f"{MANIFEST} names {', '.join(wanted)}")


class Runner:
    """``runner(inputs)``: int32 [1, n] arrays by name -> {manifest output name: float32 array};
    ``runtime`` names it. A static [B, S] artifact gets its inputs padded (mask 0) or cut to S and
    returns the one row, a per-token output (``per_token`` names) for min(n, S) tokens, as
    edgekit's runners do."""

    def __init__(self, call, runtime: str, static_shape=None, per_token=()):
        self._call, self.runtime, self.static_shape, self.per_token = call, runtime, static_shape, set(per_token)

    def __call__(self, inputs: dict) -> dict:
        if self.static_shape is None:
            return self._call(inputs)
        rows, tokens = next(iter(inputs.values())).shape
        out = self._call(_fit_static(inputs, self.static_shape))
        return {k: v[:rows, :tokens] if k in self.per_token else v[:rows] for k, v in out.items()}


def _per_token(outputs: list) -> list:
    return [o["name"] for o in outputs if SEQUENCE in o["shape"]]


def load_delegate(name: str):
    try:
        from ai_edge_litert.interpreter import load_delegate as load
    except ImportError:
        from tflite_runtime.interpreter import load_delegate as load
    import ctypes

    library = EDGETPU_LIBS.get(platform.system(), "libedgetpu.so.1") if name == "edgetpu" else name
    try:
        ctypes.CDLL(library)  # fails cleanly; a failed load_delegate also prints noise from its __del__
        return load(library)
    except (ValueError, OSError) as err:
        raise BenchError(f"delegate {library} could not be loaded ({str(err).strip().splitlines()[0]}): "
                         "is the Edge TPU runtime installed and the device plugged in?") from None


def _load_tflite(path: Path, threads: int, delegate: str | None, outputs: list) -> Runner:
    try:
        from ai_edge_litert.interpreter import Interpreter
        runtime = f"ai-edge-litert {metadata.version('ai-edge-litert')}"
    except ImportError:
        from tflite_runtime.interpreter import Interpreter
        runtime = f"tflite-runtime {metadata.version('tflite-runtime')}"
    delegates = [load_delegate(delegate)] if delegate else None
    interp = Interpreter(model_path=str(path), num_threads=threads, experimental_delegates=delegates)
    inputs = {d["name"].replace("serving_default_", "").split(":")[0]: d for d in interp.get_input_details()}
    details = {d["index"]: d for d in interp.get_output_details()}
    signatures = interp.get_signature_list()
    if len(signatures) == 1:  # the output names are the signature's (tensor names are the graph's own)
        runner = interp.get_signature_runner(next(iter(signatures)))
        found = {name: d["index"] for name, d in runner.get_output_details().items()}
        del runner  # it holds the interpreter, which would refuse allocate_tensors
    else:
        found = {d["name"]: index for index, d in details.items()}
    fetch = {name: details[index] for name, index in output_keys(found, len(details), outputs, path).items()}
    signature = np.asarray(next(iter(inputs.values()))["shape_signature"])
    static = tuple(int(d) for d in signature) if (signature > 0).all() else None
    interp.allocate_tensors()
    current = [None]

    def call(batch: dict) -> dict:
        shape = next(iter(batch.values())).shape
        if static is None and shape != current[0]:
            for name in batch:
                interp.resize_tensor_input(inputs[name]["index"], list(shape))
            interp.allocate_tensors()
            current[0] = shape
        for name, value in batch.items():
            interp.set_tensor(inputs[name]["index"], np.ascontiguousarray(value, dtype=np.int32))
        interp.invoke()
        result = {}
        for name, d in fetch.items():
            value, (scale, zero) = interp.get_tensor(d["index"]), d["quantization"]  # (0.0, 0): a float output
            result[name] = (value.astype(np.float32) - zero) * scale if scale else value.astype(np.float32)
        return result

    return Runner(call, runtime + (f" + {delegate}" if delegate else ""), static, _per_token(outputs))


def _load_onnx(path: Path, threads: int, outputs: list) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    shape = session.get_inputs()[0].shape
    static = tuple(shape) if all(isinstance(d, int) for d in shape) else None
    found = [o.name for o in session.get_outputs()]
    keys = output_keys({n: n for n in found}, len(found), outputs, path)

    def call(feed: dict) -> dict:
        values = session.run(list(keys.values()), feed)
        return {name: np.asarray(v, dtype=np.float32) for name, v in zip(keys, values)}

    return Runner(call, f"onnxruntime {ort.__version__}", static, _per_token(outputs))


SOURCE_LOCATION = re.compile(r"(Exception from|Check '.*' failed at) \S+:\d+:")  # OpenVINO's message lines


def error_line(err: BaseException) -> str:
    """The first line of an error's message that says what went wrong (OpenVINO puts source
    locations first, e.g. ``Exception from src/inference/src/cpp/core.cpp:84:``)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return next((line for line in lines if not SOURCE_LOCATION.fullmatch(line)), lines[0] if lines else "")


def read_openvino(core, path: Path):
    """``core.read_model(path)``; a RuntimeError of one line when the file is not an IR (some other
    .xml, which OpenVINO would hand to every frontend, TensorFlow's writing to stderr), the .bin
    beside it is missing or OpenVINO cannot read the pair."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as err:
        raise RuntimeError(f"{Path(path).name}: cannot read it ({err.strerror or err})") from None
    if b"<net" not in head:
        raise RuntimeError(f"{Path(path).name} is not an OpenVINO IR (no <net> element at its start)")
    weights = Path(path).with_suffix(".bin")
    if not weights.is_file():
        raise RuntimeError(f"{weights.name} is missing (an OpenVINO IR is {Path(path).name} and its weights "
                           f"{weights.name}, side by side)")
    try:
        return core.read_model(str(path))
    except RuntimeError as err:
        raise RuntimeError(error_line(err)) from None


def _load_openvino(path: Path, threads: int, device: str, outputs: list) -> Runner:
    import openvino as ov

    core = ov.Core()
    if device not in core.available_devices:
        raise BenchError(f"OpenVINO device {device} is not present here "
                         f"(available: {', '.join(core.available_devices)})")
    model = read_openvino(core, path)
    config = {"PERFORMANCE_HINT": "LATENCY"}
    if device == "CPU":
        config.update(INFERENCE_NUM_THREADS=threads, INFERENCE_PRECISION_HINT="f32")
    compiled = core.compile_model(model, device, config)
    request = compiled.create_infer_request()
    ports = compiled.outputs
    found = {name: i for i, port in enumerate(ports) for name in (port.get_names() or {f"output {i}"})}
    keys = output_keys(found, len(ports), outputs, path)
    shape = model.inputs[0].get_partial_shape()
    static = tuple(shape.to_shape()) if shape.is_static else None

    def call(feed: dict) -> dict:
        result = request.infer(feed)
        return {name: np.asarray(result[ports[i]], dtype=np.float32) for name, i in keys.items()}

    return Runner(call, f"openvino {ov.get_version().split('-')[0]} ({device})", static, _per_token(outputs))


RUNTIME_MODULES = {".tflite": ("ai_edge_litert.interpreter", "tflite_runtime.interpreter"), ".onnx": ("onnxruntime",),
                   ".xml": ("openvino",)}


def import_runtime(path: Path) -> str:
    """Import the artifact's runtime library now, so that the timed model load excludes it."""
    import importlib

    modules = RUNTIME_MODULES.get(Path(path).suffix, ())
    for i, name in enumerate(modules):
        try:
            importlib.import_module(name)
            return name
        except ImportError:
            if i == len(modules) - 1:
                raise
    raise BenchError(f"{path}: expected a .tflite, .onnx or .xml (OpenVINO IR) artifact")


def load_artifact(path: Path, outputs: list, threads: int, delegate: str | None = None,
                  openvino_device: str = "CPU") -> Runner:
    """The artifact in its runtime, returning the manifest's ``outputs`` (its ``outputs`` rows) by name."""
    suffix = Path(path).suffix
    if suffix == ".tflite":
        return _load_tflite(Path(path), threads, delegate, outputs)
    if suffix == ".onnx":
        return _load_onnx(Path(path), threads, outputs)
    if suffix == ".xml":
        return _load_openvino(Path(path), threads, openvino_device, outputs)
    raise BenchError(f"{path}: expected a .tflite, .onnx or .xml (OpenVINO IR) artifact")


# -- one measurement and its JSON ----------------------------------------------------------------

def seen_outputs(result: dict, outputs: list, tokens: int) -> list:
    """``[{"name", "shape"}]`` of one batch-1 call's ``result`` on ``tokens`` tokens, in the
    manifest's order; ValueError when its names or shapes are not the manifest ``outputs``'."""
    if not isinstance(result, dict) or set(result) != {o["name"] for o in outputs}:
        got = ", ".join(sorted(result)) if isinstance(result, dict) else f"one unnamed {type(result).__name__}"
        raise ValueError(f"the artifact returned {got}; {MANIFEST} lists {', '.join(o['name'] for o in outputs)}")
    seen = []
    for o in outputs:
        expected = [1 if axis == BATCH else tokens if axis == SEQUENCE else axis for axis in o["shape"]]
        shape = [int(d) for d in np.shape(result[o["name"]])]
        if shape != expected:
            raise ValueError(f"output {o['name']} has shape {shape}, expected {expected} ({MANIFEST}: {o['shape']} "
                             f"for {tokens} tokens)")
        seen.append({"name": o["name"], "shape": shape})
    return seen


def benchmark(load: Callable[[], object], samples: list, *, outputs: list, warmup: int = 10, min_runs: int = 50,
              min_seconds: float = 2.0, seq_len: int | None = None) -> tuple:
    """(runner, figures): load time (the runtime library already imported), first call, then
    ``measure`` cycling through ``samples``; peak RSS is the process's from the load on.
    ``outputs``: the manifest's, which the first call must return (``seen_outputs``: recorded).
    ``seq_len``: the fixed length asked for, which an artifact of a shorter static shape would
    cut (ValueError, not figures for fewer tokens than stated)."""
    scoped = reset_peak_rss()
    before = _status_mb("VmRSS")
    start = time.perf_counter_ns()
    runner = load()
    load_ms = (time.perf_counter_ns() - start) / 1e6
    static = runner.static_shape
    if seq_len is not None and static is not None and seq_len > static[1]:
        raise ValueError(f"--seq-len {seq_len} is longer than its static shape {list(static)}: the inputs would "
                         f"be cut to {static[1]} tokens (use --seq-len {static[1]} or less)")
    cycle = itertools.cycle(samples)
    first = next(cycle)
    start = time.perf_counter_ns()
    result = runner(first)
    first_ms = (time.perf_counter_ns() - start) / 1e6
    tokens = next(iter(first.values())).shape[1]
    seen = seen_outputs(result, outputs, tokens if static is None else min(tokens, static[1]))
    stats = measure(lambda: runner(next(cycle)), warmup=warmup, min_runs=min_runs, min_seconds=min_seconds)
    return runner, {"runtime": runner.runtime, "load_ms": round(load_ms, 3), "first_inference_ms": round(first_ms, 3),
                    "latency_ms": stats.to_json(), "throughput_per_s": round(1000.0 / stats.mean_ms, 2),
                    "peak_rss_mb": peak_rss_mb(), "peak_rss_scope": "since load" if scoped else "process",
                    "rss_before_load_mb": before, "outputs": seen}


def show_outputs(seen: list) -> str:
    """A result's ``outputs`` in one line, e.g. ``start_logits [1, 24], end_logits [1, 24]``."""
    return ", ".join(f"{o['name']} {o['shape']}" for o in seen)


def energy(p50_ms: float, watts: float | None, source: str | None) -> dict:
    """Energy per inference estimate: p50 ms x nominal W = mJ (None without a power figure)."""
    return {"mj_per_inference": round(p50_ms * watts, 3) if watts else None, "watts": watts,
            "source": source or "no power figure given", "estimate": True}


def run_bytes(path: Path) -> int:
    """Size on disk of what runs for ``path``: the file, and an OpenVINO IR's .bin with its .xml."""
    files = [Path(path)] + ([Path(path).with_suffix(".bin")] if Path(path).suffix == ".xml" else [])
    return sum(f.stat().st_size for f in files if f.is_file())


def result_document(entry: dict, path: Path, *, task: str, verified: bool, status: str, where: str,
                    profile: str | None, threads: int, accelerator: str | None, measured: dict | None = None,
                    inputs: dict | None = None, power: tuple = (None, None), error: str | None = None) -> dict:
    """One artifact's result (``SCHEMA``); ``entry`` is its manifest row, ``path`` the file run,
    ``task`` the manifest's.

    ``bytes`` is that file's size now; ``export_metrics`` are the export's evaluation figures
    (not measured here), kept only when ``verified`` says the files are the ones evaluated;
    ``outputs`` (measured) are the names and shapes the first call returned."""
    doc = {"edgekit_bench": SCHEMA_VERSION, "status": status, "error": error, "task": task, "artifact": entry["path"],
           "format": entry["format"], "precision": entry["precision"], "shapes": entry.get("shapes", "dynamic"),
           "bytes": run_bytes(path), "verified": verified,
           "export_metrics": (entry.get("metrics") or {}) if verified else {}, "where": where,
           "profile": profile, "threads": threads, "accelerator": accelerator,
           "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "facts": device_facts()}
    if status == "ok":
        doc.update(measured, inputs=inputs, energy=energy(measured["latency_ms"]["p50_ms"], *power))
    return doc


OPT_STR, NUM, OPT_NUM = (str, type(None)), (int, float), (int, float, type(None))
SCHEMA = {
    "edgekit_bench": int, "status": ("ok", "failed", "skipped"), "error": OPT_STR, "task": TASKS, "artifact": str,
    "format": str, "precision": str, "shapes": ("dynamic", "static"), "bytes": int, "verified": bool,
    "export_metrics": dict,
    "where": ("host", "device"),
    "profile": OPT_STR, "threads": int, "accelerator": OPT_STR, "started_utc": str,
    "facts": {"cpu": str, "cores": int, "os": str, "python": str, "machine": str, "runtimes": dict},
}
MEASURED_SCHEMA = {
    "runtime": str, "load_ms": NUM, "first_inference_ms": NUM, "throughput_per_s": NUM, "peak_rss_mb": OPT_NUM,
    "peak_rss_scope": ("since load", "process"), "rss_before_load_mb": OPT_NUM, "outputs": list,
    "latency_ms": {"runs": int, "p50_ms": NUM, "p90_ms": NUM, "p99_ms": NUM, "mean_ms": NUM, "min_ms": NUM},
    "inputs": {"mode": ("fixed", "natural"), "seq_len": (int, type(None)), "samples": int, "batch": int,
               "tokens_mean": NUM, "tokens_min": int, "tokens_max": int, "tokenizer": OPT_STR, "pairs": bool,
               "source": str},
    "energy": {"mj_per_inference": OPT_NUM, "watts": OPT_NUM, "source": str, "estimate": bool},
}
OUTPUT_SCHEMA = {"name": str, "shape": list}  # each of a measured result's ``outputs``


def schema_problems(value, rule, where: str) -> list:
    """How ``value`` breaks ``rule`` (a type, a tuple of types or of allowed strings, or a dict of
    rules by key), each problem prefixed by ``where`` (e.g. ``artifacts[0].gate: missing``)."""
    if isinstance(rule, dict):
        if not isinstance(value, dict):
            return [f"{where}: expected an object"]
        missing = [f"{where}.{k}: missing" for k in rule if k not in value]
        return missing + [p for k, r in rule.items() if k in value
                          for p in schema_problems(value[k], r, f"{where}.{k}")]
    if isinstance(rule, tuple) and all(isinstance(r, str) for r in rule):
        return [] if value in rule else [f"{where}: expected one of {', '.join(rule)}, got {value!r}"]
    ok = isinstance(value, rule) and not (isinstance(value, bool) and rule in (int, NUM, OPT_NUM))
    kinds = " or ".join(dict.fromkeys(_json_kind(r) for r in (rule if isinstance(rule, tuple) else (rule,))))
    return [] if ok else [f"{where}: expected {kinds}, got {_json_kind(type(value))}"]


def _json_kind(kind: type) -> str:
    """A Python type as JSON calls it: list -> 'an array', NoneType -> 'null'."""
    names = {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a number",
             bool: "true or false", type(None): "null"}
    return names.get(kind, kind.__name__)


def validate(doc: dict) -> list:
    """Schema problems of a result document, or of each result in a folder document ([] = valid)."""
    version = doc.get("edgekit_bench_folder", doc.get("edgekit_bench"))
    if version != SCHEMA_VERSION:
        return [f"schema {version!r}, this edgekit reads {SCHEMA_VERSION}: run the benchmark again"]
    if "results" in doc:
        if not isinstance(doc["results"], list):
            return [f"results: expected an array, got {_json_kind(type(doc['results']))}"]
        return [p for i, r in enumerate(doc["results"]) for p in validate_result(r, f"results[{i}]")]
    return validate_result(doc, "$")


def validate_result(doc: dict, where: str = "$") -> list:
    problems = schema_problems(doc, SCHEMA, where)
    if not problems and doc["status"] == "ok":
        problems = schema_problems(doc, MEASURED_SCHEMA, where) or _seen_problems(doc["outputs"], f"{where}.outputs")
        stats = doc["latency_ms"]
        if not problems and not 0 < stats["min_ms"] <= stats["p50_ms"] <= stats["p90_ms"] <= stats["p99_ms"]:
            problems.append(f"{where}.latency_ms: expected 0 < min <= p50 <= p90 <= p99")
    return problems


def _seen_problems(outputs: list, where: str) -> list:
    """A result's ``outputs``: at least one, each a name and a shape of sizes."""
    if not outputs:
        return [f"{where}: expected at least one output"]
    problems = [p for i, o in enumerate(outputs) for p in schema_problems(o, OUTPUT_SCHEMA, f"{where}[{i}]")]
    return problems or [f"{where}[{i}].shape: expected axis sizes >= 0, got {o['shape']}"
                        for i, o in enumerate(outputs) if not _sizes(o["shape"], 0)]


def _sizes(values: list, low: int) -> bool:
    """Every value is an integer >= ``low`` (not a bool)."""
    return all(isinstance(n, int) and not isinstance(n, bool) and n >= low for n in values)


def is_result(path: Path) -> bool:
    """``path`` holds a result of this script or ``edgekit bench``: the only file ``--json`` overwrites."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and ("edgekit_bench" in doc or "edgekit_bench_folder" in doc)


def check_json_target(path: Path) -> None:
    """Refuse, before any run, a ``--json`` path that is a folder, another file of the user's or
    in a place that cannot be written (under a file, a read-only folder)."""
    path = Path(path)
    if path.is_dir():
        raise BenchError(f"--json {path}: is a folder, expected a file")
    if path.exists() and not is_result(path):
        raise BenchError(f"--json {path}: exists and is not an edgekit bench result (the only kind "
                         f"overwritten); expected a new file")
    home = path.parent
    while not home.exists():  # the folders are made when it is written
        home = home.parent
    if not home.is_dir() or not os.access(home, os.W_OK | os.X_OK):
        why = "not a folder" if not home.is_dir() else "no permission"
        raise BenchError(f"--json {path}: cannot write in {home} ({why})")


def write_json(path: Path, doc: dict) -> None:
    """Write atomically: a temporary sibling (named by pid: runs never share one) renamed into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def default_json_path(folder: Path, stem: str, where: str, profile: str | None, seq_len) -> Path:
    """``<export>/bench/<stem>-<profile or where>[-host]-<seq128 | natural>.json``."""
    tag = (profile or "device") + ("-host" if where == "host" else "")
    return Path(folder) / "bench" / f"{stem}-{tag}-{'natural' if seq_len == 'natural' else f'seq{seq_len}'}.json"


# -- command line (on the device) ----------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line (argparse prints the usage first), exit 2 as argparse does."""
        self.exit(2, f"error: {message} (see --help)\n")


def _ranged(kind: type, low, high, expected: str):
    """An argparse type: a ``kind`` number in low..high (never nan), else a usage error saying ``expected``."""
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and low <= number <= high):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value}")
        return number
    return parse


def _seq_len(value: str):
    return value if value == "natural" else _ranged(int, 2, math.inf, "a token count >= 2 or 'natural'")(value)


def run(args) -> dict:
    target = Path(args.path)
    if not target.exists():
        raise BenchError(f"{target}: no such file or folder")
    if not target.is_dir():
        check_artifact_name(target)
    folder = target if target.is_dir() else target.parent
    manifest = read_manifest(folder)
    edgetpu = "edgetpu" in (args.delegate or "")
    entries = list(manifest["artifacts"]) if target.is_dir() else [artifact_entry(manifest, target)]
    runs = [(entry, artifact_file(folder, entry, edgetpu) if target.is_dir() else target) for entry in entries]
    if args.verify:
        names = loaded_files(folder, manifest, runs)
        verify_files(folder, manifest, names)
        print(f"verified {len(names)} files against {MANIFEST} (size and sha256)")
    else:
        print(f"warning: --no-verify: the files were not checked against {MANIFEST}", file=sys.stderr)
    tokenizer = load_tokenizer(folder)
    texts = None
    if tokenizer is not None or args.seq_len == "natural":
        here = Path(__file__).resolve().parent / TEXTS_FILE
        texts = natural_texts(manifest, folder, args.texts, (here,))
    samples, inputs = make_inputs(folder, manifest, args.seq_len, texts, tokenizer)
    accelerator = args.delegate if args.delegate else (args.openvino_device if args.openvino_device != "CPU" else None)
    results = []
    for entry, path in runs:
        common = dict(task=manifest["task"], verified=args.verify, where="device", profile=args.profile,
                      threads=args.threads, accelerator=accelerator)
        if entry["status"] != "ok":
            results.append(result_document(entry, path, status="skipped", error="export failed", **common))
            continue
        try:
            import_runtime(path)
            outputs = manifest["outputs"]
            _, measured = benchmark(lambda: load_artifact(path, outputs, args.threads, args.delegate,
                                                          args.openvino_device),
                                    samples, outputs=outputs, min_runs=args.min_runs, min_seconds=args.min_seconds,
                                    seq_len=inputs["seq_len"])
        except ImportError as err:
            results.append(result_document(entry, path, status="skipped", error=f"runtime not installed: {err}",
                                           **common))
            continue
        except BenchError:
            raise
        except Exception as err:  # one artifact failing does not stop the others
            results.append(result_document(entry, path, status="failed", error=f"{type(err).__name__}: "
                                           f"{error_line(err)}", **common))
            print(f"{entry['path']}: failed: {results[-1]['error']}", file=sys.stderr)
            continue
        results.append(result_document(entry, path, status="ok", measured=measured, inputs=inputs,
                                       power=(args.watts, args.power_source), **common))
        r = results[-1]
        print(f"{entry['path']}: p50 {r['latency_ms']['p50_ms']:.2f} ms  p99 {r['latency_ms']['p99_ms']:.2f} ms  "
              f"{r['throughput_per_s']:.1f}/s  load {r['load_ms']:.0f} ms  RSS {r['peak_rss_mb']} MB  ({r['runtime']}; "
              f"{inputs['tokens_mean']} tokens: {inputs['source']}; outputs {show_outputs(r['outputs'])})")
    if not target.is_dir():
        return results[0]
    return {"edgekit_bench_folder": SCHEMA_VERSION, "folder": str(folder), "results": results}


def main(argv=None) -> int:
    parser = _Parser(description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="an artifact (.tflite/.onnx/.xml) or an export folder with edgekit.json")
    parser.add_argument("--seq-len", type=_seq_len, default="natural", help="tokens per input, or 'natural'")
    cores = os.cpu_count() or 1
    parser.add_argument("--threads", type=_ranged(int, 1, cores, f"1..{cores} (this machine's cores)"), default=cores,
                        help=f"runtime threads, 1..{cores} [default: {cores}]")
    parser.add_argument("--delegate", help="LiteRT delegate: 'edgetpu' (libedgetpu) or a library path")
    parser.add_argument("--openvino-device", default="CPU", help="OpenVINO device, e.g. NPU")
    parser.add_argument("--texts", type=Path, help="texts, one per line or a .tsv; question<TAB>context lines for "
                        f"question answering [default: the export's evaluation file, or {TEXTS_FILE}]")
    parser.add_argument("--profile", help="the device profile's name, recorded in the JSON (e.g. rpi4)")
    parser.add_argument("--watts", type=_ranged(float, 1e-3, 1000, "0.001..1000 W"),
                        help="nominal active power for the energy estimate")
    parser.add_argument("--power-source", help="where the --watts figure comes from")
    parser.add_argument("--min-runs", type=_ranged(int, 1, 100_000, "1..100000"), default=50,
                        help="timed calls at least, 1..100000 [default: 50]")
    parser.add_argument("--min-seconds", type=_ranged(float, 0, 3600, "0..3600 seconds"), default=2.0,
                        help="timed seconds at least, 0..3600 [default: 2]")
    parser.add_argument("--json", type=Path, help="output [default: <export>/bench/<name>-device-<seq>.json]")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help=f"skip checking the files against {MANIFEST}'s sha256 (results say so)")
    args = parser.parse_args(argv)
    target = Path(args.path)
    stem = "all" if target.is_dir() else target.stem
    out = args.json or default_json_path(target if target.is_dir() else target.parent, stem, "device",
                                         args.profile, args.seq_len)
    try:
        check_json_target(out)
        doc = run(args)
        write_json(out, doc)
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: --json {out}: cannot write ({err.strerror or err})", file=sys.stderr)
        return 1
    print(f"wrote {out}")
    failed = [r for r in doc.get("results", [doc]) if r["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
