"""`edgekit bench`, the on-device script and --compare, on a tiny exported classifier (static
[1, 16] tflite fp32, dynamic onnx fp32), a tiny tagger and a tiny extractive QA model.

The script runs in a subprocess with ``python -I`` and must not import TensorFlow or edgekit;
its JSON must validate against the schema ``edgekit bench`` writes. Absent devices are
one-line errors; --on-host labels every figure; a folder run updates edgekit.json. Both feed
the task's inputs (question/context pairs for QA) and record the manifest outputs they saw.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from task_data import (NER_MAX_LENGTH, NER_TAGS, QA_MAX_LENGTH, export_task, write_ner_recipe, write_ner_task,
                       write_qa_recipe, write_qa_task)
from toy_data import toy_export
from edgekit.cli import main
from edgekit.ondevice import bench as ondevice

BODY = """export:
  seq_len: 16
  targets:
    - {format: tflite, precision: fp32, shapes: static}
    - {format: onnx, precision: fp32}
evaluation: {split: test}
"""
FAST = ["--min-runs", "10", "--min-seconds", "0.1"]
SCRIPT = Path(ondevice.__file__)
PY39 = Path("/root/.pyenv/versions/3.9.18/bin/python")


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return toy_export(tmp_path_factory, BODY)


@pytest.fixture
def folder(export, tmp_path):
    """A fresh copy of the export folder (bench writes into it)."""
    return Path(shutil.copytree(export[1], tmp_path / "out"))


def _token_counts(export) -> list[int]:
    from edgekit.models import TextTokenizer

    toy, out = export
    texts = [line.split("\t")[0] for line in (toy / "test.tsv").read_text().splitlines()[1:]]
    return TextTokenizer(out).lengths(texts, 16)


def _script(args: list[str], *, hide: tuple[str, ...] = ()) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run bench.py isolated (-I: no PYTHONPATH, no script dir on sys.path); also return which of
    tensorflow / tf_keras / edgekit were imported when it exited. ``hide``: modules made unimportable."""
    wrapper = ("import atexit, runpy, sys\n"
               f"for name in {list(hide)!r}: sys.modules[name] = None\n"
               "atexit.register(lambda: print('IMPORTED', sorted({m.split('.')[0] for m in sys.modules if sys.modules[m]}"
               " & {'tensorflow', 'tf_keras', 'edgekit'})))\n"
               f"sys.argv = ['bench.py'] + {args!r}\n"
               f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n")
    proc = subprocess.run([sys.executable, "-I", "-c", wrapper], capture_output=True, text=True, timeout=300)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("IMPORTED"))
    return proc, ast.literal_eval(line.split(" ", 1)[1])


def test_script_runs_isolated_without_tensorflow_and_writes_the_bench_schema(export, folder):
    proc, imported = _script([str(folder), "--seq-len", "natural", "--threads", "1", "--profile", "rpi4",
                              "--watts", "6.4", "--power-source", "test figure", "--json", str(folder / "d.json"), *FAST])
    assert proc.returncode == 0, proc.stderr
    assert imported == []
    doc = json.loads((folder / "d.json").read_text())
    assert ondevice.validate(doc) == []
    counts = _token_counts(export)
    assert [r["artifact"] for r in doc["results"]] == ["tflite-fp32.tflite", "onnx-fp32.onnx"]
    for r in doc["results"]:
        assert r["status"] == "ok" and r["where"] == "device" and r["profile"] == "rpi4" and r["threads"] == 1
        assert r["latency_ms"]["runs"] >= 10 and r["latency_ms"]["p50_ms"] > 0
        assert r["inputs"]["samples"] == len(counts) and r["inputs"]["tokens_mean"] == round(np.mean(counts), 2)
        assert (r["inputs"]["tokens_min"], r["inputs"]["tokens_max"]) == (min(counts), max(counts))
        assert r["energy"]["mj_per_inference"] == round(r["latency_ms"]["p50_ms"] * 6.4, 3)
        assert r["facts"]["cores"] == os.cpu_count() and r["facts"]["runtimes"]["numpy"] == np.__version__
        assert r["task"] == "text-classification" and not r["inputs"]["pairs"]
        assert r["outputs"] == [{"name": "logits", "shape": [1, 3]}]  # the tiny classifier's 3 labels
    assert [r["shapes"] for r in doc["results"]] == ["static", "dynamic"]
    assert doc["results"][1]["runtime"].startswith("onnxruntime")


def test_script_defaults_run_without_tokenizers_with_the_builtin_wordpiece(export, folder):
    proc, imported = _script([str(folder / "onnx-fp32.onnx"), "--threads", "1", *FAST], hide=("tokenizers",))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((folder / "bench" / "onnx-fp32-device-natural.json").read_text())
    assert ondevice.validate(doc) == [] and imported == []
    counts = _token_counts(export)
    assert doc["inputs"]["tokenizer"] == "built-in WordPiece (tokenizer.json)"
    assert doc["inputs"]["source"] == f"test.tsv ({len(counts)} texts) tokenized by built-in WordPiece (tokenizer.json)"
    assert (doc["inputs"]["mode"], doc["inputs"]["tokens_mean"]) == ("natural", round(np.mean(counts), 2))
    proc, _ = _script([str(folder / "onnx-fp32.onnx"), "--seq-len", "12", "--threads", "1", *FAST],
                      hide=("tokenizers",))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((folder / "bench" / "onnx-fp32-device-seq12.json").read_text())
    assert doc["inputs"]["source"] == "test.tsv tokenized by built-in WordPiece (tokenizer.json), first 12 tokens"
    assert (doc["inputs"]["tokens_min"], doc["inputs"]["tokens_max"], doc["inputs"]["mode"]) == (12, 12, "fixed")


def test_script_asks_for_an_absent_edge_tpu_plainly(folder):
    proc, _ = _script([str(folder / "tflite-fp32.tflite"), "--seq-len", "8", "--delegate", "edgetpu"])
    if proc.returncode == 0:
        pytest.skip("an Edge TPU runtime is installed here")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1
    assert lines[0].startswith("error: delegate libedgetpu.so.1 could not be loaded")


def test_script_is_python39_and_imports_only_numpy_and_runtimes():
    tree = ast.parse(SCRIPT.read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    third_party = roots - set(sys.stdlib_module_names)
    assert third_party == {"numpy", "ai_edge_litert", "tflite_runtime", "onnxruntime", "openvino", "tokenizers"}
    if PY39.exists():
        proc = subprocess.run([str(PY39), "-c", f"import ast; ast.parse(open({str(SCRIPT)!r}).read())"],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_bench_script_command_writes_the_module_and_texts(tmp_path):
    result = CliRunner().invoke(main, ["bench-script", "--out", str(tmp_path / "dev" / "bench.py")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dev" / "bench.py").read_bytes() == SCRIPT.read_bytes()
    assert len(ondevice.read_texts(tmp_path / "dev" / "english-eval.tsv")) == 60


def test_edgekit_bench_writes_the_same_schema_as_the_script(folder):
    result = CliRunner().invoke(main, ["bench", str(folder / "tflite-fp32.tflite"), "--seq-len", "12", *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads((folder / "bench" / "tflite-fp32-x86-cpu-seq12.json").read_text())
    assert ondevice.validate(doc) == [] and doc["where"] == "device" and doc["threads"] == 2
    from tokenizers import __version__

    tokenizer = f"tokenizers {__version__} (tokenizer.json)"
    assert doc["inputs"]["source"] == f"test.tsv tokenized by {tokenizer}, first 12 tokens"
    assert doc["inputs"]["tokens_mean"] == 12
    assert doc["energy"]["mj_per_inference"] == round(doc["latency_ms"]["p50_ms"] * 15.0, 3)
    assert "per busy core" in doc["energy"]["source"] and "ESTIMATE" in result.output
    proc, imported = _script([str(folder / "tflite-fp32.tflite"), "--seq-len", "12", "--profile", "x86-cpu",
                              "--watts", "15", "--json", str(folder / "s.json"), *FAST])
    assert proc.returncode == 0 and imported == [], proc.stderr

    def shape(d):
        return {k: shape(v) for k, v in d.items()} if isinstance(d, dict) and "runtimes" not in d else type(d).__name__

    script_doc = json.loads((folder / "s.json").read_text())
    assert shape({k: v for k, v in script_doc.items() if k != "export_metrics"}) == shape(
        {k: v for k, v in doc.items() if k != "export_metrics"})


@pytest.mark.parametrize("device, reason", [
    ("rpi4", "rpi4 is an arm64 device and this host is x86_64"),
    ("coral-usb", "the Edge TPU runtime libedgetpu.so.1 is not installed"),
    ("intel-npu", "OpenVINO device NPU is not available"),
])
def test_absent_device_is_one_line_and_exit_1(folder, device, reason):
    from edgekit.bench.presence import absent_reason
    from edgekit.config import load_device

    if absent_reason(load_device(device)) is None:
        pytest.skip(f"{device} is present here")
    result = CliRunner().invoke(main, ["bench", str(folder), "--device", device, *FAST])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: device {device} is not present: {reason}")
    assert "--on-host" in lines[0] and not (folder / "bench").exists()


def test_on_host_labels_every_figure_and_uses_the_profile_threads(folder):
    result = CliRunner().invoke(main, ["bench", str(folder / "onnx-fp32.onnx"), "--device", "rpi4", "--on-host",
                                       "--seq-len", "8", *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads((folder / "bench" / "onnx-fp32-rpi4-host-seq8.json").read_text())
    assert (doc["where"], doc["profile"], doc["threads"], doc["accelerator"]) == ("host", "rpi4", 4, None)
    assert "on this HOST in place of rpi4" in result.output
    figures = [line for line in result.output.splitlines() if " ms " in line or "/s " in line or "MB" in line]
    assert len(figures) >= 8 and all(" host " in line for line in figures)


def test_edgekit_bench_does_not_import_tensorflow(folder):
    code = ("import sys\nfrom edgekit.cli import main\n"
            f"sys.argv = ['edgekit', 'bench', {str(folder / 'tflite-fp32.tflite')!r}, '--seq-len', '8', "
            "'--min-runs', '5', '--min-seconds', '0.05']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    print('exit', e.code)\n"
            "print('imported', sorted({'tensorflow', 'tf_keras'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300).stdout
    assert out.strip().splitlines()[-2:] == ["exit 0", "imported []"]


def test_folder_run_updates_manifest_latency_and_skips_what_the_device_cannot_run(folder):
    before = json.loads((folder / "edgekit.json").read_text())
    result = CliRunner().invoke(main, ["bench", str(folder), "--seq-len", "8", "--threads", "1", *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads((folder / "bench" / "all-x86-cpu-seq8.json").read_text())
    after = json.loads((folder / "edgekit.json").read_text())
    assert ondevice.validate(doc) == [] and result.output.count("✅") == 2
    for entry, r in zip(after["artifacts"], doc["results"]):
        assert entry["latency_ms"]["p50"] == r["latency_ms"]["p50_ms"] and entry["latency_ms"]["seq_len"] == 8
        assert entry["latency_ms"]["threads"] == 1 and entry["latency_ms"]["measured_by"] == "edgekit bench"
        assert r["export_metrics"] == entry["metrics"]
    strip = [{k: v for k, v in a.items() if k != "latency_ms"} for a in before["artifacts"]]
    assert strip == [{k: v for k, v in a.items() if k != "latency_ms"} for a in after["artifacts"]]
    assert {k: v for k, v in after.items() if k != "artifacts"} == {k: v for k, v in before.items() if k != "artifacts"}
    assert not [p for p in folder.rglob(".*.tmp*")]
    report = (folder / "report.md").read_text()  # the report shows the new figures and says how they were taken
    for entry in after["artifacts"]:
        assert f"| {entry['latency_ms']['p50']:.2f} | {entry['runtime']} |" in report
        how = f"p50 `edgekit bench` on x86-cpu (device), {entry['latency_ms']['runtime']}, 8 tokens, 1 threads"
        assert f"{how}, {entry['latency_ms']['utc']}: {entry['format']} {entry['precision']}." in report
    assert json.loads((folder / "report.json").read_text())["artifacts"][0]["latency_ms"]["seq_len"] == 8
    result = CliRunner().invoke(main, ["bench", str(folder), "--device", "coral-usb", "--on-host", *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads((folder / "bench" / "all-coral-usb-host-natural.json").read_text())
    assert [r["status"] for r in doc["results"]] == ["skipped", "skipped"]
    assert doc["results"][0]["error"] == "coral-usb does not run tflite fp32 (it runs tflite int8-full/int8-qat)"
    assert json.loads((folder / "edgekit.json").read_text()) == after


def test_bad_seq_len_and_unknown_artifact_are_one_line_errors(folder):
    result = CliRunner().invoke(main, ["bench", str(folder / "onnx-fp32.onnx"), "--seq-len", "64"])
    assert result.exit_code == 1 and result.output.strip() == (
        "Error: --seq-len 64: expected 2..16 (the export's max_length)")
    (folder / "other.onnx").write_bytes((folder / "onnx-fp32.onnx").read_bytes())
    result = CliRunner().invoke(main, ["bench", str(folder / "other.onnx")])
    assert result.exit_code == 1 and "other.onnx: not listed in edgekit.json" in result.output


def test_a_seq_len_past_a_static_shape_is_refused_not_measured_on_cut_inputs(folder):
    # a static export's seq_len may be below max_length (here: the [1, 16] tflite of a 32-token export)
    manifest = json.loads((folder / "edgekit.json").read_text())
    (folder / "edgekit.json").write_text(json.dumps({**manifest, "max_length": 32}))
    cut = "--seq-len 24 is longer than its static shape [1, 16]: the inputs would be cut to 16 tokens"
    result = CliRunner().invoke(main, ["bench", str(folder / "tflite-fp32.tflite"), "--seq-len", "24", *FAST])
    assert result.exit_code == 1 and result.output.splitlines()[-1] == (
        f"Error: tflite-fp32.tflite: ValueError: {cut} (use --seq-len 16 or less)")
    proc, _ = _script([str(folder), "--seq-len", "24", "--min-runs", "3", "--min-seconds", "0"])
    doc = json.loads((folder / "bench" / "all-device-seq24.json").read_text())
    assert proc.returncode == 1 and f"tflite-fp32.tflite: failed: ValueError: {cut}" in proc.stderr
    assert [(r["artifact"], r["status"]) for r in doc["results"]] == [("tflite-fp32.tflite", "failed"),
                                                                     ("onnx-fp32.onnx", "ok")]


def test_compare_puts_host_and_device_side_by_side(folder):
    for args in (["--device", "rpi4", "--on-host", "--json", str(folder / "a.json")], ["--json", str(folder / "b.json")]):
        result = CliRunner().invoke(main, ["bench", str(folder / "onnx-fp32.onnx"), "--seq-len", "8", *FAST, *args])
        assert result.exit_code == 0, result.output
    a, b = (json.loads((folder / f"{n}.json").read_text()) for n in ("a", "b"))
    result = CliRunner().invoke(main, ["bench", "--compare", str(folder / "a.json"), str(folder / "b.json")])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "onnx-fp32.onnx" in line)
    assert f"{a['latency_ms']['p50_ms']:.2f} host" in row and f"{b['latency_ms']['p50_ms']:.2f} " in row
    assert f" {b['latency_ms']['p50_ms'] / a['latency_ms']['p50_ms']:.2f} " in row
    assert "in place of rpi4" in result.output and "measured on x86-cpu" in result.output
    (folder / "c.json").write_text(json.dumps({**a, "latency_ms": {"p50_ms": 1.0}}))
    result = CliRunner().invoke(main, ["bench", "--compare", str(folder / "a.json"), str(folder / "c.json")])
    assert result.exit_code == 1 and "c.json: not an edgekit bench result ($.latency_ms.runs: missing)" in result.output


def test_validate_reports_missing_keys_and_disordered_percentiles(folder):
    CliRunner().invoke(main, ["bench", str(folder / "onnx-fp32.onnx"), "--seq-len", "8", *FAST])
    doc = json.loads((folder / "bench" / "onnx-fp32-x86-cpu-seq8.json").read_text())
    assert ondevice.validate(doc) == []
    assert ondevice.validate({k: v for k, v in doc.items() if k != "facts"}) == ["$.facts: missing"]
    broken = {**doc, "latency_ms": {**doc["latency_ms"], "p99_ms": 0.0}}
    assert ondevice.validate(broken) == ["$.latency_ms: expected 0 < min <= p50 <= p90 <= p99"]
    assert ondevice.validate({**doc, "where": "cloud"}) == ["$.where: expected one of host, device, got 'cloud'"]


# --- the tasks' own inputs and outputs ----------------------------------------------------------

TASK_BODY = """export:
  seq_len: {seq_len}
  targets:
    - {{format: tflite, precision: fp32, shapes: static}}
    - {{format: onnx, precision: fp32}}
    - {{format: openvino, precision: fp32}}
evaluation: {{split: test}}
"""


@pytest.fixture(scope="module")
def ner_export(tmp_path_factory):
    """The toy tagger's export: static [1, 16] tflite, dynamic onnx and openvino (7 IOB2 tags)."""
    folder = write_ner_task(tmp_path_factory.mktemp("ner"))
    return export_task(write_ner_recipe(folder, TASK_BODY.format(seq_len=NER_MAX_LENGTH)), folder / "out")


@pytest.fixture(scope="module")
def qa_export(tmp_path_factory):
    """The toy QA model's export: static [1, 136] tflite, dynamic onnx and openvino."""
    folder = write_qa_task(tmp_path_factory.mktemp("qa"))
    return export_task(write_qa_recipe(folder, TASK_BODY.format(seq_len=QA_MAX_LENGTH)), folder / "out")


def _edit(folder: Path, change) -> None:
    manifest = json.loads((folder / "edgekit.json").read_text())
    change(manifest)
    (folder / "edgekit.json").write_text(json.dumps(manifest))


def test_a_tagger_runs_on_its_conll_sentences_and_returns_logits_per_token(ner_export, tmp_path):
    from edgekit.models import TextTokenizer

    folder = Path(shutil.copytree(ner_export, tmp_path / "out"))
    sentences = []
    for block in (ner_export.parent / "test.txt").read_text().split("\n\n"):
        words = [line.split()[0] for line in block.splitlines() if line and not line.startswith("-DOCSTART-")]
        sentences += [" ".join(words)] if words else []
    counts = TextTokenizer(folder).lengths(sentences, NER_MAX_LENGTH)
    proc, imported = _script([str(folder), "--threads", "1", "--json", str(folder / "d.json"), *FAST],
                             hide=("tokenizers",))
    assert proc.returncode == 0 and imported == [], proc.stderr
    doc = json.loads((folder / "d.json").read_text())
    assert ondevice.validate(doc) == [] and len(doc["results"]) == 3 and len(sentences) == 12
    for r in doc["results"]:
        assert (r["status"], r["task"], r["inputs"]["pairs"]) == ("ok", "token-classification", False)
        assert r["inputs"]["source"] == "test.txt (12 texts) tokenized by built-in WordPiece (tokenizer.json)"
        assert r["inputs"]["tokens_mean"] == round(np.mean(counts), 2)
        assert r["outputs"] == [{"name": "logits", "shape": [1, counts[0], len(NER_TAGS)]}]
    result = CliRunner().invoke(main, ["bench", str(folder), "--seq-len", "12", "--threads", "1", *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads((folder / "bench" / "all-x86-cpu-seq12.json").read_text())
    assert ondevice.validate(doc) == [] and "outputs (first input): logits [1, 12, 7]" in result.output
    assert [r["outputs"] for r in doc["results"]] == [[{"name": "logits", "shape": [1, 12, 7]}]] * 3


def test_question_answering_runs_on_question_context_pairs_with_the_context_as_token_type_1(qa_export, tmp_path):
    from tokenizers import Tokenizer, __version__

    folder = Path(shutil.copytree(qa_export, tmp_path / "out"))
    squad = json.loads((qa_export.parent / "squad.json").read_text())
    pairs = [(qa["question"], p["context"]) for p in squad["data"][3]["paragraphs"] for qa in p["qas"]]  # test split
    backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    backend.enable_truncation(QA_MAX_LENGTH)
    encodings = [backend.encode(q, c) for q, c in pairs]
    manifest = ondevice.read_manifest(folder)
    samples, info = ondevice.make_inputs(folder, manifest, "natural", ondevice.natural_texts(manifest, folder),
                                         ondevice.load_tokenizer(folder))
    library = f"tokenizers {__version__} (tokenizer.json)"
    assert info["pairs"] and info["source"] == f"squad.json (6 question/context pairs) tokenized by {library}"
    assert [s["input_ids"].tolist() for s in samples] == [[e.ids] for e in encodings]
    assert [s["token_type_ids"].tolist() for s in samples] == [[e.type_ids] for e in encodings]
    question = len(backend.encode(pairs[0][0], add_special_tokens=False).ids)
    length = len(encodings[0].ids)
    assert samples[0]["token_type_ids"][0].tolist() == [0] * (question + 2) + [1] * (length - question - 2)
    proc, imported = _script([str(folder), "--threads", "1", "--json", str(folder / "d.json"), *FAST],
                             hide=("tokenizers",))
    assert proc.returncode == 0 and imported == [], proc.stderr
    doc = json.loads((folder / "d.json").read_text())
    assert ondevice.validate(doc) == []
    for r in doc["results"]:
        assert (r["status"], r["task"], r["inputs"]["pairs"]) == ("ok", "question-answering", True)
        assert r["inputs"]["tokens_mean"] == round(np.mean([len(e.ids) for e in encodings]), 2)
        assert r["outputs"] == [{"name": "start_logits", "shape": [1, length]},
                                {"name": "end_logits", "shape": [1, length]}]
    texts = tmp_path / "pairs.tsv"
    texts.write_text("question\tcontext\nwho was at the cafe\tbob was at the cafe .\nwhere\tin paris !\n")
    proc, _ = _script([str(folder / "onnx-fp32.onnx"), "--texts", str(texts), "--threads", "1",
                       "--json", str(folder / "t.json"), *FAST])
    assert proc.returncode == 0, proc.stderr
    inputs = json.loads((folder / "t.json").read_text())["inputs"]
    counts = [len(backend.encode(q, c).ids) for q, c in (("who was at the cafe", "bob was at the cafe ."),
                                                          ("where", "in paris !"))]
    assert inputs["source"] == f"pairs.tsv (2 question/context pairs) tokenized by {library}"
    assert (inputs["tokens_min"], inputs["tokens_max"]) == (min(counts), max(counts))
    result = CliRunner().invoke(main, ["bench", str(folder), "--seq-len", "40", "--threads", "1", *FAST])
    assert result.exit_code == 0, result.output
    doc = json.loads((folder / "bench" / "all-x86-cpu-seq40.json").read_text())
    assert ondevice.validate(doc) == [] and [r["inputs"]["source"] for r in doc["results"]] == [
        f"squad.json (its first question, every context) tokenized by {library}, first 40 tokens"] * 3
    assert [r["outputs"] for r in doc["results"]] == [[{"name": "start_logits", "shape": [1, 40]},
                                                       {"name": "end_logits", "shape": [1, 40]}]] * 3


@pytest.mark.parametrize("lines, problem", [
    ("who was there\n", ":1: 1 tab-separated column (expected question<TAB>context)"),
    ("a\tb\tc\n", ":1: 3 tab-separated columns (expected question<TAB>context)"),
    ("question\tcontext\nwho\tbob\n\nwhere\t \n", ":4: empty context (expected question<TAB>context)"),
    ("\twhere bob was\n", ":1: empty question (expected question<TAB>context)"),
    ("question\tcontext\n", ": no question<TAB>context lines"),
])
def test_question_answering_texts_are_question_tab_context_lines(qa_export, tmp_path, lines, problem):
    path = tmp_path / "pairs.tsv"
    path.write_text(lines)
    proc, _ = _script([str(qa_export / "onnx-fp32.onnx"), "--texts", str(path), "--json", str(tmp_path / "r.json")])
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: {path}{problem}"


def test_question_answering_without_its_squad_file_asks_for_pairs(qa_export, tmp_path):
    folder = Path(shutil.copytree(qa_export, tmp_path / "out"))
    _edit(folder, lambda m: m["recipe"]["data"].update(test="/gone/squad.json"))
    message = ("question-answering needs question/context pairs and the export's evaluation file (/gone/squad.json) "
               "is not here; pass --texts FILE of question<TAB>context lines (the on-device script)")
    proc, _ = _script([str(folder), "--seq-len", "16"])
    assert proc.returncode == 1 and proc.stderr.strip() == f"error: {message}"
    result = CliRunner().invoke(main, ["bench", str(folder), *FAST])
    assert result.exit_code == 1 and result.output.strip() == f"Error: {message}"


def test_outputs_other_than_the_manifests_fail_the_artifact_naming_both(qa_export, export, tmp_path):
    folder = Path(shutil.copytree(qa_export, tmp_path / "qa"))
    _edit(folder, lambda m: m["outputs"][0].update(name="begin_logits"))
    proc, _ = _script([str(folder), "--seq-len", "8", "--threads", "1", *FAST])
    assert proc.returncode == 1 and ("onnx-fp32.onnx: failed: ValueError: onnx-fp32.onnx has outputs end_logits, "
                                     "start_logits; edgekit.json names begin_logits, end_logits") in proc.stderr
    result = CliRunner().invoke(main, ["bench", str(folder / "onnx-fp32.onnx"), "--seq-len", "8", *FAST])
    assert result.exit_code == 1 and result.output.strip() == (
        "Error: onnx-fp32.onnx: ValueError: the artifact returned end_logits, start_logits; edgekit.json lists "
        "begin_logits, end_logits")
    folder = Path(shutil.copytree(export[1], tmp_path / "cls"))
    _edit(folder, lambda m: m["outputs"][0].update(shape=["batch", 5]))
    wrong = "output logits has shape [1, 3], expected [1, 5] (edgekit.json: ['batch', 5] for 8 tokens)"
    proc, _ = _script([str(folder / "onnx-fp32.onnx"), "--seq-len", "8", "--threads", "1", *FAST])
    assert proc.returncode == 1 and f"onnx-fp32.onnx: failed: ValueError: {wrong}" in proc.stderr
    result = CliRunner().invoke(main, ["bench", str(folder / "onnx-fp32.onnx"), "--seq-len", "8", *FAST])
    assert result.exit_code == 1 and result.output.strip() == f"Error: onnx-fp32.onnx: ValueError: {wrong}"


@pytest.mark.parametrize("a, b, room, kept", [
    (3, 4, 8, (3, 4)), (10, 3, 8, (5, 3)), (3, 10, 8, (3, 5)), (1, 20, 8, (1, 7)), (6, 6, 7, (3, 4)),
    (9, 6, 7, (4, 3)), (5, 9, 8, (4, 4)), (4, 4, 0, (0, 0)),
])
def test_pairs_are_truncated_longest_first(a, b, room, kept):
    assert ondevice.longest_first(a, b, room) == kept
