"""benchmarks/task_latency.py on a toy classifier export (static [1, 16] tflite, dynamic onnx and
openvino, fp32), given under two task names: one JSON row per artifact of each, measured on the
export's own test texts at the tokenizer's counts, and one markdown table."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from toy_data import THREE_RUNTIMES, toy_export

ARTIFACTS = ["tflite-fp32.tflite", "onnx-fp32.onnx", "openvino-fp32.xml"]


def _script():
    spec = importlib.util.spec_from_file_location("task_latency", REPO / "benchmarks" / "task_latency.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return toy_export(tmp_path_factory, THREE_RUNTIMES)


def test_every_artifact_of_each_export_is_measured_on_its_own_texts(export, tmp_path, capsys):
    from edgekit.bench.cpu import cpu_flags, cpu_line
    from edgekit.models import TextTokenizer

    toy, out = export
    texts = [line.split("\t")[0] for line in (toy / "test.tsv").read_text().splitlines()[1:]]
    counts = TextTokenizer(out).lengths(texts, 16)
    a, b = (Path(shutil.copytree(out, tmp_path / name)) for name in ("a", "b"))  # bench rewrites edgekit.json
    target = tmp_path / "latency.json"
    assert _script().main(["--export", f"sst2={a}", "--export", f"other={b}", "--threads", "1",
                           "--min-runs", "12", "--min-seconds", "0.05", "--json", str(target)]) == 0
    doc = json.loads(target.read_text())
    assert (doc["benchmark"], doc["device"], doc["threads"]) == ("task_latency", "x86-cpu", 1)
    assert doc["exports"] == {"sst2": str(a), "other": str(b)}
    rows = doc["rows"]
    assert [(r["name"], r["artifact"]) for r in rows] == [(n, p) for n in ("sst2", "other") for p in ARTIFACTS]
    assert len(texts) == 12 and len(set(counts)) > 1  # natural length: the texts differ in length
    for r in rows:
        assert (r["status"], r["task"], r["samples"]) == ("ok", "text-classification", 12)
        assert r["inputs"].startswith("test.tsv (12 texts)")
        assert r["tokens_p50"] == float(np.median(counts)) and r["tokens_mean"] == round(np.mean(counts), 2)
        assert (r["tokens_min"], r["tokens_max"]) == (min(counts), max(counts))
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] and r["load_ms"] > 0 and r["runs"] >= 12
    printed = capsys.readouterr().out.splitlines()
    cpu = [i for i, line in enumerate(printed) if line.startswith("CPU: ")]
    table = [line for line in printed[cpu[0]:] if line.startswith("| ")]
    assert len(cpu) == 1 and printed[cpu[0]] == cpu_line(doc["cpu_flags"]) and doc["cpu_flags"] == cpu_flags()
    assert table[0] == "| task | artifact | tokens p50 | p50 ms | p90 ms | load ms |" and len(table) == 1 + 6
    assert table[1].startswith(f"| sst2 | tflite-fp32.tflite (static) | {np.median(counts):g} | ")


def test_a_folder_without_a_manifest_is_one_line_naming_it(tmp_path, capsys):
    target = tmp_path / "latency.json"
    assert _script().main(["--export", f"ner={tmp_path}", "--json", str(target)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"task_latency: --export ner={tmp_path}: ") and "no edgekit.json" in err
    assert "\n" not in err and not target.exists()


def test_cpu_flags_come_from_the_x86_flags_line(tmp_path):
    from edgekit.bench.cpu import ISA_FLAGS, cpu_flags, cpu_line

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 avx512f avx_vnni\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"avx2": True, "avx512f": True, "avx512_vnni": False, "avx_vnni": True,
                               "amx_int8": False}
    assert cpu_line(cpu_flags(info)).endswith("— avx2 yes, avx512f yes, avx512_vnni no, avx_vnni yes, amx_int8 no")
    info.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")  # an Arm board: no x86 flags line
    assert cpu_flags(info) is None and cpu_flags(tmp_path / "absent") is None and len(ISA_FLAGS) == 5
    assert cpu_line(None).endswith("flags unknown (no x86 flags line in /proc/cpuinfo)")
