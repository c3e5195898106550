"""The main job end to end on the real MiniLM: `edgekit export` (recipes/quickstart.yaml) with a
handful of the project's own sentences, every format and precision the recipe lists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli import main

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "recipes" / "data"


def _head(name: str, rows: int, folder: Path) -> None:
    lines = (DATA / name).read_text(encoding="utf-8").splitlines()
    (folder / name).write_text("\n".join(lines[: rows + 1]) + "\n", encoding="utf-8")


@pytest.mark.slow
def test_quickstart_exports_every_format_within_the_cosine_gate(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    _head("english-calibration.tsv", 24, data)
    _head("english-eval.tsv", 8, data)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["export", "--data", str(data), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "edgekit.json").read_text())
    assert manifest["task"] == "feature-extraction"
    every = {(a["format"], a["precision"]): a for a in manifest["artifacts"]}
    assert set(every) == {("tflite", "fp32"), ("tflite", "int8-dynamic"), ("onnx", "fp32"),
                          ("onnx", "int8-dynamic"), ("openvino", "fp32"), ("openvino", "int8-static")}
    for key, row in every.items():
        assert row["status"] == "ok" and row["gate"] == [], (key, row.get("error"))
        floor = 0.9999 if key[1] == "fp32" else 0.98
        assert row["metrics"]["cosine_mean"] >= floor, (key, row["metrics"])
    mb = {key: row["bytes"] / 1e6 for key, row in every.items()}
    assert 80 < mb[("tflite", "fp32")] < 100 and mb[("tflite", "int8-dynamic")] < 0.3 * mb[("tflite", "fp32")]
    assert mb[("onnx", "int8-dynamic")] < 0.7 * mb[("onnx", "fp32")]
    onnx_fp32 = every[("onnx", "fp32")]["details"]
    assert onnx_fp32["fusions"].get("Attention", 0) == 6 and not onnx_fp32["unfused_at_runtime"]
    assert (out / "report.md").read_text().count("✅") == 6
