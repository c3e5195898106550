"""Read SQuAD v1.1 question-answering JSON into a ``QADataset``, one row per question.

Only the dev set exists here, so recipes split it by article (``articles=(0, 32)`` to train,
``(32, 48)`` to test): the whole file is checked either way, so that a question id used on both
sides, or a bad answer in an article not selected, is still refused. Every problem is one
``DataError`` line, ``FILE: question ID: what (expected)``, or ``FILE: data[3].paragraphs[0]...``
where the question id is not known yet.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.data.readers import _error, _listing, _read_text, _show

_FINGERPRINT_VERSION = "edgekit.QADataset/1"  # bump if the hashed payload ever changes
_KINDS = {dict: "a JSON object", list: "a list", str: "a string", int: "an integer"}
_QUOTED = 60  # characters of an answer or context shown in a message


@dataclass(frozen=True, eq=False, repr=False)
class QADataset:
    """Questions with their paragraph and every gold answer (text and character offset).

    One row per question; ``contexts`` repeats a paragraph once per question on it (the same
    string object, not a copy). ``==`` is identity; compare by fingerprint.
    """

    ids: tuple[str, ...]  # question ids
    questions: tuple[str, ...]  # stripped
    contexts: tuple[str, ...]  # as in the file: answer offsets index into it
    answers: tuple[tuple[str, ...], ...]  # every gold answer text of each question, in file order
    answer_starts: tuple[tuple[int, ...], ...]  # char offset of each answer in its context
    articles: tuple[int, ...]  # index in the file's "data" list of each question's article
    source: str  # the file path

    def __post_init__(self):
        set_ = object.__setattr__
        for name in ("ids", "questions", "contexts", "articles"):
            set_(self, name, tuple(getattr(self, name)))
        set_(self, "answers", tuple(tuple(a) for a in self.answers))
        set_(self, "answer_starts", tuple(tuple(s) for s in self.answer_starts))
        sizes = {name: len(getattr(self, name))
                 for name in ("ids", "questions", "contexts", "answers", "answer_starts", "articles")}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"fields of different lengths: {sizes}")
        if any(len(a) != len(s) for a, s in zip(self.answers, self.answer_starts)):
            raise ValueError("a question has a different number of answers and answer_starts")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:  # the default would print every context
        return f"QADataset({self.source!r}, {len(self)} questions, {len(set(self.articles))} articles)"

    def fingerprint(self) -> str:
        """sha256 hex of the content (everything but the source path); keys caches of windows."""
        paragraphs = list(dict.fromkeys(self.contexts))  # each once (SQuAD: ~5 questions a paragraph)
        index = {text: i for i, text in enumerate(paragraphs)}
        payload = [_FINGERPRINT_VERSION, self.ids, self.questions, paragraphs, [index[c] for c in self.contexts],
                   self.answers, self.answer_starts, self.articles]
        return hashlib.sha256(json.dumps(payload).encode("ascii")).hexdigest()


def read_squad(path: str | Path, articles: tuple[int, int] | None = None,
               max_examples: int | None = None) -> QADataset:
    """The questions of articles ``first..stop-1`` (Python slice rules; None: all), in file
    order, at most ``max_examples`` of them."""
    path = Path(path)
    root = _parse(path)
    if not isinstance(root, dict):
        raise _error(path, None, f"the top level is {_show(root)}", 'expected a JSON object {"data": [articles]}')
    data = _objects(root, "data", str(path), "")
    _check_all(path, data)
    chosen = range(len(data)) if articles is None else range(len(data))[slice(*articles)]
    rows = [(qa["id"], qa["question"].strip(), paragraph["context"], tuple(x["text"] for x in qa["answers"]),
             tuple(x["answer_start"] for x in qa["answers"]), a)
            for a in chosen for paragraph in data[a]["paragraphs"] for qa in paragraph["qas"]][:max_examples]
    if not rows:
        selection = "" if articles is None else f"articles {tuple(articles)} hold "
        raise _error(path, None, f"{selection}no questions",
                     f"expected questions; the file has {len(data)} article{'' if len(data) == 1 else 's'}, "
                     "numbered from 0")
    return QADataset(*zip(*rows), source=str(path))


def _parse(path: Path) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as err:
        raise _error(path, err.lineno, f"invalid JSON: {err.msg} at column {err.colno}",
                     "expected a SQuAD v1.1 JSON file") from None
    except RecursionError:  # the decoder recurses once per nesting level
        raise _error(path, None, "JSON nested too deeply", "expected a SQuAD v1.1 JSON file") from None


def _member(obj: dict, key: str, kind: type, where: str, at: str) -> Any:
    """``obj[key]``, which must be a ``kind``; ``at`` is the object's path for messages ("" at the top)."""
    if key not in obj:
        raise _error(f"{where}: {at}" if at else where, None, f"missing key {key!r}", f"the object has {_listing(obj)}")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise _error(where, None, f"{_inside(at, key)} is {_show(value)}", f"expected {_KINDS[kind]}")
    return value


def _objects(obj: dict, key: str, where: str, at: str) -> list[dict]:
    """The list ``obj[key]``, every element of which must be a JSON object."""
    values = _member(obj, key, list, where, at)
    for i, value in enumerate(values):
        if not isinstance(value, dict):
            raise _error(where, None, f"{_inside(at, key)}[{i}] is {_show(value)}", f"expected {_KINDS[dict]}")
    return values


def _inside(at: str, key: str) -> str:
    return f"{at}.{key}" if at else key


def _quote(text: str) -> str:
    return repr(text if len(text) <= _QUOTED else text[:_QUOTED - 3] + "...")


def _check_all(path: Path, data: list[dict]) -> None:
    """Every article, paragraph, question and answer of the file, whichever are selected."""
    first_seen: dict[str, str] = {}  # question id -> its path
    for a, article in enumerate(data):
        for p, paragraph in enumerate(_objects(article, "paragraphs", str(path), f"data[{a}]")):
            at = f"data[{a}].paragraphs[{p}]"
            context = _member(paragraph, "context", str, str(path), at)
            if not context.strip():
                raise _error(path, None, f"{at}: empty context", "expected the paragraph's text")
            for q, qa in enumerate(_objects(paragraph, "qas", str(path), at)):
                qa_at = f"{at}.qas[{q}]"
                qid = _member(qa, "id", str, str(path), qa_at)
                where = f"{path}: question {qid}"
                if qid in first_seen:
                    raise _error(where, None, f"{qa_at} reuses the id of {first_seen[qid]}",
                                 "expected each question id once")
                first_seen[qid] = qa_at
                if not _member(qa, "question", str, where, qa_at).strip():
                    raise _error(where, None, "empty question", "expected the question's text")
                answers = _objects(qa, "answers", where, qa_at)
                if not answers:
                    raise _error(where, None, "no answers", "expected at least one gold answer, as in SQuAD v1.1; "
                                 "SQuAD v2's unanswerable questions are not supported")
                for i, answer in enumerate(answers):
                    _check_answer(where, f"{qa_at}.answers[{i}]", answer, context)


def _check_answer(where: str, at: str, answer: dict, context: str) -> None:
    text = _member(answer, "text", str, where, at)
    start = _member(answer, "answer_start", int, where, at)
    if not text.strip():
        raise _error(where, None, f"{at}: empty answer text", "expected the answer as it reads in the context")
    if not 0 <= start <= len(context) - len(text):
        raise _error(where, None, f"answer {_quote(text)} at answer_start {start} does not fit in the "
                     f"{len(context)}-character context", f"expected 0 <= answer_start <= {len(context) - len(text)}")
    found = context[start:start + len(text)]
    if found != text:
        raise _error(where, None, f"answer {_quote(text)} is not at answer_start {start}",
                     f"the context there reads {_quote(found)}")
