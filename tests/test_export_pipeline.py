"""`edgekit export` end to end on the toy task: manifest, reports, gate, atomic output."""

from __future__ import annotations

import hashlib
import json
import os

import pytest
from click.testing import CliRunner

from toy_data import write_recipe, write_toy_task
from edgekit.cli import main

BODY = """finetune: {epochs: 4, batch_size: 16, learning_rate: 3.0e-3}
quantize: {calibration_samples: 32}
export:
  targets:
    - {format: openvino, precision: fp32}
    - {format: openvino, precision: fp16}
    - {format: openvino, precision: int8-static}
    - {format: tflite, precision: int8-full}
    - {format: onnx, precision: int8-dynamic}
evaluation: {split: test, max_accuracy_drop: 0.05, min_agreement: 0.9%s}
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    toy = write_toy_task(tmp_path_factory.mktemp("toy"))
    recipe = write_recipe(toy, BODY % "")
    out, cache = toy / "out", toy / "cache"
    result = CliRunner().invoke(main, ["export", str(recipe), "--out", str(out), "--cache", str(cache),
                                       "--threads", "1", "--quiet"])
    return toy, out, cache, result


def test_export_writes_artifacts_manifest_and_reports(exported):
    toy, out, _, result = exported
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "edgekit.json").read_text())
    assert manifest["task"] == "text-classification" and manifest["labels"] == ["negative", "positive"]
    assert (out / "labels.txt").read_text().split() == ["negative", "positive"]
    assert {"tokenizer.json", "vocab.txt"} <= set(manifest["tokenizer"])
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask", "token_type_ids"]
    assert manifest["student"]["stage"] == "finetune" and manifest["student"]["metrics"]["test_accuracy"] >= 0.9
    reference = manifest["evaluation"]["fp32_tensorflow"]
    assert reference["agreement"] == 1.0 and reference["accuracy"] >= 0.9
    every = {(a["format"], a["precision"]): a for a in manifest["artifacts"]}
    assert set(every) == {("openvino", "fp32"), ("openvino", "fp16"), ("openvino", "int8-static"),
                          ("tflite", "int8-full"), ("onnx", "int8-dynamic")}
    runtimes = {"openvino": "openvino", "tflite": "ai-edge-litert", "onnx": "onnxruntime"}
    for (fmt, _), row in every.items():
        assert row["status"] == "ok" and row["gate"] == [], row
        for name in row["files"]:  # manifest v2: every file's digest, none per artifact
            assert manifest["digests"][name]["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert "sha256" not in row and row["bytes"] == sum((out / f).stat().st_size for f in row["files"])
        assert row["latency_ms"]["p50"] > 0 and row["runtime"].startswith(runtimes[fmt])
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's 0700
    assert (out / every[("onnx", "int8-dynamic")]["path"]).stat().st_mode & 0o777 == 0o666 & ~umask
    int8 = every[("tflite", "int8-full")]["details"]
    assert int8["integer_only"] and int8["metadata"]["outputs"] == ["logits"]
    rows = {p: a for (f, p), a in every.items() if f == "openvino"}
    assert rows["fp32"]["metrics"]["agreement"] == 1.0
    assert abs(rows["fp32"]["metrics"]["accuracy"] - reference["accuracy"]) < 1e-9
    weights = {k: (out / rows[k]["files"][1]).stat().st_size for k in ("fp16", "fp32")}  # the .bin files
    assert weights["fp16"] < 0.6 * weights["fp32"]
    report = (out / "report.md").read_text()
    assert report.count("| openvino |") == 3 and report.count("| tflite |") == 1 and "✅" in report
    from edgekit.bench.cpu import cpu_flags

    host = manifest["evaluation"]["latency_host"]
    assert host["flags"] == cpu_flags() and f"on the exporting host ({host['cpu']}: " in report
    assert "): openvino fp32, openvino fp16, openvino int8-static, tflite int8-full, onnx int8-dynamic." in report
    tokens, calibration = manifest["evaluation"]["tokens"], manifest["calibration"]
    assert calibration["inputs"] == 32 and 2 < tokens["min"] <= tokens["median"] <= tokens["max"] <= 16
    assert (f"Static int8 (openvino int8-static, tflite int8-full): activation ranges from 32 calibration inputs of "
            f"{calibration['tokens']['min']}-{calibration['tokens']['max']} tokens; the `test` split has "
            f"{tokens['min']}-{tokens['max']}.") in report
    assert (out / "report.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "report.json").read_text())["artifacts"][0]["format"] == "openvino"
    assert "wrote" in result.output


def test_the_report_says_when_int8_is_not_faster_than_fp32_and_why(exported, tmp_path):
    from edgekit.report.tables import write_markdown

    _, out, _, _ = exported
    manifest = json.loads((out / "edgekit.json").read_text())
    rows = {(a["format"], a["precision"]): a for a in manifest["artifacts"]}
    rows[("openvino", "fp32")]["latency_ms"]["p50"] = 2.0
    rows[("openvino", "int8-static")]["latency_ms"]["p50"] = 2.5
    rows[("openvino", "fp16")]["latency_ms"]["p50"] = 9.0  # not int8: no note
    manifest["evaluation"]["latency_host"] = {"cpu": "AMD EPYC", "flags": {"avx2": True, "avx512_vnni": False,
                                                                          "avx_vnni": False}}
    write_markdown(tmp_path / "r.md", manifest)
    report = (tmp_path / "r.md").read_text()
    assert ("openvino int8-static (2.50 ms) is not faster than openvino fp32 (2.00 ms) where they were timed: this "
            "CPU has no VNNI int8 dot-product instructions") in report and "For that CPU ship openvino fp32" in report
    assert report.count("is not faster than") == 1 and "(AMD EPYC: avx2)" in report
    manifest["evaluation"]["latency_host"]["flags"]["avx512_vnni"] = True
    write_markdown(tmp_path / "r.md", manifest)
    assert "the quantize / dequantize steps cost more than the int8 matrix products save" in \
        (tmp_path / "r.md").read_text()
    rows[("openvino", "int8-static")]["latency_ms"]["p50"] = 1.5
    write_markdown(tmp_path / "r.md", manifest)
    assert "is not faster than" not in (tmp_path / "r.md").read_text()


def test_the_speed_note_names_openvino_int8_weights(exported, tmp_path):
    """OpenVINO int8-static no faster than fp32: the note names the export's int8-weights artifact
    with its size and p50, or the target to add; int8-weights (float compute) gets no note itself."""
    import copy

    from edgekit.report.tables import write_markdown

    _, out, _, _ = exported
    manifest = json.loads((out / "edgekit.json").read_text())
    rows = {(a["format"], a["precision"]): a for a in manifest["artifacts"]}
    rows[("openvino", "fp32")]["latency_ms"]["p50"] = 2.0
    rows[("openvino", "int8-static")]["latency_ms"]["p50"] = 2.5
    write_markdown(tmp_path / "r.md", manifest)
    report = (tmp_path / "r.md").read_text()
    assert ("For that CPU ship openvino fp32, or time the target device with `edgekit bench`. For a small file at "
            "float speed add `{format: openvino, precision: int8-weights}` to the recipe's export.targets.") in report
    weights = copy.deepcopy(rows[("openvino", "fp16")])
    weights.update(precision="int8-weights", bytes=23_140_000)
    weights["latency_ms"]["p50"] = 2.1  # float compute: about fp32's, no note of its own
    manifest["artifacts"].append(weights)
    write_markdown(tmp_path / "r.md", manifest)
    report = (tmp_path / "r.md").read_text()
    assert ("`edgekit bench`. openvino int8-weights (23.1 MB, 2.10 ms) is the small file at float speed.") in report
    assert report.count("is not faster than") == 1 and "add `{format: openvino" not in report
    weights["status"] = "failed"
    write_markdown(tmp_path / "r.md", manifest)
    report = (tmp_path / "r.md").read_text()
    assert "int8-weights (" not in report and "add `{format: openvino" not in report


def test_the_reports_new_keys_are_checked_when_there_and_optional(exported, tmp_path):
    from edgekit.report.manifest import report_problems
    from edgekit.report.tables import write_markdown

    _, out, _, _ = exported
    manifest = json.loads((out / "edgekit.json").read_text())
    assert report_problems(manifest) == []
    del manifest["calibration"]["tokens"]["min"]
    manifest["evaluation"]["latency_host"]["flags"] = "avx2"
    assert report_problems(manifest) == ["evaluation.latency_host.flags: expected an object or null, got a string",
                                         "calibration.tokens.min: missing"]
    for key in ("tokens", "latency_host"):  # a manifest written before these keys
        del manifest["evaluation"][key]
    del manifest["calibration"]
    assert report_problems(manifest) == []
    write_markdown(tmp_path / "r.md", manifest)
    assert "on the exporting host: openvino fp32" in (tmp_path / "r.md").read_text()


def _noisy_recipe(toy, gate_mode: str):
    """The toy recipe evaluated on a test split with every 4th label flipped (accuracy ~0.75)."""
    lines = (toy / "test.tsv").read_text().splitlines()
    flipped = [f"{t}\t{1 - int(y)}" if i % 4 == 0 else f"{t}\t{y}"
               for i, (t, y) in enumerate(line.split("\t") for line in lines[1:])]
    (toy / "noisy.tsv").write_text("\n".join([lines[0], *flipped]) + "\n")
    recipe = write_recipe(toy, BODY % f", min_accuracy: 0.9, gate: {gate_mode}")
    recipe.write_text(recipe.read_text().replace("test: test.tsv", "test: noisy.tsv"))
    return recipe


def test_gate_failure_exits_1_unless_warn(exported):
    toy, _, cache, _ = exported
    result = CliRunner().invoke(main, ["export", str(_noisy_recipe(toy, "enforce")), "--out", str(toy / "strict"),
                                       "--cache", str(cache), "--quiet", "--targets", "openvino"])
    assert result.exit_code == 1, result.output
    assert "3 artifact(s) failed or missed the evaluation gate" in result.output
    assert not (toy / "strict").exists()  # a failed run publishes nothing; its report is printed
    assert result.output.count("❌ accuracy 0.") == 3 and "< min_accuracy 0.9" in result.output
    result = CliRunner().invoke(main, ["export", str(_noisy_recipe(toy, "warn")), "--out", str(toy / "warn"),
                                       "--cache", str(cache), "--quiet"])
    assert result.exit_code == 0 and "(gate: warn)" in result.output


def test_a_failed_run_leaves_the_previous_output_untouched(exported, monkeypatch):
    toy, out, cache, _ = exported
    before = sorted(p.name for p in out.iterdir())
    import edgekit.report.manifest as manifest

    def broken(folder, data):
        raise RuntimeError("disk full")

    monkeypatch.setattr(manifest, "write_reports", broken)
    recipe = toy / "recipe.yaml"
    result = CliRunner().invoke(main, ["export", str(recipe), "--out", str(out), "--cache", str(cache), "--quiet"])
    assert result.exit_code != 0
    assert sorted(p.name for p in out.iterdir()) == before
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")]  # no temp folder left


def test_a_target_failing_in_the_tflite_thread_is_recorded_in_order_and_the_others_run(exported, monkeypatch):
    toy, _, cache, _ = exported
    import edgekit.export.tflite as tflite

    def broken(job):
        raise RuntimeError("converter crashed\nsecond line")

    monkeypatch.setattr(tflite, "export", broken)
    result = CliRunner().invoke(main, ["export", str(toy / "recipe.yaml"), "--out", str(toy / "broken"),
                                       "--cache", str(cache), "--targets", "tflite,onnx"])
    assert result.exit_code == 1 and not (toy / "broken").exists()
    lines = [line for line in result.output.splitlines() if line.startswith(("✓", "✗"))]
    assert lines[0] == "✗ tflite-int8-full: RuntimeError: converter crashed", lines  # the recipe's order
    assert lines[1].startswith("✓ onnx-int8-dynamic: ") and len(lines) == 2


def test_unknown_target_format_is_a_usage_error(exported):
    toy, *_ = exported
    result = CliRunner().invoke(main, ["export", str(toy / "recipe.yaml"), "--targets", "coreml"])
    assert result.exit_code == 2 and "expected a comma-separated list of tflite, onnx, openvino" in result.output
