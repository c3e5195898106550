"""demo_app's commands as a user runs them (``python -I demo_app ...``) on tiny exports written by
`edgekit export`: classify, embed, nearest, ner and answer (arguments, stdin, --json, notes on
truncation, windows and cut questions), user errors in one line, files changed after the
export refused, never importing TensorFlow or edgekit, and the app copied with ``cp -rL`` (its
shared decoders are symlinks)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from demo_exports import (DEMO, FORBIDDEN, LONG, LONG_NER, NER_TEXTS, QA_CONTEXT, TEXTS, app, imported_modules,
                          one_line_error)


def test_classify_command_isolated_from_tensorflow_and_edgekit(cls_export):
    from demo_app.model import DemoModel

    result = app("classify", cls_export, *TEXTS, "--json", importtime=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    model = DemoModel.load(cls_export)
    assert [r["label"] for r in rows] == [model.classify(t).label for t in TEXTS]
    assert {r["artifact"] for r in rows} == {"tflite-fp32.tflite"} and rows[0]["runtime"].startswith("ai-edge-litert")
    modules = imported_modules(result.stderr)
    assert {"ai_edge_litert", "tokenizers", "numpy", "demo_app"} <= modules  # the log is read correctly
    assert not modules & FORBIDDEN, sorted(modules & FORBIDDEN)


def test_classify_reads_stdin_and_notes_truncation(cls_export):
    from demo_app.model import DemoModel

    result = app("classify", cls_export, "--artifact", "onnx-fp32", stdin="\n".join(TEXTS + ["", LONG]) + "\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(TEXTS) + 1  # the blank line is skipped
    model = DemoModel.load(cls_export, "onnx-fp32")
    for line, text in zip(lines, TEXTS + [LONG]):
        label, prob, latency, shown = line.split("\t")
        p = model.classify(text)
        assert label == p.label and abs(float(prob) - p.probabilities[label]) < 5e-4
        assert re.fullmatch(r"\d+\.\d\d ms", latency) and shown.startswith(text)
    assert lines[-1].endswith("[truncated to 16 of 33 tokens]") and "truncated" not in lines[0]
    labels = app("classify", cls_export, "--labels-only", *TEXTS)
    assert labels.stdout.split("\n")[:-1] == [model.classify(t).label for t in TEXTS]


def test_embed_and_nearest_on_an_encoder_export(enc_export, tmp_path):
    from edgekit.export.tflite import load
    from edgekit.models import TextTokenizer

    result = app("embed", enc_export, "--json", "bad cafe", "the movie was great")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    enc = TextTokenizer(enc_export).encode(["bad cafe"], 16)
    runner = load(enc_export / "tflite-fp32.tflite")
    expected = runner({n: enc[n] for n in runner.input_names})["embedding"][0]
    assert len(rows[0]["embedding"]) == 32
    np.testing.assert_allclose(rows[0]["embedding"], expected, atol=1e-5)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the movie was great\nbad cafe\n\n, , the\ngood good good\n")
    result = app("nearest", enc_export, "--corpus", corpus, "-k", "2", "bad cafe", "the movie was great")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "bad cafe" and lines[1] == "  1.000\tbad cafe" and lines[3] == "the movie was great"
    assert lines[4] == "  1.000\tthe movie was great" and len(lines) == 6
    assert float(lines[2].split("\t")[0]) < 1.0


def test_user_errors_are_one_line(cls_export, enc_export, tmp_path):
    assert one_line_error(app("classify", tmp_path / "nope", "x")) == \
        f"demo_app: {tmp_path / 'nope'}: no edgekit.json (expected a folder written by `edgekit export`)"
    (tmp_path / "edgekit.json").write_text("{")
    assert "edgekit.json: not valid JSON" in one_line_error(app("classify", tmp_path, "x"))
    (tmp_path / "edgekit.json").write_text(json.dumps({"task": "text-classification", "labels": ["a", "b"]}))
    assert one_line_error(app("classify", tmp_path, "x")).endswith(
        "edgekit.json: edgekit_manifest: missing (is this a folder written by `edgekit export`?)")
    from demo_app.exportdir import AppError, read_export

    manifest = json.loads((cls_export / "edgekit.json").read_text())
    for key, value, message in [
            ("edgekit_manifest", 4, "edgekit_manifest 4 was written by a newer edgekit (this app reads 3)"),
            ("edgekit_manifest", 2, "edgekit_manifest 2 was written by an older edgekit (this app reads 3); "
                                    "re-export the folder"),
            ("task", "translation", "task: expected one of text-classification, feature-extraction, "
                                    "token-classification, question-answering, got 'translation'"),
            ("outputs", None, "outputs: missing"),
            ("outputs", [{"name": "embedding"}], 'outputs: expected objects named logits for a text-classification '
                                                 'export, e.g. {"name": "logits"}'),
            ("task", "token-classification", "labels: expected IOB2 tags (O, B-TYPE, I-TYPE), got 'negative'"),
            ("inputs", ["input_ids"], 'inputs: expected objects with a name, e.g. {"name": "input_ids"}'),
            ("tokenizer", ["../vocab.txt"], "tokenizer: expected a file name inside the export folder, got '../"),
            ("artifacts", [{"format": "onnx", "path": "onnx-fp32.onnx", "files": "onnx-fp32.onnx"}],
             "artifacts[0].files: expected list, got str"),
            ("digests", None, "digests: missing")]:
        changed = {**manifest, key: value}
        if value is None:
            del changed[key]
        (tmp_path / "edgekit.json").write_text(json.dumps(changed))
        with pytest.raises(AppError) as err:
            read_export(tmp_path)
        assert f"edgekit.json: {message}" in str(err.value)
    assert one_line_error(app("classify", cls_export, "--artifact", "coreml-fp16", "x")).endswith(
        "no artifact 'coreml-fp16' (expected one of: tflite-fp32, tflite-int8-dynamic, onnx-fp32, openvino-fp32, "
        "tflite-int8-full)")
    assert "no text given" in one_line_error(app("classify", cls_export, stdin=""))
    assert one_line_error(app("classify", enc_export, "x")) == \
        f"demo_app: {enc_export}: a feature-extraction export does not classify texts (use embed or nearest)"
    assert one_line_error(app("embed", cls_export, "x")) == \
        f"demo_app: {cls_export}: a text-classification export gives no embeddings (use classify)"
    assert "cannot read it" in one_line_error(app("nearest", enc_export, "--corpus", tmp_path / "none.txt", "x"))
    assert one_line_error(app("serve", enc_export)).endswith(
        "the page classifies, tags entities or answers questions; a feature-extraction export does none of those "
        "(use the embed or nearest commands)")


def test_files_changed_after_the_export_are_refused(cls_export, tmp_path):
    """What a command loads (the artifact's files, the tokenizer files, labels.txt) is checked
    against the manifest's digests; --no-verify skips that."""
    from demo_app.exportdir import AppError
    from demo_app.model import DemoModel

    folder = tmp_path / "export"
    shutil.copytree(cls_export, folder)
    fix = "re-export, or pass --no-verify"

    def refused(artifact: str) -> str:
        with pytest.raises(AppError) as err:
            DemoModel.load(folder, artifact)
        return str(err.value)

    weights = folder / "openvino-fp32.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only the sha256 tells
    weights.write_bytes(bytes(data))
    assert refused("openvino-fp32") == f"{weights}: sha256 does not match edgekit.json (changed after export; {fix})"
    assert one_line_error(app("classify", folder, "--artifact", "openvino-fp32", "x")) == \
        f"demo_app: {weights}: sha256 does not match edgekit.json (changed after export; {fix})"
    unchecked = app("classify", folder, "--artifact", "openvino-fp32", "--no-verify", "x")
    assert unchecked.returncode == 0 and unchecked.stdout.endswith("\tx\n")
    assert "demo_app: files NOT verified (--no-verify)" in unchecked.stderr
    assert DemoModel.load(folder, "tflite-fp32").classify(TEXTS[0]).label  # another artifact: not loaded, not hashed
    shutil.copy(cls_export / weights.name, weights)
    with (folder / "labels.txt").open("a") as f:
        f.write("extra\n")
    assert refused("tflite-fp32") == f"{folder / 'labels.txt'}: sha256 does not match edgekit.json " \
                                     f"(changed after export; {fix})"
    shutil.copy(cls_export / "labels.txt", folder / "labels.txt")
    (folder / "tokenizer_config.json").unlink()
    assert refused("onnx-fp32") == f"{folder / 'tokenizer_config.json'}: missing (listed in edgekit.json; {fix})"
    shutil.copy(cls_export / "tokenizer_config.json", folder / "tokenizer_config.json")
    manifest = json.loads((folder / "edgekit.json").read_text())
    del manifest["digests"]["vocab.txt"]
    (folder / "edgekit.json").write_text(json.dumps(manifest))
    assert refused("onnx-fp32") == f"{folder / 'vocab.txt'}: has no digest in edgekit.json " \
                                   f"(a manifest edited by hand? {fix})"


def test_a_broken_artifact_with_matching_digests_is_one_line_with_the_runtimes_reason(cls_export, tmp_path):
    """Truncated weights whose digest was updated too pass verification; OpenVINO's refusal opens
    with a source location (``Exception from src/...:84:``): the line after it is the reason."""
    from demo_app.exportdir import AppError
    from demo_app.model import DemoModel

    folder = tmp_path / "export"
    shutil.copytree(cls_export, folder)
    weights = folder / "openvino-fp32.bin"
    weights.write_bytes(weights.read_bytes()[:1000])
    manifest = json.loads((folder / "edgekit.json").read_text())
    manifest["digests"][weights.name] = {"bytes": 1000, "sha256": hashlib.sha256(weights.read_bytes()).hexdigest()}
    (folder / "edgekit.json").write_text(json.dumps(manifest))
    with pytest.raises(AppError) as err:
        DemoModel.load(folder, "openvino-fp32")
    prefix = f"{folder / 'openvino-fp32.xml'}: OpenVINO could not load it: "
    assert str(err.value).startswith(prefix) and "Exception from" not in str(err.value)
    assert len(str(err.value)) > len(prefix) + 10 and "\n" not in str(err.value)



def test_ner_command_json_plain_stdin_and_isolation(ner_exp):
    from demo_app.model import DemoModel

    model = DemoModel.load(ner_exp)
    result = app("ner", ner_exp, *NER_TEXTS, LONG_NER, "--json", importtime=True)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    for row, text in zip(rows, NER_TEXTS + [LONG_NER]):
        expected = model.entities(text)
        assert row["text"] == text and row["entities"] == expected.entities and row["windows"] == expected.windows
        assert row["artifact"] == "tflite-fp32.tflite" and row["tokens"] == expected.tokens
    assert {"type": "PER", "text": "bob zed", "start": 0, "end": 7} == {k: rows[0]["entities"][0][k] for k in
                                                                        ("type", "text", "start", "end")}
    assert rows[2]["entities"] == [] and rows[3]["windows"] == 4 and rows[3]["tokens"] == 50
    assert [e["text"] for e in rows[3]["entities"] if e["type"] == "PER"] == ["ann zed"] * 4
    modules = imported_modules(result.stderr)
    assert {"ai_edge_litert", "tokenizers", "numpy", "demo_app"} <= modules and not modules & FORBIDDEN
    plain = app("ner", ner_exp, "--artifact", "onnx-fp32", stdin="\n".join([NER_TEXTS[0], "", LONG_NER]) + "\n")
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert re.fullmatch(r"bob zed was at the cafe\t\d+\.\d\d ms", lines[0])
    assert lines[1] == f"  PER\t{rows[0]['entities'][0]['score']:.3f}\t0-7\tbob zed"
    long = next(i for i, line in enumerate(lines) if line.startswith(LONG_NER))
    assert lines[long].endswith("ms  [4 windows of at most 16 tokens]")
    assert len(lines) == 2 + len(rows[0]["entities"]) + len(rows[3]["entities"])


def test_answer_command_context_stdin_cut_questions_and_errors(qa_exp, ner_exp, cls_export):
    from demo_app.model import DemoModel

    model = DemoModel.load(qa_exp)
    context = QA_CONTEXT
    long_question = "was the movie good or bad ? the cafe was great"  # 12 tokens; max_query is 32 // 4 = 8
    result = app("answer", qa_exp, "--context", context, "what was it ?", long_question, "--json")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    first = model.answer("what was it ?", context)
    assert rows[0]["answer"] == "terrible" == first.answer and (rows[0]["start"], rows[0]["end"]) == (49, 57)
    assert rows[0]["windows"] == first.windows == 2 and rows[0]["score"] == first.score
    assert (rows[1]["question_tokens"], rows[1]["question_kept"]) == (12, 8)
    pairs = f"what was it ?\t{context}\n\nwhat was it ?\tthe cafe was good\n"
    plain = app("answer", qa_exp, "--artifact", "openvino-fp32", stdin=pairs)
    assert plain.returncode == 0, plain.stderr
    lines = plain.stdout.splitlines()
    assert re.fullmatch(r"terrible\t-?\d+\.\d{3}\t49-57\t\d+\.\d\d ms\twhat was it \?  "
                        r"\[2 windows of at most 32 tokens\]", lines[0])
    assert lines[1].startswith("good\t") and len(lines) == 2
    cut = app("answer", qa_exp, "--context", context, long_question)
    assert cut.stdout.rstrip().endswith(f"{long_question}  [question cut to 8 of 12 tokens]  "
                                        "[2 windows of at most 32 tokens]")
    assert one_line_error(app("answer", qa_exp, stdin="what was it ?\tgood\nno tab here\n")) == \
        "demo_app: stdin:2: expected question<TAB>context, got 'no tab here'"
    assert one_line_error(app("answer", qa_exp, "what was it ?")) == \
        "demo_app: QUESTION arguments need --context TEXT (or give question<TAB>context lines on stdin)"
    assert one_line_error(app("answer", qa_exp, "--context", " ", "q")) == \
        "demo_app: --context: expected a non-empty text"
    assert one_line_error(app("answer", cls_export, "--context", "a", "q")) == \
        f"demo_app: {cls_export}: a text-classification export does not answer questions (use classify)"
    assert one_line_error(app("ner", qa_exp, "x")) == \
        f"demo_app: {qa_exp}: a question-answering export does not tag entities (use answer)"
    assert one_line_error(app("classify", ner_exp, "x")) == \
        f"demo_app: {ner_exp}: a token-classification export does not classify texts (use ner)"


def test_shared_decoders_are_symlinks_and_a_cp_rL_copy_runs_alone(ner_exp, tmp_path):
    """demo_app/entities.py and answers.py are edgekit's on-device decoders themselves; ``cp -rL``
    (how the app goes to a Pi) turns them into plain files and the copy gives the same answers."""
    for name in ("entities.py", "answers.py"):
        link = DEMO / name
        assert link.is_symlink() and link.resolve() == REPO / "edgekit" / "ondevice" / name
    subprocess.run(["cp", "-rL", str(DEMO), str(tmp_path / "demo_app")], check=True)
    copy = tmp_path / "demo_app"
    assert not any(p.is_symlink() for p in copy.rglob("*"))
    assert (copy / "entities.py").read_bytes() == (REPO / "edgekit" / "ondevice" / "entities.py").read_bytes()
    copied = subprocess.run([sys.executable, "-I", str(copy), "ner", str(ner_exp), "--json", *NER_TEXTS],
                            capture_output=True, text=True, timeout=300, cwd="/")
    assert copied.returncode == 0, copied.stderr
    here = app("ner", ner_exp, "--json", *NER_TEXTS)
    strip = lambda out: [{k: v for k, v in json.loads(line).items() if k != "model_ms"} for line in out.splitlines()]
    assert strip(copied.stdout) == strip(here.stdout)

