"""Run a loaded model on texts: labels + probabilities for classifiers, vectors for encoders."""

from __future__ import annotations

import numbers
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.models.pretrained import Pretrained, load_pretrained

DEFAULT_MAX_LENGTH = 128


@dataclass(frozen=True)
class Prediction:
    """One text's result. Classifiers fill ``label``, ``probabilities`` (label -> p, id order)
    and ``logits`` [num_labels]; encoders fill ``embedding`` [H] (the pooled sentence vector)."""

    text: str
    num_tokens: int
    label: str | None = None
    probabilities: dict[str, float] | None = None
    logits: np.ndarray | None = None
    embedding: np.ndarray | None = None

    def to_json(self) -> dict:
        out = {"text": self.text, "num_tokens": self.num_tokens}
        if self.label is not None:
            out.update(label=self.label, probabilities=self.probabilities, logits=self.logits.tolist())
        else:
            out["embedding"] = self.embedding.tolist()
        return out


def _check_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


class Predictor:
    """A model folder or alias, ready to predict. Texts are batched by length so that each
    batch is padded only to its own longest text."""

    def __init__(self, pretrained: Pretrained, max_length: int | None = None):
        limit = pretrained.config.max_position_embeddings
        if max_length is None:  # not chosen by the user: 128, or less if the model is shorter
            max_length = min(DEFAULT_MAX_LENGTH, limit)
        _check_int("max_length", max_length)
        if not 2 <= max_length <= limit:
            raise EdgekitError(f"--max-length {max_length} is outside 2..{limit} (the model's position table)")
        self.pretrained = pretrained
        self.max_length = max_length
        self.last_elapsed_ms = 0.0

    @classmethod
    def load(cls, source: str | Path, max_length: int | None = None) -> "Predictor":
        return cls(load_pretrained(source), max_length=max_length)

    @property
    def task(self) -> str:
        return self.pretrained.config.task

    def predict(self, texts: str | Iterable[str], batch_size: int = 32) -> list[Prediction]:
        """Predictions in the order of ``texts``; ``last_elapsed_ms`` holds the model time.

        A ``str`` is one text (a list of one prediction), never a sequence of one-letter texts,
        and ``bytes`` are refused (they would be a sequence of ints). Anything else must be an
        iterable of ``str`` (TypeError otherwise); ``batch_size`` is an int >= 1.
        """
        if isinstance(texts, (bytes, bytearray)):
            raise TypeError(f"texts is {type(texts).__name__}, expected str or an iterable of str (decode it first)")
        texts = [texts] if isinstance(texts, str) else list(texts)
        wrong = next((i for i, text in enumerate(texts) if not isinstance(text, str)), None)
        if wrong is not None:
            raise TypeError(f"texts[{wrong}] is {type(texts[wrong]).__name__}, expected str")
        _check_int("batch_size", batch_size)
        if batch_size < 1:
            raise EdgekitError(f"batch_size must be at least 1, got {batch_size}")
        tokenizer, config = self.pretrained.tokenizer, self.pretrained.config
        order = np.argsort(tokenizer.lengths(texts, self.max_length), kind="stable")
        results: dict[int, Prediction] = {}
        start = time.perf_counter()
        for first in range(0, len(texts), batch_size):
            index = order[first:first + batch_size]
            batch = tokenizer.encode([texts[i] for i in index], self.max_length)
            if "token_type_ids" not in self.pretrained.model.input_names:
                batch.pop("token_type_ids")
            out = self.pretrained.model(batch, training=False)
            for row, i in enumerate(index):
                results[i] = self._one(texts[i], int(batch["attention_mask"][row].sum()), out, row, config)
        self.last_elapsed_ms = (time.perf_counter() - start) * 1e3
        return [results[i] for i in range(len(texts))]

    @staticmethod
    def _one(text: str, num_tokens: int, out: dict, row: int, config) -> Prediction:
        if not config.num_labels:
            return Prediction(text, num_tokens, embedding=out["pooled"][row].numpy())
        logits = out["logits"][row].numpy()
        probs = _softmax(logits)
        return Prediction(
            text, num_tokens, label=config.id2label[int(probs.argmax())],
            probabilities={name: float(p) for name, p in zip(config.id2label, probs)}, logits=logits,
        )
