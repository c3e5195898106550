"""demo_app on tiny exports written by `edgekit export`: the same numbers as edgekit's own
runners for every artifact, entities and answers that score exactly what the export measured,
the command line, files changed after the export refused, the web API's limits, errors and
stalled clients, the app copied with ``cp -rL`` (its shared decoders are symlinks), and that it
(run with ``python -I``) never imports TensorFlow or edgekit."""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO
from demo_exports import DemoServer, classifier_export, encoder_export, imported_modules, ner_export, qa_export

DEMO = REPO / "demo_app"
TEXTS = ["the movie was great", "bad terrible cafe", "good , the cafe !", "the movie was bad ."]
LONG = " ".join(["the"] * 30 + ["good"])  # 31 words -> 33 tokens with [CLS]/[SEP]; max_length is 16
FORBIDDEN = {"tensorflow", "tf_keras", "keras", "edgekit", "torch", "tflite_runtime"}


@pytest.fixture(scope="module")
def cls_export(tmp_path_factory):
    return classifier_export(tmp_path_factory)


@pytest.fixture(scope="module")
def enc_export(tmp_path_factory):
    return encoder_export(tmp_path_factory)


@pytest.fixture(scope="module")
def ner_exp(tmp_path_factory):
    return ner_export(tmp_path_factory)


@pytest.fixture(scope="module")
def qa_exp(tmp_path_factory):
    return qa_export(tmp_path_factory)


def app(*args, stdin: str | None = None, importtime: bool = False) -> subprocess.CompletedProcess:
    """The demo app as a user runs it: ``python -I demo_app ...`` (no PYTHONPATH, no cwd on sys.path)."""
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, "-I", *flags, str(DEMO), *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=300, cwd="/")


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("demo_app: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_every_artifact_answers_like_edgekits_runner(cls_export):
    from demo_app.model import DemoModel
    from edgekit.models import TextTokenizer

    manifest = json.loads((cls_export / "edgekit.json").read_text())
    tokenizer = TextTokenizer(cls_export)
    labels = set()
    for row in manifest["artifacts"]:
        model = DemoModel.load(cls_export, row["path"])
        runner = importlib.import_module(f"edgekit.export.{row['format']}").load(cls_export / row["path"], 1)
        for text in TEXTS + [LONG]:
            enc = tokenizer.encode([text], manifest["max_length"])
            expected = runner({n: enc[n] for n in runner.input_names})["logits"][0]
            p = model.classify(text)
            np.testing.assert_allclose(p.answer.output, expected, atol=1e-5, err_msg=f"{row['path']}: {text}")
            assert p.label == manifest["labels"][int(expected.argmax())]
            assert abs(sum(p.probabilities.values()) - 1) < 1e-9
            assert p.probabilities[p.label] == max(p.probabilities.values())
            labels.add(p.label)
    assert len(labels) >= 2  # the random model does tell these texts apart
    assert DemoModel.load(cls_export).artifact.key == "tflite-fp32"  # default: first passing TFLite artifact


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
        "no artifact 'coreml-fp16' (expected one of: tflite-fp32, tflite-int8-dynamic, onnx-fp32, openvino-fp32, tflite-int8-full)")
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


# ------------------------------------------------------------------------------------------ web API

TIMEOUT = 3  # seconds the test server lets a client stall mid-request


@pytest.fixture(scope="module")
def server(cls_export, tmp_path_factory):
    log = tmp_path_factory.mktemp("demo-server") / "stderr.log"
    running = DemoServer(cls_export, log, "--timeout", str(TIMEOUT))
    yield running
    running.stop()


def post(server, doc) -> tuple[int, dict]:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    status, headers, data = server.request("POST", "/api/classify", body, {"Content-Type": "application/json"})
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(data)


def test_server_binds_loopback_and_serves_the_page(server):
    assert server.host == "127.0.0.1"
    status, headers, page = server.request("GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b'<textarea id="text"' in page and b'src="/page.js"' in page
    status, headers, script = server.request("GET", "/page.js")
    assert status == 200 and b"/api/classify" in script and "default-src 'self'" in headers["Content-Security-Policy"]
    status, _, info = server.request("GET", "/api/info")
    info = json.loads(info)
    assert info["artifact"] == "tflite-fp32.tflite" and info["labels"] == ["negative", "neutral", "positive"]
    assert info["max_length"] == 16 and info["runtime"].startswith("ai-edge-litert")
    assert (info["task"], info["api"]) == ("text-classification", "/api/classify")


def test_api_classify_matches_the_runtime(server, cls_export):
    from demo_app.model import DemoModel

    model = DemoModel.load(cls_export)
    for text in TEXTS:
        status, answer = post(server, {"text": text})
        expected = model.classify(text)
        assert status == 200 and answer["label"] == expected.label
        assert answer["probabilities"] == pytest.approx(expected.probabilities, abs=1e-9)
        assert answer["truncated"] is False and answer["note"] is None and answer["tokens"] == answer["text_tokens"]
        assert 0 < answer["model_ms"] <= answer["total_ms"]
    for text in ["café ☃ 日本 \U0001f600", "a\u0000b\u200b"]:  # any valid Unicode is a text
        status, answer = post(server, {"text": text})
        assert status == 200 and answer["label"] == model.classify(text).label
    status, answer = post(server, {"text": LONG})
    assert status == 200 and answer["truncated"] is True and (answer["tokens"], answer["text_tokens"]) == (16, 33)
    assert answer["note"] == "The text has 33 tokens; the model read the first 16 (its sequence length is 16)."
    assert answer["label"] == model.classify(LONG).label


def test_oversized_body_is_413_and_the_server_keeps_serving(server):
    from demo_app.server import MAX_BODY

    status, answer = post(server, json.dumps({"text": "a" * MAX_BODY}).encode())
    assert status == 413
    assert answer == {"error": f"request body {MAX_BODY + 12} bytes is over the {MAX_BODY}-byte limit"}
    status, answer = post(server, {"text": "the movie was great " * 700})  # under the limit: truncated, answered
    assert status == 200 and answer["truncated"] is True


EXAMPLE = '{"text": "a fine film"}'


@pytest.mark.parametrize("method, path, body, headers, status, message", [
    ("POST", "/api/classify", b"{not json", {}, 400, f"expected a JSON body like {EXAMPLE}"),
    ("POST", "/api/classify", b"\xff\xfe", {}, 400, "expected a JSON body"),
    ("POST", "/api/classify", b'{"text": ' + b"[" * 5000 + b"]" * 5000 + b"}", {}, 400, "expected a JSON body"),
    ("POST", "/api/classify", b'["text"]', {}, 400, f"expected a JSON object like {EXAMPLE}, got an array"),
    ("POST", "/api/classify", b"3", {}, 400, "expected a JSON object like"),
    ("POST", "/api/classify", b"null", {}, 400, "expected a JSON object like"),
    ("POST", "/api/classify", b'"a fine film"', {}, 400, "expected a JSON object like"),
    ("POST", "/api/classify", b"{}", {}, 400, f"text: missing, e.g. {EXAMPLE}"),
    ("POST", "/api/classify", b'{"text": ""}', {}, 400, "text: expected a non-empty string, got a blank one"),
    ("POST", "/api/classify", b'{"text": " \\n "}', {}, 400, "text: expected a non-empty string, got a blank one"),
    ("POST", "/api/classify", b'{"text": null}', {}, 400, "text: expected a non-empty string, got null"),
    ("POST", "/api/classify", b'{"text": [1, 2]}', {}, 400, "text: expected a non-empty string, got an array"),
    ("POST", "/api/classify", b'{"text": {"a": 1}}', {}, 400, "text: expected a non-empty string, got an object"),
    ("POST", "/api/classify", b'{"text": 1e999}', {}, 400, "text: expected a non-empty string, got a number"),
    ("POST", "/api/classify", b'{"text": "\\ud800"}', {}, 400, "text: not valid Unicode (a lone surrogate"),
    ("POST", "/api/classify", b'{"texts": ["a"]}', {}, 400, "texts: unknown field (expected only text"),
    ("POST", "/api/classify", b'{"text": "a", "k": 99999999999999999999}', {}, 400, "k: unknown field"),
    ("POST", "/api/classify", b"{}", {"Content-Length": "x"}, 411, "Content-Length header required"),
    ("GET", "/api/classify", None, {}, 405, "GET /api/classify: not allowed (use POST /api/classify with a JSON"),
    ("GET", "/etc/passwd", None, {}, 404, "no page /etc/passwd"),
    ("POST", "/api/other", b"{}", {}, 404, "no API /api/other"),
    ("GET", "/", None, {"Host": "attacker.example"}, 403, "Host must be 127.0.0.1 or localhost"),
    ("BREW", "/", None, {}, 501, "Unsupported method ('BREW')"),
])
def test_errors_are_json_messages_without_tracebacks(server, method, path, body, headers, status, message):
    got, response_headers, data = server.request(method, path, body, headers)
    assert got == status and response_headers["Content-Type"] == "application/json"
    error = json.loads(data)["error"]
    assert error.startswith(message) and "Traceback" not in error and 'File "' not in error


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "POST", "HEAD", "GET"])
@pytest.mark.parametrize("path, allow", [("/", "GET, HEAD"), ("/api/info", "GET, HEAD"), ("/api/classify", "POST")])
def test_other_methods_get_405_with_allow(server, method, path, allow):
    status, headers, data = server.request(method, path, b"{}" if method != "HEAD" else None)
    if method in allow.split(", "):
        if method == "POST":
            assert status == 400  # allowed; the body {} has no text
        else:
            _, _, page = server.request("GET", path)
            assert status == 200 and headers["Content-Length"] == str(len(page))
            assert data == (b"" if method == "HEAD" else page)
        return
    assert status == 405 and headers["Allow"] == allow and headers["Content-Type"] == "application/json"
    if method != "HEAD":  # a HEAD answer has headers only
        assert json.loads(data)["error"].startswith(f"{method} {path}: not allowed (use ")


def raw(server, request: bytes, shut: bool = False) -> socket.socket:
    """A client socket that has sent ``request`` (and, with ``shut``, closed its sending side)."""
    client = socket.create_connection((server.host, server.port), timeout=TIMEOUT + 30)
    client.sendall(request)
    if shut:
        client.shutdown(socket.SHUT_WR)
    return client


def reply(client: socket.socket) -> bytes:
    """Everything the server sends before it closes the connection."""
    with client, client.makefile("rb") as f:
        return f.read()


def test_a_stalled_client_gets_408_and_others_are_served_meanwhile(server):
    head = b"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n"
    began = time.monotonic()
    stalled_body = raw(server, head + b'{"text"')  # promises 100 bytes, sends 7
    stalled_head = raw(server, b"POST /api/classify HTTP/1.1\r\nHost: 127")  # stops inside the headers
    for text in TEXTS:  # other clients: answered at once, not after the stalled ones
        status, answer = post(server, {"text": text})
        assert status == 200 and "label" in answer
    assert time.monotonic() - began < TIMEOUT
    answered = reply(stalled_body)
    assert TIMEOUT - 0.5 < time.monotonic() - began < TIMEOUT + 20
    status_line, _, body = answered.partition(b"\r\n")
    assert status_line == b"HTTP/1.0 408 Request Timeout"
    assert json.loads(body.split(b"\r\n\r\n", 1)[1]) == {
        "error": f"request not complete after {TIMEOUT} s of silence (a body shorter than its Content-Length?)"}
    assert reply(stalled_head) == b""  # closed: there is no request to answer yet
    short = reply(raw(server, head + b'{"text": "a"}', shut=True))  # the client closed its side early
    assert short.startswith(b"HTTP/1.0 400 ") and b"the body ended after 13 of its Content-Length 100 bytes" in short


def test_server_never_imports_tensorflow_or_edgekit(server):
    log = server.stop()
    modules = imported_modules(log)
    assert {"ai_edge_litert", "tokenizers", "http", "demo_app"} <= modules
    assert not modules & FORBIDDEN, sorted(modules & FORBIDDEN)
    assert "Traceback" not in log  # nothing failed inside the server during the tests above


# ------------------------------------------------------------------------------ NER and QA exports

def _manifest(folder) -> dict:
    return json.loads((folder / "edgekit.json").read_text())


def word_tags(text_words: list[str], entities: list[dict]) -> list[str]:
    """IOB2 tags of the words of ``" ".join(text_words)`` from entities' character offsets;
    every entity must start and end on a word boundary."""
    starts = np.cumsum([0] + [len(w) + 1 for w in text_words[:-1]])
    tags = ["O"] * len(text_words)
    for e in entities:
        inside = [i for i, (a, w) in enumerate(zip(starts, text_words)) if a >= e["start"] and a + len(w) <= e["end"]]
        assert inside, e
        first, last = inside[0], inside[-1]
        assert starts[first] == e["start"] and starts[last] + len(text_words[last]) == e["end"], e
        tags[first] = f"B-{e['type']}"
        for i in inside[1:]:
            tags[i] = f"I-{e['type']}"
    return tags


def test_entities_score_exactly_what_the_export_measured(ner_exp):
    """Every artifact, on the export's own test sentences (words joined by spaces), windows of
    16 tokens included: the entity F1 of the app's entities is the manifest's."""
    from demo_app.model import DemoModel
    from edgekit.data.conll import read_conll
    from edgekit.tasks.iob import entity_scores

    manifest = _manifest(ner_exp)
    test = read_conll(manifest["recipe"]["data"]["test"])
    gold = [[test.tag_names[t] for t in row] for row in test.tags]
    for row in manifest["artifacts"]:
        model = DemoModel.load(ner_exp, row["path"])
        predicted, windows = [], 0
        for words in test.words:
            text = " ".join(words)
            tagged = model.entities(text)
            assert all(e["text"] == text[e["start"]:e["end"]] and 0 < e["score"] <= 1 for e in tagged.entities)
            predicted.append(word_tags(list(words), tagged.entities))
            windows += tagged.windows
        assert entity_scores(gold, predicted)["f1"] == pytest.approx(row["metrics"]["f1"], abs=1e-12), row["path"]
        assert windows > len(test.words)  # some sentences needed more than one window
    assert manifest["artifacts"][0]["metrics"]["f1"] > 0.8  # the toy tagger learned its task


def test_answers_are_edgekits_answers_on_every_artifact(qa_exp):
    """Every artifact, on the export's test questions (contexts of several 32-token windows):
    the app's answers and their scores are those of edgekit's windows, runner and decoder, and
    score the manifest's F1 and exact match."""
    from demo_app.model import DemoModel
    from edgekit.data.squad import read_squad
    from edgekit.models import TextTokenizer
    from edgekit.ondevice.answers import best_span
    from edgekit.tasks import get
    from edgekit.tasks.squad_metric import squad_scores

    manifest = _manifest(qa_exp)
    data = manifest["recipe"]["data"]
    test = read_squad(data["test"], articles=tuple(data["test_articles"]))
    names = tuple(i["name"] for i in manifest["inputs"])
    features = get("question-answering").features(test, TextTokenizer(qa_exp), manifest["max_length"], names)
    windows = features.meta
    for row in manifest["artifacts"]:
        model = DemoModel.load(qa_exp, row["path"])
        runner = importlib.import_module(f"edgekit.export.{row['format']}").load(qa_exp / row["path"], 1)
        answers = {}
        for q, qid in enumerate(test.ids):
            reply = model.answer(test.questions[q], test.contexts[q])
            mine = np.flatnonzero(windows.example == q)
            assert reply.windows == len(mine) and reply.question_kept == reply.question_tokens
            outs = [runner(features.row_inputs(i)) for i in mine]
            width = max(len(windows.ids[i]) for i in mine)
            offsets = np.full((len(mine), width, 2), -1, dtype=np.int32)
            start, end = np.zeros((len(mine), width)), np.zeros((len(mine), width))
            for k, (i, out) in enumerate(zip(mine, outs)):
                n = len(windows.ids[i])
                offsets[k, :n], start[k, :n], end[k, :n] = windows.offsets[i], out["start_logits"][0][:n], \
                    out["end_logits"][0][:n]
            span = best_span(start, end, offsets)
            assert (reply.start, reply.end) == (span["start"], span["end"]), (row["path"], qid)
            assert reply.score == pytest.approx(span["score"], abs=1e-3) and reply.answer == \
                test.contexts[q][span["start"]:span["end"]]
            answers[qid] = reply.answer
        scores = squad_scores(answers, test)
        for metric in ("f1", "exact_match"):
            assert scores[metric] == pytest.approx(row["metrics"][metric], abs=1e-12), (row["path"], metric)
    assert windows.windowed > 0  # contexts longer than one window


NER_TEXTS = ["bob zed was at the cafe", "the movie was great , kim", "!"]
LONG_NER = " ".join(["ann zed , the cafe was good ."] * 4)  # 4 x 12 tokens (a ##n ##n z ##e ##d ...): 4 windows of 16


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
    context = "the movie was , the cafe was ! a b the movie was terrible . the cafe , the movie ! a b c"
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


@pytest.fixture(scope="module")
def ner_server(ner_exp, tmp_path_factory):
    running = DemoServer(ner_exp, tmp_path_factory.mktemp("demo-ner-server") / "stderr.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def qa_server(qa_exp, tmp_path_factory):
    running = DemoServer(qa_exp, tmp_path_factory.mktemp("demo-qa-server") / "stderr.log")
    yield running
    running.stop()


def api(server, path: str, doc) -> tuple[int, dict]:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    status, headers, data = server.request("POST", path, body, {"Content-Type": "application/json"})
    assert headers["Content-Type"] == "application/json"
    return status, json.loads(data)


def test_api_ner_and_answer_match_the_model(ner_server, qa_server, ner_exp, qa_exp):
    from demo_app.model import DemoModel

    tagger, reader = DemoModel.load(ner_exp), DemoModel.load(qa_exp)
    for server, task, route in ((ner_server, "token-classification", "/api/ner"),
                                (qa_server, "question-answering", "/api/answer")):
        info = json.loads(server.request("GET", "/api/info")[2])
        assert (info["task"], info["api"], info["artifact"]) == (task, route, "tflite-fp32.tflite")
    for text in NER_TEXTS + [LONG_NER, "café ☃ 日本 \U0001f600 bob"]:
        status, answer = api(ner_server, "/api/ner", {"text": text})
        expected = tagger.entities(text)
        assert status == 200 and answer["entities"] == expected.entities and answer["windows"] == expected.windows
        assert 0 < answer["model_ms"] <= answer["total_ms"] and answer["artifact"] == "tflite-fp32.tflite"
    assert answer["entities"][-1]["text"] == "bob" and answer["entities"][-1]["start"] == 12  # code points
    status, answer = api(ner_server, "/api/ner", {"text": LONG_NER})
    assert answer["note"] == "The text has 50 tokens; the model read it in 4 windows of whole words, at most 16 " \
                             "tokens each."
    context = "the movie was , the cafe was ! a b the movie was terrible . the cafe , the movie ! a b c"
    status, answer = api(qa_server, "/api/answer", {"question": "what was it ?", "context": context})
    expected = reader.answer("what was it ?", context)
    assert status == 200 and (answer["answer"], answer["start"], answer["end"]) == ("terrible", 49, 57)
    assert answer["score"] == expected.score and answer["windows"] == 2
    assert answer["note"] == "The context was read in 2 overlapping windows of at most 32 tokens."
    status, answer = api(qa_server, "/api/answer", {"question": "was the movie good or bad ? the cafe was great",
                                                    "context": "the cafe was good"})
    assert status == 200 and answer["answer"] == "good"
    assert answer["note"] == "The question has 12 tokens; the model read the first 8."


ANSWER_EXAMPLE = '{"question": "Who visited Paris?", "context": "Angela Merkel visited Paris."}'


@pytest.mark.parametrize("server_name, method, path, body, status, message", [
    ("qa_server", "POST", "/api/answer", b'{"question": "q"}', 400, f"context: missing, e.g. {ANSWER_EXAMPLE}"),
    ("qa_server", "POST", "/api/answer", b'{"context": "c"}', 400, "question: missing"),
    ("qa_server", "POST", "/api/answer", b'{"question": "q", "context": null}', 400,
     "context: expected a non-empty string, got null"),
    ("qa_server", "POST", "/api/answer", b'{"question": " ", "context": "c"}', 400,
     "question: expected a non-empty string, got a blank one"),
    ("qa_server", "POST", "/api/answer", b'{"question": "q", "context": "c", "text": "t"}', 400,
     f"text: unknown field (expected only question, context, e.g. {ANSWER_EXAMPLE})"),
    ("qa_server", "POST", "/api/answer", b'{"question": "\\udc80", "context": "c"}', 400,
     "question: not valid Unicode"),
    ("qa_server", "POST", "/api/answer", b"[]", 400, f"expected a JSON object like {ANSWER_EXAMPLE}, got an array"),
    ("qa_server", "POST", "/api/classify", b'{"text": "a"}', 404,
     "no API /api/classify for a question-answering export (it answers POST /api/answer)"),
    ("qa_server", "GET", "/api/answer", None, 405, f"GET /api/answer: not allowed (use POST /api/answer with a JSON "
                                                   f"body like {ANSWER_EXAMPLE})"),
    ("ner_server", "POST", "/api/ner", b'{"text": 5}', 400, "text: expected a non-empty string, got a number"),
    ("ner_server", "POST", "/api/answer", b'{"question": "q", "context": "c"}', 404,
     "no API /api/answer for a token-classification export (it answers POST /api/ner)"),
    ("ner_server", "POST", "/api/ner", json.dumps({"text": "a" * 20000}).encode(), 413,
     "request body 20012 bytes is over the 16384-byte limit"),
])
def test_ner_and_answer_errors_are_json_messages(request, server_name, method, path, body, status, message):
    server = request.getfixturevalue(server_name)
    got, headers, data = server.request(method, path, body)
    assert got == status and headers["Content-Type"] == "application/json"
    assert json.loads(data)["error"].startswith(message)
    if status == 405:
        assert headers["Allow"] == "POST"


def test_task_servers_never_import_tensorflow_or_edgekit(ner_server, qa_server):
    for server in (ner_server, qa_server):
        log = server.stop()
        modules = imported_modules(log)
        assert {"ai_edge_litert", "tokenizers", "demo_app"} <= modules and not modules & FORBIDDEN
        assert "Traceback" not in log
