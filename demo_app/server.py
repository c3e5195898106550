"""The demo app's web page and JSON API on the standard library's threaded HTTP server.

GET  /               the page (page.html + page.js), for the export's task: label and probability
                     bars, entities highlighted in the text, or the answer highlighted in the context
GET  /api/info       what answers: export, task, its API route, artifact file, runtime, labels, max_length
POST /api/classify   {"text": "..."} -> label, probabilities, latency, tokens, truncation note
POST /api/ner        {"text": "..."} -> entities (type, text, start, end, score), windows, latency
POST /api/answer     {"question": "...", "context": "..."} -> answer, start, end, score, windows, latency

Each export answers the POST route of its task (``API``); the others are 404 naming the one it
answers. Character offsets are Python string indices (Unicode code points) into the text sent.

Bound to 127.0.0.1 unless told otherwise. Bodies over MAX_BODY bytes get 413 before they
are read; a request's Host must name this machine when bound to loopback (DNS rebinding).
HEAD works on the GET routes; any other method gets 405 with an ``Allow`` header. Each
client has its own thread, and one that stalls mid-request for ``timeout`` seconds gets 408,
so a slow client never holds the others up. Errors are JSON ``{"error": message}``, the
HTTP server's own (a bad request line, an unknown method) included; an unexpected failure
is logged on stderr with its traceback and answered 500 with a plain message, never the
traceback.
"""

from __future__ import annotations

import json
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from demo_app.exportdir import AppError
from demo_app.model import DemoModel

MAX_BODY = 16 * 1024  # bytes of JSON; a text past max_length tokens is truncated anyway
DRAIN = 1 << 20  # bytes of an oversized body read and dropped before answering 413
HERE = Path(__file__).resolve().parent
STATIC = {"/": ("page.html", "text/html; charset=utf-8"), "/page.js": ("page.js", "text/javascript; charset=utf-8")}
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")
API = {"/api/classify": "text-classification", "/api/ner": "token-classification",
       "/api/answer": "question-answering"}  # POST route -> the task whose exports answer it
EXAMPLES = {"/api/classify": {"text": "a fine film"}, "/api/ner": {"text": "Angela Merkel visited Paris."},
            "/api/answer": {"question": "Who visited Paris?", "context": "Angela Merkel visited Paris."}}
ROUTES = {"/": "GET, HEAD", "/page.js": "GET, HEAD", "/api/info": "GET, HEAD", **dict.fromkeys(API, "POST")}
JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number",
              bool: "a boolean", type(None): "null"}


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


def _bad(message: str) -> ApiError:
    return ApiError(HTTPStatus.BAD_REQUEST, message)


def _example(path: str) -> str:
    return json.dumps(EXAMPLES[path])


def read_fields(path: str, body: bytes) -> dict[str, str]:
    """The request ``body`` of POST ``path``: a JSON object with exactly the route's fields
    (``EXAMPLES``), each a non-empty string; 400 naming the first field that is not."""
    example, names = _example(path), tuple(EXAMPLES[path])
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: [[[[... nested
        raise _bad(f"expected a JSON body like {example}") from None
    if not isinstance(doc, dict):
        raise _bad(f"expected a JSON object like {example}, got {JSON_TYPES[type(doc)]}")
    unknown = sorted(set(doc) - set(names))
    if unknown:
        raise _bad(f"{unknown[0][:60]}: unknown field (expected only {', '.join(names)}, e.g. {example})")
    for name in names:
        if name not in doc:
            raise _bad(f"{name}: missing, e.g. {example}")
        value = doc[name]
        if not isinstance(value, str) or not value.strip():
            got = "a blank one" if isinstance(value, str) else JSON_TYPES[type(value)]
            raise _bad(f"{name}: expected a non-empty string, got {got}, e.g. {example}")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # "\ud800": JSON allows a lone surrogate, a tokenizer does not
            raise _bad(f"{name}: not valid Unicode (a lone surrogate escape such as \\ud800)") from None
    return doc


def _served(model: DemoModel) -> dict:
    return {"artifact": model.artifact.path.name, "runtime": model.runtime}


def classify_response(model: DemoModel, fields: dict[str, str]) -> dict:
    """The JSON answer of POST /api/classify."""
    p = model.classify(fields["text"])
    a = p.answer
    note = (f"The text has {a.text_tokens} tokens; the model read the first {a.tokens} "
            f"(its sequence length is {model.max_length}).") if a.truncated else None
    return {"label": p.label, "probabilities": p.probabilities, "model_ms": round(a.model_ms, 3),
            "total_ms": round(a.total_ms, 3), "tokens": a.tokens, "text_tokens": a.text_tokens,
            "truncated": a.truncated, "note": note, **_served(model)}


def ner_response(model: DemoModel, fields: dict[str, str]) -> dict:
    """The JSON answer of POST /api/ner."""
    t = model.entities(fields["text"])
    note = (f"The text has {t.tokens} tokens; the model read it in {t.windows} windows of whole words, "
            f"at most {model.max_length} tokens each.") if t.windows > 1 else None
    return {"entities": t.entities, "tokens": t.tokens, "windows": t.windows, "note": note,
            "model_ms": round(t.model_ms, 3), "total_ms": round(t.total_ms, 3), **_served(model)}


def answer_response(model: DemoModel, fields: dict[str, str]) -> dict:
    """The JSON answer of POST /api/answer."""
    r = model.answer(fields["question"], fields["context"])
    notes = []
    if r.question_kept < r.question_tokens:
        notes.append(f"The question has {r.question_tokens} tokens; the model read the first {r.question_kept}.")
    if r.windows > 1:
        notes.append(f"The context was read in {r.windows} overlapping windows of at most {model.max_length} "
                     f"tokens.")
    return {"answer": r.answer, "start": r.start, "end": r.end, "score": r.score, "windows": r.windows,
            "question_tokens": r.question_tokens, "question_kept": r.question_kept,
            "note": " ".join(notes) or None, "model_ms": round(r.model_ms, 3), "total_ms": round(r.total_ms, 3),
            **_served(model)}


RESPONSES = {"/api/classify": classify_response, "/api/ner": ner_response, "/api/answer": answer_response}
ROUTE_OF = {task: path for path, task in API.items()}  # task -> its POST route


class Handler(BaseHTTPRequestHandler):
    model: DemoModel  # set on the subclass made by make_server
    loopback: bool
    server_version = "edgekit-demo"
    sys_version = ""
    timeout = 5.0  # seconds a client may stall mid-request (make_server sets serve's --timeout)

    def _send(self, status: HTTPStatus, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: HTTPStatus, doc: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(doc).encode("utf-8"), "application/json", headers)

    def _error(self, status: HTTPStatus, message: str, headers: dict | None = None) -> None:
        self.close_connection = True  # part of the request may be unread
        try:
            self._json(status, {"error": message}, headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client left without its answer

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a bad request line, an unknown method, huge headers), as JSON."""
        self.log_error("code %d, message %s", code, message)
        self._error(HTTPStatus(code), message or HTTPStatus(code).phrase)

    def _guarded(self) -> None:
        try:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            if self.loopback and host not in LOOPBACK_HOSTS:
                raise ApiError(HTTPStatus.FORBIDDEN, "Host must be 127.0.0.1 or localhost")
            self._route()
        except ApiError as err:
            self._error(err.status, str(err), err.headers)
        except TimeoutError:
            self._error(HTTPStatus.REQUEST_TIMEOUT, f"request not complete after {self.timeout:g} s of silence "
                                                    f"(a body shorter than its Content-Length?)")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # log it here; the client gets no internals
            traceback.print_exc(file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error (see the server's log)")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _guarded

    def _route(self) -> None:
        path = self.path.split("?", 1)[0]
        allow = ROUTES.get(path)
        if allow is None:
            raise ApiError(HTTPStatus.NOT_FOUND, f"no {'page' if self.command in ('GET', 'HEAD') else 'API'} {path}")
        if self.command not in allow.split(", "):
            usage = f"use POST {path} with a JSON body like {_example(path)}" if allow == "POST" else f"use GET {path}"
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} {path}: not allowed ({usage})",
                           {"Allow": allow})
        task = self.model.export.task
        if self.command == "POST":
            if API[path] != task:
                raise ApiError(HTTPStatus.NOT_FOUND, f"no API {path} for a {task} export (it answers POST "
                                                     f"{ROUTE_OF[task]})")
            return self._post(path)
        if path == "/api/info":
            return self._json(HTTPStatus.OK, {**self.model.describe(), "api": ROUTE_OF[task]})
        name, content_type = STATIC[path]
        self._send(HTTPStatus.OK, (HERE / name).read_bytes(), content_type)

    def _post(self, path: str) -> None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "Content-Length header required") from None
        if length > MAX_BODY:
            self.rfile.read(min(length, DRAIN))  # so the client reads the 413, not a connection reset
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"request body {length} bytes is over the {MAX_BODY}-byte limit")
        if length < 0:
            raise _bad("Content-Length must not be negative")
        body = self.rfile.read(length)
        if len(body) < length:  # the client closed its side early
            raise _bad(f"the body ended after {len(body)} of its Content-Length {length} bytes")
        fields = read_fields(path, body)
        try:
            answer = RESPONSES[path](self.model, fields)
        except AppError as err:  # e.g. an artifact whose outputs do not fit the export's labels
            raise _bad(str(err)) from None
        self._json(HTTPStatus.OK, answer)

    def log_message(self, format, *args) -> None:  # quiet: one line per request would flood a load test
        pass

    def log_error(self, format, *args) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def make_server(model: DemoModel, host: str = "127.0.0.1", port: int = 8000,
                timeout: float = Handler.timeout) -> ThreadingHTTPServer:
    if model.export.task not in ROUTE_OF:
        raise AppError(f"{model.export.folder}: the page classifies, tags entities or answers questions; a "
                       f"{model.export.task} export does none of those (use the embed or nearest commands)")
    handler = type("DemoHandler", (Handler,), {"model": model, "timeout": timeout,
                                               "loopback": host in ("127.0.0.1", "localhost", "::1")})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise AppError(f"--host {host} --port {port}: cannot listen there ({err.strerror})") from None
    server.daemon_threads = True
    return server


def serve(model: DemoModel, host: str, port: int, timeout: float = Handler.timeout) -> None:
    server = make_server(model, host, port, timeout)
    bound_host, bound_port = server.server_address[:2]
    print(f"serving http://{bound_host}:{bound_port}/ with {model.artifact.path.name} ({model.runtime}); "
          f"Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
