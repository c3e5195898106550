"""The demo app's web page and JSON API on the standard library's threaded HTTP server.

GET  /               the page (page.html + page.js): text box, label, probability bars
GET  /api/info       what answers: export, artifact file, runtime, labels, max_length
POST /api/classify   {"text": "..."} -> label, probabilities, latency, tokens, truncation note

Bound to 127.0.0.1 unless told otherwise. Bodies over MAX_BODY bytes get 413 before they
are read; a request's Host must name this machine when bound to loopback (DNS rebinding).
Errors are JSON ``{"error": message}``; an unexpected failure is logged on stderr with its
traceback and answered 500 with a plain message, never the traceback.
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


class ApiError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


def classify_response(model: DemoModel, body: bytes) -> dict:
    """The JSON answer of POST /api/classify for a request ``body``."""
    try:
        doc = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(HTTPStatus.BAD_REQUEST, 'expected a JSON body like {"text": "..."}') from None
    text = doc.get("text") if isinstance(doc, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise ApiError(HTTPStatus.BAD_REQUEST, 'text: expected a non-empty string, e.g. {"text": "a fine film"}')
    try:
        p = model.classify(text)
    except AppError as err:
        raise ApiError(HTTPStatus.BAD_REQUEST, str(err)) from None
    a = p.answer
    note = (f"The text has {a.text_tokens} tokens; the model read the first {a.tokens} "
            f"(its sequence length is {model.max_length}).") if a.truncated else None
    return {"label": p.label, "probabilities": p.probabilities, "model_ms": round(a.model_ms, 3),
            "total_ms": round(a.total_ms, 3), "tokens": a.tokens, "text_tokens": a.text_tokens,
            "truncated": a.truncated, "note": note, "artifact": model.artifact.path.name, "runtime": model.runtime}


class Handler(BaseHTTPRequestHandler):
    model: DemoModel  # set on the subclass made by make_server
    loopback: bool
    server_version = "edgekit-demo"
    sys_version = ""
    timeout = 15  # seconds a client may stall mid-request before its thread is freed

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, doc: dict) -> None:
        self._send(status, json.dumps(doc).encode("utf-8"), "application/json")

    def _guarded(self, handle) -> None:
        try:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0]
            if self.loopback and host not in LOOPBACK_HOSTS:
                raise ApiError(HTTPStatus.FORBIDDEN, "Host must be 127.0.0.1 or localhost")
            handle()
        except ApiError as err:
            if err.status is HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                self.close_connection = True  # the unread body stays unread
            self._json(err.status, {"error": str(err)})
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # log it here; the client gets no internals
            traceback.print_exc(file=sys.stderr)
            self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error (see the server's log)"})

    def do_GET(self) -> None:
        self._guarded(self._get)

    def do_POST(self) -> None:
        self._guarded(self._post)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/api/info":
            return self._json(HTTPStatus.OK, self.model.describe())
        if path in STATIC:
            name, content_type = STATIC[path]
            return self._send(HTTPStatus.OK, (HERE / name).read_bytes(), content_type)
        if path == "/api/classify":
            raise ApiError(HTTPStatus.METHOD_NOT_ALLOWED, "use POST /api/classify with a JSON body")
        raise ApiError(HTTPStatus.NOT_FOUND, f"no page {path}")

    def _post(self) -> None:
        if self.path.split("?", 1)[0] != "/api/classify":
            raise ApiError(HTTPStatus.NOT_FOUND, f"no API {self.path}")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise ApiError(HTTPStatus.LENGTH_REQUIRED, "Content-Length header required") from None
        if length > MAX_BODY:
            self.rfile.read(min(length, DRAIN))  # so the client reads the 413, not a connection reset
            raise ApiError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                           f"request body {length} bytes is over the {MAX_BODY}-byte limit")
        if length < 0:
            raise ApiError(HTTPStatus.BAD_REQUEST, "Content-Length must not be negative")
        self._json(HTTPStatus.OK, classify_response(self.model, self.rfile.read(length)))

    def log_message(self, format, *args) -> None:  # quiet: one line per request would flood a load test
        pass

    def log_error(self, format, *args) -> None:
        sys.stderr.write(f"{self.address_string()} {format % args}\n")


def make_server(model: DemoModel, host: str = "127.0.0.1", port: int = 8000) -> ThreadingHTTPServer:
    if not model.export.classifier:
        raise AppError(f"{model.export.folder}: the page classifies; a {model.export.task} export has no labels "
                       f"(use the embed or nearest commands)")
    handler = type("DemoHandler", (Handler,), {"model": model, "loopback": host in ("127.0.0.1", "localhost", "::1")})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as err:
        raise AppError(f"--host {host} --port {port}: cannot listen there ({err.strerror})") from None
    server.daemon_threads = True
    return server


def serve(model: DemoModel, host: str, port: int) -> None:
    server = make_server(model, host, port)
    bound_host, bound_port = server.server_address[:2]
    print(f"serving http://{bound_host}:{bound_port}/ with {model.artifact.path.name} ({model.runtime}); "
          f"Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
