"""An export folder's artifact ready to answer: text -> label and probabilities, or embedding.

One text per call (batch 1, what a phone or a Pi app does), timed with ``perf_counter``:
``model_ms`` is the runtime call alone, ``total_ms`` adds tokenisation and softmax. Calls
are serialised with a lock: an interpreter is not safe to call from two threads at once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo_app.exportdir import AppError, ExportFolder, error_line, read_export
from demo_app.runtimes import open_artifact
from demo_app.textenc import Encoded, TextEncoder


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
        static = self.runner.shape
        self.max_length = min(export.max_length, static[1]) if static else export.max_length
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
            output = self.runner(encoded.inputs)
            done = time.perf_counter()
        return Answer(text=text, output=output, tokens=encoded.tokens, text_tokens=encoded.text_tokens,
                      model_ms=(done - called) * 1e3, total_ms=(done - began) * 1e3)

    def classify(self, text: str) -> Prediction:
        if not self.export.classifier:
            raise AppError(f"{self.export.folder}: a {self.export.task} export has no labels to classify with "
                           f"(use embed or nearest)")
        answer = self.run(text)
        if answer.output.shape != (len(self.export.labels),):
            raise AppError(f"{self.artifact.path}: output shape {list(answer.output.shape)} does not match "
                           f"the {len(self.export.labels)} labels in edgekit.json")
        probs = softmax(answer.output.astype(np.float64))
        best = int(np.argmax(answer.output))
        return Prediction(answer=answer, label=self.export.labels[best],
                          probabilities={name: float(p) for name, p in zip(self.export.labels, probs)})

    def embed(self, text: str) -> Answer:
        if self.export.classifier:
            raise AppError(f"{self.export.folder}: a {self.export.task} export gives labels, not embeddings "
                           f"(use classify)")
        return self.run(text)


def nearest(query: np.ndarray, corpus: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Indices and cosine similarities of the ``k`` rows of ``corpus`` [N, H] closest to ``query`` [H]."""
    q = query / max(np.linalg.norm(query), 1e-12)
    c = corpus / np.maximum(np.linalg.norm(corpus, axis=1, keepdims=True), 1e-12)
    scores = c @ q
    order = np.argsort(-scores, kind="stable")[:k]
    return [(int(i), float(scores[i])) for i in order]
