"""Run a loaded model on texts, and answer as its task does: labels + probabilities (text
classification), vectors (feature extraction), entities with character offsets (token
classification), or an answer span of a context (question answering)."""

from __future__ import annotations

import numbers
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import tasks
from edgekit.config.enums import Task
from edgekit.errors import EdgekitError
from edgekit.models.pretrained import Pretrained, load_pretrained

DEFAULT_MAX_LENGTH = 128


@dataclass(frozen=True)
class Prediction:
    """One text's result. Classifiers fill ``label``, ``probabilities`` (label -> p, id order)
    and ``logits`` [num_labels]; encoders fill ``embedding`` [H] (the pooled sentence vector);
    taggers ``entities`` ({type, text, start, end, score}, character offsets into ``text``); QA
    models ``context`` and ``answer`` ({text, start, end, score} into the context; None when no
    span qualifies; score = start + end logit). ``num_tokens``: tokens the model read (all windows)."""

    text: str
    num_tokens: int
    label: str | None = None
    probabilities: dict[str, float] | None = None
    logits: np.ndarray | None = None
    embedding: np.ndarray | None = None
    entities: list[dict] | None = None
    context: str | None = None
    answer: dict | None = None

    def to_json(self) -> dict:
        out = {"text": self.text, "num_tokens": self.num_tokens}
        if self.label is not None:
            out.update(label=self.label, probabilities=self.probabilities, logits=self.logits.tolist())
        elif self.embedding is not None:
            out["embedding"] = self.embedding.tolist()
        elif self.entities is not None:
            out["entities"] = self.entities
        else:
            out.update(context=self.context, answer=self.answer)
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
        limit = pretrained.config.max_positions
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

    def predict(self, texts: str | Iterable[str], batch_size: int = 32,
                pairs: str | Iterable[str] | None = None) -> list[Prediction]:
        """Predictions in the order of ``texts``; ``last_elapsed_ms`` holds the model time.

        A ``str`` is one text (a list of one prediction), never a sequence of one-letter texts,
        and ``bytes`` are refused (they would be a sequence of ints). Anything else must be an
        iterable of ``str`` (TypeError otherwise); ``batch_size`` is an int >= 1. ``pairs`` gives
        each text its second segment (one per text, or one ``str`` for all): a QA model's
        context (required: ``texts`` are its questions), a pair classifier's second text.
        """
        texts = self._strings(texts, "texts")
        _check_int("batch_size", batch_size)
        if batch_size < 1:
            raise EdgekitError(f"batch_size must be at least 1, got {batch_size}")
        if pairs is not None:
            pairs = [pairs] * len(texts) if isinstance(pairs, str) else self._strings(pairs, "pairs")
            if len(pairs) != len(texts):
                raise EdgekitError(f"{len(pairs)} pairs for {len(texts)} texts (expected one each)")
        if self.task == Task.QUESTION_ANSWERING.value:
            if pairs is None:
                raise EdgekitError("a question-answering model needs a context for each question (--context)")
            return self._timed(lambda: self._answers(texts, pairs, batch_size))
        if pairs is not None and self.task != Task.TEXT_CLASSIFICATION.value:
            raise EdgekitError(f"pairs are for text-classification and question-answering models, not {self.task}")
        if self.task == Task.TOKEN_CLASSIFICATION.value:
            return self._timed(lambda: self._entities(texts, batch_size))
        return self._timed(lambda: self._sentences(texts, pairs, batch_size))

    @staticmethod
    def _strings(values, name: str) -> list[str]:
        if isinstance(values, (bytes, bytearray)):
            raise TypeError(f"{name} is {type(values).__name__}, expected str or an iterable of str (decode it first)")
        values = [values] if isinstance(values, str) else list(values)
        wrong = next((i for i, v in enumerate(values) if not isinstance(v, str)), None)
        if wrong is not None:
            raise TypeError(f"{name}[{wrong}] is {type(values[wrong]).__name__}, expected str")
        return values

    def _sentences(self, texts: list[str], pairs: list[str] | None, batch_size: int) -> list[Prediction]:
        from edgekit.data import TextDataset
        from edgekit.train.batching import TokenizedDataset

        data = TokenizedDataset.from_texts(TextDataset(texts, None, (), "<predict>", text_pairs=pairs),
                                           self.pretrained.tokenizer, self.max_length,
                                           tuple(self.pretrained.model.input_names))
        out = self._run(data, batch_size)
        return [self._one(text, int(n), out, row, self.pretrained.config)
                for row, (text, n) in enumerate(zip(texts, data.lengths))]

    def _timed(self, run) -> list[Prediction]:
        start = time.perf_counter()
        results = run()
        self.last_elapsed_ms = (time.perf_counter() - start) * 1e3
        return results

    def _run(self, data, batch_size: int) -> dict[str, np.ndarray]:
        from edgekit.train.infer import model_outputs

        config = self.pretrained.config
        return model_outputs(self.pretrained.model, data, tasks.for_config(config).outputs(config), batch_size)

    def _entities(self, texts: list[str], batch_size: int) -> list[Prediction]:
        """Each text's entities, read over windows cut between words when it is long."""
        from edgekit.tasks.word_windows import encode_texts, text_entities
        from edgekit.train.batching import TokenizedDataset

        tokenizer = self.pretrained.tokenizer
        windows = encode_texts(tokenizer, texts, self.max_length)
        data = TokenizedDataset(windows.ids, windows.type_ids, pad_id=tokenizer.pad_id, max_length=self.max_length,
                                input_names=tuple(self.pretrained.model.input_names))
        found = text_entities(windows, self._run(data, batch_size)["logits"], self.pretrained.config.id2label, texts)
        tokens = np.bincount(windows.text, weights=data.lengths, minlength=len(texts))
        return [Prediction(text, int(n), entities=e) for text, n, e in zip(texts, tokens, found)]

    def _answers(self, questions: list[str], contexts: list[str], batch_size: int) -> list[Prediction]:
        """Each question's best span of its context (windows with a stride when it is long)."""
        from edgekit.data.squad import QADataset
        from edgekit.tasks.question_answering import MAX_ANSWER_LENGTH, N_BEST
        from edgekit.tasks.qa_windows import best_spans

        n = len(questions)
        asked = QADataset(tuple(map(str, range(n))), questions, contexts, ((),) * n, ((),) * n, (0,) * n, "<predict>")
        task = tasks.get(Task.QUESTION_ANSWERING)
        data = task.features(asked, self.pretrained.tokenizer, self.max_length, tuple(self.pretrained.model.input_names))
        out = self._run(data, batch_size)
        spans = best_spans(data.meta, n, out["start_logits"], out["end_logits"], n_best=N_BEST,
                           max_answer_length=MAX_ANSWER_LENGTH)
        tokens = np.bincount(data.meta.example, weights=data.lengths, minlength=n)
        return [Prediction(q, int(k), context=c, answer=None if s is None else {
            "text": c[s["start"]:s["end"]], "start": s["start"], "end": s["end"], "score": round(float(s["score"]), 4)})
            for q, c, k, s in zip(questions, contexts, tokens, spans)]

    @staticmethod
    def _one(text: str, num_tokens: int, out: dict, row: int, config) -> Prediction:
        if not config.num_labels:
            return Prediction(text, num_tokens, embedding=out["embedding"][row])
        logits = out["logits"][row]
        probs = _softmax(logits)
        return Prediction(
            text, num_tokens, label=config.id2label[int(probs.argmax())],
            probabilities={name: float(p) for name, p in zip(config.id2label, probs)}, logits=logits,
        )
