"""The demo app's command line: ``python3 demo_app COMMAND EXPORT_DIR ...``.

classify  texts (arguments, or stdin one per line) -> label, probability, latency
embed     texts -> embedding (encoder exports; the first values, or all with --json)
nearest   queries -> the closest sentences of a corpus file (one per line), by cosine
ner       texts -> named entities: type, score, character offsets, text
answer    questions about --context TEXT, or question<TAB>context lines on stdin -> answer span
artifacts the export's artifacts and whether this machine can run them
serve     the web page and JSON API on 127.0.0.1 (text classification, NER or QA exports)

A user error (no such folder, unknown artifact, missing runtime, a number out of range, files
changed since the export) is one line on stderr and exit status 1; a malformed command line
(unknown option, ``-k abc``) is one line too, with argparse's usage status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from demo_app.exportdir import AppError, read_export
from demo_app.model import DemoModel, nearest


RANGES = {  # option: (smallest, largest or None, what the range is)
    "--threads": (1, os.cpu_count() or 1, " (this machine's CPU cores)"),
    "-k": (1, None, ""),  # at most the corpus's sentences: checked once the corpus is read
    "--port": (0, 65535, ""),
    "--timeout": (0.1, 3600, " seconds"),
}


def check_ranges(args) -> None:
    """Refuse a number outside its option's range before any work starts."""
    for option, (low, high, what) in RANGES.items():
        value = getattr(args, option.lstrip("-"), None)
        if value is not None and not (low <= value and (high is None or value <= high)):  # nan: refused
            limit = f"outside {low}..{high}" if high is not None else f"below {low}"
            raise AppError(f"{option} {value} is {limit}{what}")


def _utf8(text: str, what: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8, kept as surrogates by Python
        raise AppError(f"{what}: not UTF-8 text") from None
    return text


def _stdin_lines() -> list[tuple[int, str]]:
    """(line number, line) of stdin's non-blank lines."""
    try:
        lines = [line.rstrip("\r") for line in sys.stdin.buffer.read().decode("utf-8").split("\n")]
    except UnicodeDecodeError as err:
        raise AppError(f"stdin: not UTF-8 text (byte {err.object[err.start]:#04x} at offset {err.start})") from None
    return [(i, line) for i, line in enumerate(lines, 1) if line.strip()]


def _texts(args, what: str = "text") -> list[str]:
    texts = [_utf8(text, f"{what} argument {i}") for i, text in enumerate(args.texts, 1)]
    if not texts or texts == ["-"]:
        texts = [line for _, line in _stdin_lines()]
    if not texts:
        raise AppError(f"no {what} given (pass {what.upper()} arguments, or one {what} per line on stdin)")
    return texts


def _questions(args) -> list[tuple[str, str]]:
    """(question, context) pairs: each QUESTION (or stdin line) with --context, else stdin's
    ``question<TAB>context`` lines."""
    if args.context is not None:
        context = _utf8(args.context, "--context")
        if not context.strip():
            raise AppError("--context: expected a non-empty text")
        return [(q, context) for q in _texts(args, "question")]
    if args.texts and args.texts != ["-"]:
        raise AppError("QUESTION arguments need --context TEXT (or give question<TAB>context lines on stdin)")
    pairs = []
    for number, line in _stdin_lines():
        question, tab, context = line.partition("\t")
        if not tab or not question.strip() or not context.strip():
            raise AppError(f"stdin:{number}: expected question<TAB>context, got {line[:60]!r}")
        pairs.append((question, context))
    if not pairs:
        raise AppError("no question given (pass --context TEXT and QUESTION arguments, or question<TAB>context "
                       "lines on stdin)")
    return pairs


def _note(answer) -> str:
    return f"  [truncated to {answer.tokens} of {answer.text_tokens} tokens]" if answer.truncated else ""


def _windows_note(windows: int, model: DemoModel) -> str:
    return f"  [{windows} windows of at most {model.max_length} tokens]" if windows > 1 else ""


def cmd_classify(model: DemoModel, args) -> None:
    for text in _texts(args):
        p = model.classify(text)
        a = p.answer
        if args.labels_only:
            print(p.label)
        elif args.json:
            print(json.dumps({"text": text, "label": p.label, "probabilities": p.probabilities,
                              "tokens": a.tokens, "truncated": a.truncated, "model_ms": round(a.model_ms, 3),
                              "artifact": model.artifact.path.name, "runtime": model.runtime}))
        else:
            print(f"{p.label}\t{p.probabilities[p.label]:.3f}\t{a.model_ms:.2f} ms\t{text}{_note(a)}")


def cmd_embed(model: DemoModel, args) -> None:
    for text in _texts(args):
        a = model.embed(text)
        if args.json:
            print(json.dumps({"text": text, "embedding": [round(float(v), 6) for v in a.output],
                              "tokens": a.tokens, "truncated": a.truncated, "model_ms": round(a.model_ms, 3)}))
        else:
            head = ", ".join(f"{v:+.4f}" for v in a.output[:4])
            print(f"{a.output.shape[0]}-d [{head}, ...]\t{a.model_ms:.2f} ms\t{text}{_note(a)}")


def cmd_nearest(model: DemoModel, args) -> None:
    try:
        lines = Path(args.corpus).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise AppError(f"--corpus {args.corpus}: cannot read it ({err.strerror if isinstance(err, OSError) else err})")
    corpus = [line for line in lines if line.strip()]
    if not corpus:
        raise AppError(f"--corpus {args.corpus}: no sentences (expected one per line)")
    if args.k > len(corpus):
        raise AppError(f"-k {args.k} is more than the sentences in --corpus {args.corpus} ({len(corpus)})")
    vectors = np.stack([model.embed(s).output for s in corpus])
    for query in _texts(args):
        print(query)
        for index, score in nearest(model.embed(query).output, vectors, args.k):
            print(f"  {score:.3f}\t{corpus[index]}")


def cmd_ner(model: DemoModel, args) -> None:
    for text in _texts(args):
        t = model.entities(text)
        if args.json:
            print(json.dumps({"text": text, "entities": t.entities, "tokens": t.tokens, "windows": t.windows,
                              "model_ms": round(t.model_ms, 3), "artifact": model.artifact.path.name,
                              "runtime": model.runtime}))
            continue
        print(f"{text}\t{t.model_ms:.2f} ms{_windows_note(t.windows, model)}")
        for e in t.entities:
            print(f"  {e['type']}\t{e['score']:.3f}\t{e['start']}-{e['end']}\t{e['text']}")


def cmd_answer(model: DemoModel, args) -> None:
    for question, context in _questions(args):
        r = model.answer(question, context)
        if args.json:
            print(json.dumps({"question": question, "answer": r.answer, "start": r.start, "end": r.end,
                              "score": r.score, "windows": r.windows, "question_tokens": r.question_tokens,
                              "question_kept": r.question_kept, "model_ms": round(r.model_ms, 3),
                              "artifact": model.artifact.path.name, "runtime": model.runtime}))
            continue
        cut = f"  [question cut to {r.question_kept} of {r.question_tokens} tokens]" \
            if r.question_kept < r.question_tokens else ""
        found = f"{r.answer}\t{r.score:.3f}\t{r.start}-{r.end}" if r.start is not None else "(no answer)\t-\t-"
        print(f"{found}\t{r.model_ms:.2f} ms\t{question}{cut}{_windows_note(r.windows, model)}")


def cmd_serve(model: DemoModel, args) -> None:
    from demo_app.server import serve

    serve(model, args.host, args.port, args.timeout)


def cmd_artifacts(args) -> None:
    export = read_export(args.export)
    for a in export.artifacts:
        if args.runnable:
            if a.passed and a.runtime_installed:
                print(a.key)
        else:
            state = "ok" if a.passed else "failed/gated"
            print(f"{a.key}\t{a.path.name}\t{state}\t{'runtime installed' if a.runtime_installed else 'no runtime'}")


class Parser(argparse.ArgumentParser):
    """argparse with its usage errors on one line (status 2), like the app's own errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def parser() -> argparse.ArgumentParser:
    top = Parser(prog="demo_app", description="Run an edgekit export folder like an edge app.")
    sub = top.add_subparsers(dest="command", required=True)

    def command(name: str, help: str, texts: str | None = "texts; none or - reads one per line from stdin"
                ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("export", help="folder written by `edgekit export` (has edgekit.json)")
        if texts:
            p.add_argument("texts", nargs="*", help=texts)
        p.add_argument("--artifact", help="artifact key (e.g. tflite-int8-dynamic) or file name "
                                          "[default: the first that passed, LiteRT first]")
        p.add_argument("--threads", type=int, default=1, help="runtime threads, 1..CPU cores [default: 1]")
        p.add_argument("--no-verify", action="store_true",
                       help="skip checking the files' sha256 against edgekit.json (files changed on purpose)")
        return p

    c = command("classify", "label texts with a text-classification export")
    c.add_argument("--json", action="store_true", help="one JSON object per text")
    c.add_argument("--labels-only", action="store_true", help="print only the label, one per line")
    e = command("embed", "embed texts with a feature-extraction export")
    e.add_argument("--json", action="store_true", help="one JSON object per text, full vector")
    n = command("nearest", "closest corpus sentences to each query (cosine of embeddings)")
    n.add_argument("--corpus", required=True, help="text file, one sentence per line")
    n.add_argument("-k", type=int, default=3, help="sentences per query, at most the corpus's [default: 3]")
    t = command("ner", "named entities in texts with a token-classification export")
    t.add_argument("--json", action="store_true", help="one JSON object per text")
    q = command("answer", "answer questions with a question-answering export",
                texts="questions about --context; none or - reads one per line from stdin")
    q.add_argument("--context", help="the text the answers come from [default: question<TAB>context lines on stdin]")
    q.add_argument("--json", action="store_true", help="one JSON object per question")
    s = command("serve", "web page and JSON API", texts=None)
    s.add_argument("--host", default="127.0.0.1", help="address to bind [default: 127.0.0.1, this machine only]")
    s.add_argument("--port", type=int, default=8000, help="port, 0..65535 [default: 8000; 0 picks a free one]")
    s.add_argument("--timeout", type=float, default=5.0,
                   help="seconds a client may stall mid-request before it gets 408 [default: 5]")
    a = sub.add_parser("artifacts", help="list the export's artifacts")
    a.add_argument("export")
    a.add_argument("--runnable", action="store_true", help="only keys that passed and whose runtime is installed")
    return top


COMMANDS = {"classify": cmd_classify, "embed": cmd_embed, "nearest": cmd_nearest, "ner": cmd_ner,
            "answer": cmd_answer, "serve": cmd_serve}


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args, rest = top.parse_known_args(argv)  # texts may also follow the options
    if rest and (not hasattr(args, "texts") or any(r.startswith("-") and r != "-" for r in rest)):
        top.error(f"unrecognized arguments: {' '.join(rest)}")
    if rest:
        args.texts += rest
    try:
        check_ranges(args)
        if args.command == "artifacts":
            cmd_artifacts(args)
        else:
            model = DemoModel.load(args.export, args.artifact, args.threads, verify=not args.no_verify)
            if args.no_verify:
                print("demo_app: files NOT verified (--no-verify): they may not be what was exported", file=sys.stderr)
            COMMANDS[args.command](model, args)
    except AppError as err:
        print(f"demo_app: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
