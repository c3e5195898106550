"""An export folder's artifact ready to answer, by its task: text -> label and probabilities,
embedding, named entities, or question + context -> answer span.

One text per call, each window of it one runtime call at batch 1 (what a phone or a Pi app
does), timed with ``perf_counter``: ``model_ms`` is the runtime calls alone, ``total_ms`` adds
tokenisation and decoding. Entities and answers are decoded by ``entities.py`` and
``answers.py``, edgekit's own on-device decoders (symlinked here), so they are the ones the
export was scored with. Calls are serialised with a lock: an interpreter is not safe to call
from two threads at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo_app.answers import best_span
from demo_app.entities import decode_entities
from demo_app.exportdir import TASK_OUTPUTS, AppError, ExportFolder, error_line, read_export
from demo_app.runtimes import open_artifact
from demo_app.textenc import Encoded, TextEncoder, check_pair_windows


@dataclass(frozen=True)
class Answer:
    text: str
    output: np.ndarray  # float32 [labels] logits or [hidden] embedding
    tokens: int
    text_tokens: int
    model_ms: float
    total_ms: float

    @property
    def truncated(self) -> bool:
        return self.text_tokens > self.tokens


@dataclass(frozen=True)
class Prediction:
    answer: Answer
    label: str
    probabilities: dict[str, float]  # label -> softmax probability, in the export's label order


@dataclass(frozen=True)
class Tagged:
    text: str
    entities: list[dict]  # {"type", "text", "start", "end", "score"}: character offsets into text, text order
    tokens: int  # the text's tokens, [CLS] and [SEP] counted once
    windows: int  # runtime calls: windows of whole words, at most max_length tokens each
    model_ms: float
    total_ms: float


@dataclass(frozen=True)
class Reply:
    question: str
    context: str
    answer: str  # context[start:end]; "" when no window holds a valid span
    start: int | None  # characters into context
    end: int | None
    score: float | None  # start + end logit of the span (higher is better; not a probability)
    windows: int  # runtime calls: question + context windows
    question_tokens: int
    question_kept: int  # question tokens the model read (the rest were cut)
    model_ms: float
    total_ms: float


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max())
    return z / z.sum()


class DemoModel:
    def __init__(self, export: ExportFolder, artifact: str | None = None, threads: int = 1, verify: bool = True):
        self.export = export
        self.artifact = export.artifact(artifact)
        if verify:  # before any runtime or tokenizer reads a byte of them
            export.verify(self.artifact)
        try:
            self.runner = open_artifact(self.artifact.path, self.artifact.format, threads)
        except Exception as err:  # a runtime's own load error (corrupt file, unsupported op): one line
            raise AppError(f"{self.artifact.path}: {self.runner_name} could not load it: {error_line(err)}") from None
        missing = set(self.runner.input_names) - set(export.input_names)
        if missing:
            raise AppError(f"{self.artifact.path}: inputs {sorted(missing)} are not in edgekit.json's inputs")
        self.outputs = TASK_OUTPUTS[export.task]
        absent = [n for n in self.outputs if n not in self.runner.output_names]
        if absent:
            raise AppError(f"{self.artifact.path}: has no output {', '.join(absent)} (a {export.task} export's; "
                           f"it has {', '.join(self.runner.output_names)})")
        static = self.runner.shape
        self.max_length = min(export.max_length, static[1]) if static else export.max_length
        if export.task == "question-answering":  # a static artifact may hold fewer tokens than max_length
            check_pair_windows(self.max_length, export.windows["doc_stride"], export.windows["max_query_length"],
                               str(self.artifact.path))
        self.encoder = TextEncoder(export.folder, self.max_length, self.runner.input_names)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: str | Path, artifact: str | None = None, threads: int = 1,
             verify: bool = True) -> DemoModel:
        return cls(read_export(folder), artifact, threads, verify)

    @property
    def runner_name(self) -> str:
        return {"tflite": "LiteRT", "onnx": "onnxruntime", "openvino": "OpenVINO"}[self.artifact.format]

    @property
    def runtime(self) -> str:
        return self.runner.runtime

    def describe(self) -> dict:
        """What answers: for the page's footer and ``GET /api/info``."""
        return {"export": self.export.recipe_name, "task": self.export.task, "artifact": self.artifact.path.name,
                "runtime": self.runtime, "labels": list(self.export.labels), "max_length": self.max_length}

    def run(self, text: str) -> Answer:
        with self._lock:
            began = time.perf_counter()
            encoded: Encoded = self.encoder.encode(text)
            called = time.perf_counter()
            output = self.runner(encoded.inputs)[self.outputs[0]]
            done = time.perf_counter()
        return Answer(text=text, output=output, tokens=encoded.tokens, text_tokens=encoded.text_tokens,
                      model_ms=(done - called) * 1e3, total_ms=(done - began) * 1e3)

    def _windows(self, windows: list[dict[str, np.ndarray]]) -> tuple[list[dict[str, np.ndarray]], float]:
        """Each window's per-token outputs cut to its n tokens ({name: [n, ...]}), and the ms the
        runtime calls took together."""
        rows, ms = [], 0.0
        for inputs in windows:
            called = time.perf_counter()
            out = self.runner(inputs)
            ms += (time.perf_counter() - called) * 1e3
            n = inputs[self.runner.input_names[0]].shape[1]
            if any(out[name].ndim < 1 or out[name].shape[0] < n for name in self.outputs):
                raise AppError(f"{self.artifact.path}: outputs of shape "
                               f"{', '.join(str(list(out[name].shape)) for name in self.outputs)} for {n} tokens "
                               f"(a {self.export.task} export's are per token)")
            rows.append({name: out[name][:n] for name in self.outputs})
        return rows, ms

    def entities(self, text: str) -> Tagged:
        """The text's named entities, its windows' logits decoded together."""
        self.export.require("token-classification", "does not tag entities")
        with self._lock:
            began = time.perf_counter()
            windows = self.encoder.tag_windows(text)
            rows, model_ms = self._windows(windows.inputs)
            labels = self.export.labels
            logits = np.zeros((0, len(labels)), dtype=np.float32)
            if rows:
                logits = np.concatenate([row["logits"][a:b] for row, (a, b) in zip(rows, windows.content)])
            if logits.shape[1:] != (len(labels),):
                raise AppError(f"{self.artifact.path}: token logits of width {logits.shape[-1]} do not match "
                               f"the {len(labels)} tags in edgekit.json")
            found = decode_entities(logits, windows.word_ids, windows.offsets, labels, text)
            done = time.perf_counter()
        return Tagged(text=text, entities=found, tokens=windows.tokens, windows=windows.windows,
                      model_ms=model_ms, total_ms=(done - began) * 1e3)

    def answer(self, question: str, context: str) -> Reply:
        """The best span of ``context`` over all its windows, windowed and decoded with the
        manifest's ``windows`` (the settings edgekit scored the export with)."""
        self.export.require("question-answering", "does not answer questions")
        settings = self.export.windows
        with self._lock:
            began = time.perf_counter()
            windows = self.encoder.pair_windows(question, context, settings["doc_stride"],
                                                settings["max_query_length"])
            rows, model_ms = self._windows(windows.inputs)
            shape = windows.offsets.shape[:2]
            start, end = np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=np.float32)
            for w, row in enumerate(rows):
                start[w, :len(row["start_logits"])] = row["start_logits"]
                end[w, :len(row["end_logits"])] = row["end_logits"]
            span = best_span(start, end, windows.offsets, n_best=settings["n_best"],
                             max_answer_length=settings["max_answer_length"])
            done = time.perf_counter()
        found = span is not None
        return Reply(question=question, context=context, answer=context[span["start"]:span["end"]] if found else "",
                     start=span["start"] if found else None, end=span["end"] if found else None,
                     score=round(span["score"], 4) if found else None, windows=windows.windows,
                     question_tokens=windows.question_tokens, question_kept=windows.question_kept,
                     model_ms=model_ms, total_ms=(done - began) * 1e3)

    def classify(self, text: str) -> Prediction:
        self.export.require("text-classification", "does not classify texts")
        answer = self.run(text)
        if answer.output.shape != (len(self.export.labels),):
            raise AppError(f"{self.artifact.path}: output shape {list(answer.output.shape)} does not match "
                           f"the {len(self.export.labels)} labels in edgekit.json")
        probs = softmax(answer.output.astype(np.float64))
        best = int(np.argmax(answer.output))
        return Prediction(answer=answer, label=self.export.labels[best],
                          probabilities={name: float(p) for name, p in zip(self.export.labels, probs)})

    def embed(self, text: str) -> Answer:
        self.export.require("feature-extraction", "gives no embeddings")
        return self.run(text)


def nearest(query: np.ndarray, corpus: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Indices and cosine similarities of the ``k`` rows of ``corpus`` [N, H] closest to ``query`` [H]."""
    q = query / max(np.linalg.norm(query), 1e-12)
    c = corpus / np.maximum(np.linalg.norm(corpus, axis=1, keepdims=True), 1e-12)
    scores = c @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order]
