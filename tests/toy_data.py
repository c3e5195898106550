"""A toy sentiment task in the tiny fixture model's vocabulary, written as SST-2-style TSV."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from conftest import TINY_CLS

FILLER = ["the", "movie", "was", "cafe", "!", ".", ","]
THREE_RUNTIMES = """export:
  seq_len: 16
  targets:
    - {format: tflite, precision: fp32, shapes: static}
    - {format: onnx, precision: fp32}
    - {format: openvino, precision: fp32}
evaluation: {split: test}
"""  # a recipe body: one fp32 artifact per runtime
POSITIVE, NEGATIVE = ["great", "good"], ["bad", "terrible"]


def toy_rows(count: int, seed: int) -> list[tuple[str, int]]:
    """Texts of 3-9 words with exactly one sentiment word; label 1 when it is positive."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(count):
        label = int(rng.integers(2))
        words = list(rng.choice(FILLER, size=int(rng.integers(2, 9))))
        words.insert(int(rng.integers(len(words) + 1)), str(rng.choice(POSITIVE if label else NEGATIVE)))
        rows.append((" ".join(words), label))
    return rows


def write_toy_task(folder: Path, train: int = 256, test: int = 64) -> Path:
    """train.tsv / test.tsv in ``folder`` and a copy of the tiny model without dropout; returns folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, count, seed in (("train", train, 0), ("test", test, 1)):
        lines = ["sentence\tlabel"] + [f"{t}\t{y}" for t, y in toy_rows(count, seed)]
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    model = folder / "model"
    shutil.copytree(TINY_CLS, model)
    config = json.loads((model / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (model / "config.json").write_text(json.dumps(config))
    return folder


def write_recipe(folder: Path, body: str) -> Path:
    head = ("name: toy\ntask: text-classification\nseed: 3\nmodel: {source: model, max_length: 16}\n"
            "data: {train: train.tsv, test: test.tsv, labels: [negative, positive]}\n")
    path = folder / "recipe.yaml"
    path.write_text(head + body)
    return path


def export_folder(recipe: Path, model: Path, out: Path) -> Path:
    """The real ``edgekit export RECIPE --model MODEL --out OUT`` (1 thread, quiet) in this process."""
    from click.testing import CliRunner

    from edgekit.cli import main

    result = CliRunner().invoke(main, ["export", str(recipe), "--model", str(model), "--out", str(out),
                                       "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def toy_export(tmp_path_factory, body: str) -> tuple[Path, Path]:
    """(folder, export): a 16/12-row toy task with a recipe of ``body`` and its real export in ``out``."""
    toy = write_toy_task(tmp_path_factory.mktemp("toy"), train=16, test=12)
    return toy, export_folder(write_recipe(toy, body), toy / "model", toy / "out")


def killed_at(call: int | None):
    """(extras, calls): a training loop ``extras`` that counts its calls (one per step, in
    ``calls``) and raises KeyboardInterrupt on call number ``call`` — a run killed mid-stage."""
    calls = []

    def extras(batch):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return {}

    return extras, calls
