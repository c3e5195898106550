"""Family × task × format × precision: how closely each artifact reproduces edgekit's TF model.

On the tiny random family fixtures (tests/fixtures/families, scripts/make_family_fixtures.py),
dynamic shapes, 16 random calibration rows (``export.agreement.random_rows``), compared on each
fixture's reference inputs (real tokens only). A float cell is max |Δ|; an int8 cell is Pearson r
(these models are random: r, not accuracy, is what says the graph is wired right). A cell edgekit
refuses is "n/a" with the reason. Prints a Markdown table; --json writes every number.

    .venv/bin/python benchmarks/family_matrix.py --json benchmarks/results/family_matrix.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.agreement import agreement, export_and_load, random_rows
from edgekit.models import load_pretrained

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "families"
FAMILIES = ("bert", "distilbert", "roberta", "xlm-roberta", "electra", "albert", "mobilebert")
TASKS = {"": "text-classification", "-token": "token-classification", "-qa": "question-answering"}
CELLS = (("tflite", "fp32"), ("tflite", "fp16"), ("tflite", "int8-dynamic"), ("tflite", "int8-full"),
         ("onnx", "fp32"), ("onnx", "int8-dynamic"), ("onnx", "int8-static"),
         ("openvino", "fp32"), ("openvino", "int8-static"), ("openvino", "int8-weights"))


def measure(folder: Path, work: Path) -> dict:
    pretrained = load_pretrained(folder)
    with np.load(folder / "reference.npz") as ref:
        inputs = {k: ref[k].astype(np.int32) for k in ("input_ids", "attention_mask", "token_type_ids")
                  if k in ref.files}
    inputs.setdefault("token_type_ids", np.zeros_like(inputs["input_ids"]))
    calibration = random_rows(pretrained, 16, 22)
    cells = {}
    for fmt, precision in CELLS:
        out = work / f"{folder.name}-{fmt}-{precision}"
        out.mkdir()
        try:
            runner = export_and_load(pretrained, fmt, precision, out, seq_len=inputs["input_ids"].shape[1],
                                     calibration=calibration)
            cells[f"{fmt}:{precision}"] = agreement(runner, pretrained, inputs)
        except EdgekitError as err:
            cells[f"{fmt}:{precision}"] = {"refused": str(err)}
    return cells


def _cell(result: dict, precision: str) -> str:
    if "refused" in result:
        return "n/a"
    if precision in ("fp32", "fp16"):
        return f"{max(r['max_abs'] for r in result.values()):.1e}"
    return f"r {min(r['r'] for r in result.values()):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family in FAMILIES:
            for suffix, task in TASKS.items():
                results[f"{family}{suffix}"] = {"family": family, "task": task,
                                                "cells": measure(FIXTURES / f"{family}{suffix}", Path(tmp))}
    print("| family | task | " + " | ".join(f"{f} {p}" for f, p in CELLS) + " |")
    print("|---|---|" + "---|" * len(CELLS))
    for row in results.values():
        print(f"| {row['family']} | {row['task']} | " +
              " | ".join(_cell(row["cells"][f"{f}:{p}"], p) for f, p in CELLS) + " |")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
