"""demo_app's web server on tiny exports written by `edgekit export` (``python -I demo_app serve``
in a subprocess): it binds loopback and serves the page, each task's POST route answers what
the model answers, the request limits (body size, a client stalled mid-request), errors as JSON
messages without tracebacks, 405 with ``Allow``, and that it never imports TensorFlow or edgekit."""

from __future__ import annotations

import json
import socket
import time

import pytest

from demo_exports import FORBIDDEN, LONG, LONG_NER, NER_TEXTS, QA_CONTEXT, TEXTS, DemoServer, imported_modules

TIMEOUT = 3  # seconds the test server lets a client stall mid-request


def served(export, tmp_path_factory, name: str, *extra: str):
    """A module fixture's server for ``export`` (its stderr in a folder called ``name``), stopped after."""
    running = DemoServer(export, tmp_path_factory.mktemp(name) / "stderr.log", *extra)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def server(cls_export, tmp_path_factory):
    yield from served(cls_export, tmp_path_factory, "demo-server", "--timeout", str(TIMEOUT))


@pytest.fixture(scope="module")
def ner_server(ner_exp, tmp_path_factory):
    yield from served(ner_exp, tmp_path_factory, "demo-ner-server")


@pytest.fixture(scope="module")
def qa_server(qa_exp, tmp_path_factory):
    yield from served(qa_exp, tmp_path_factory, "demo-qa-server")


def api(server, doc, path: str = "/api/classify") -> tuple[int, dict]:
    """(status, JSON answer) of POSTing ``doc`` (an object, or the raw bytes of a body) to ``path``."""
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    status, headers, data = server.request("POST", path, body, {"Content-Type": "application/json"})
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
        status, answer = api(server, {"text": text})
        expected = model.classify(text)
        assert status == 200 and answer["label"] == expected.label
        assert answer["probabilities"] == pytest.approx(expected.probabilities, abs=1e-9)
        assert answer["truncated"] is False and answer["note"] is None and answer["tokens"] == answer["text_tokens"]
        assert 0 < answer["model_ms"] <= answer["total_ms"]
    for text in ["café ☃ 日本 \U0001f600", "a\u0000b\u200b"]:  # any valid Unicode is a text
        status, answer = api(server, {"text": text})
        assert status == 200 and answer["label"] == model.classify(text).label
    status, answer = api(server, {"text": LONG})
    assert status == 200 and answer["truncated"] is True and (answer["tokens"], answer["text_tokens"]) == (16, 33)
    assert answer["note"] == "The text has 33 tokens; the model read the first 16 (its sequence length is 16)."
    assert answer["label"] == model.classify(LONG).label


def test_oversized_body_is_413_and_the_server_keeps_serving(server):
    from demo_app.server import MAX_BODY

    status, answer = api(server, json.dumps({"text": "a" * MAX_BODY}).encode())
    assert status == 413
    assert answer == {"error": f"request body {MAX_BODY + 12} bytes is over the {MAX_BODY}-byte limit"}
    status, answer = api(server, {"text": "the movie was great " * 700})  # under the limit: truncated, answered
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
        status, answer = api(server, {"text": text})
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



def test_api_ner_and_answer_match_the_model(ner_server, qa_server, ner_exp, qa_exp):
    from demo_app.model import DemoModel

    tagger, reader = DemoModel.load(ner_exp), DemoModel.load(qa_exp)
    for server, task, route in ((ner_server, "token-classification", "/api/ner"),
                                (qa_server, "question-answering", "/api/answer")):
        info = json.loads(server.request("GET", "/api/info")[2])
        assert (info["task"], info["api"], info["artifact"]) == (task, route, "tflite-fp32.tflite")
    for text in NER_TEXTS + [LONG_NER, "café ☃ 日本 \U0001f600 bob"]:
        status, answer = api(ner_server, {"text": text}, "/api/ner")
        expected = tagger.entities(text)
        assert status == 200 and answer["entities"] == expected.entities and answer["windows"] == expected.windows
        assert 0 < answer["model_ms"] <= answer["total_ms"] and answer["artifact"] == "tflite-fp32.tflite"
    assert answer["entities"][-1]["text"] == "bob" and answer["entities"][-1]["start"] == 12  # code points
    status, answer = api(ner_server, {"text": LONG_NER}, "/api/ner")
    assert answer["note"] == "The text has 50 tokens; the model read it in 4 windows of whole words, at most 16 " \
                             "tokens each."
    status, answer = api(qa_server, {"question": "what was it ?", "context": QA_CONTEXT}, "/api/answer")
    expected = reader.answer("what was it ?", QA_CONTEXT)
    assert status == 200 and (answer["answer"], answer["start"], answer["end"]) == ("terrible", 49, 57)
    assert answer["score"] == expected.score and answer["windows"] == 2
    assert answer["note"] == "The context was read in 2 overlapping windows of at most 32 tokens."
    status, answer = api(qa_server, {"question": "was the movie good or bad ? the cafe was great",
                                     "context": "the cafe was good"}, "/api/answer")
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
