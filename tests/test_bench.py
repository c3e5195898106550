"""`edgekit bench`, the on-device script and --compare, on a tiny exported classifier (static
[1, 16] tflite fp32, dynamic onnx fp32).

The script runs in a subprocess with ``python -I`` and must not import TensorFlow or edgekit;
its JSON must validate against the schema ``edgekit bench`` writes. Absent devices are
one-line errors; --on-host labels every figure; a folder run updates edgekit.json.
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
    assert len(ondevice.read_texts(tmp_path / "dev" / "english-eval.tsv")) == 48


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
