"""What a task is to edgekit, in one object per task (``TaskSpec``).

The backbone (``models.encoder``) is the same for every task: token states [B, S, H] and a
pooled sentence vector [B, H]. A task adds at most one linear ``Head`` on one of them and
names what the artifact returns (``Output``s); every graph builder (tf-keras, the int8 TFLite
graph, ONNX) implements ``Head`` once, so a new task needs no backend code. The task also owns
its data, its losses, its metrics and the evaluation-gate keys they answer, and how raw
outputs become the user's answer. The modules next to this one are the tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from edgekit.config.enums import DataFormat, Task

BATCH, SEQUENCE = "batch", "sequence"
IGNORE = -100  # a per-token target no loss reads (a word's later sub-tokens, specials, padding), as in transformers


@dataclass(frozen=True)
class Output:
    """One named float32 artifact output. ``width`` is the size of a last axis after ``sequence``
    (or after ``batch``); None when there is none (``start_logits`` is [batch, sequence])."""

    name: str
    per_token: bool
    width: int | None

    @property
    def shape(self) -> list:
        """The manifest's shape: axis names for the free axes, numbers for fixed ones."""
        return [BATCH, *([SEQUENCE] if self.per_token else []), *([self.width] if self.width is not None else [])]

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": "float32", "shape": self.shape}


@dataclass(frozen=True)
class Head:
    """``Dense(width)`` over the pooled vector [B, H] (``over="pooled"``) or over every token
    [B, S, H] (``over="tokens"``). Its weights are the HF tensors ``<layer>.weight`` [width, H]
    and ``<layer>.bias`` [width], and ``layer`` is also the Keras layer's name. One output name
    takes all ``width`` columns; several split them evenly in order, each squeezed when it is one
    column wide (QA: ``qa_outputs`` [B, S, 2] -> ``start_logits``, ``end_logits`` [B, S])."""

    over: str
    layer: str
    width: int
    outputs: tuple[str, ...]

    def __post_init__(self):
        if self.over not in ("pooled", "tokens") or self.width % len(self.outputs):
            raise ValueError(f"bad head {self}")

    @property
    def columns(self) -> int:
        """Columns per output."""
        return self.width // len(self.outputs)

    def split(self, array, axis: int = -1) -> dict:
        """The head's [.., width] result -> {output name: array} (numpy or TF tensors)."""
        if len(self.outputs) == 1:
            return {self.outputs[0]: array}
        c = self.columns
        parts = {}
        for i, name in enumerate(self.outputs):
            part = array[..., i * c:(i + 1) * c]
            parts[name] = part[..., 0] if c == 1 else part
        return parts


class TaskSpec:
    """One task. Subclasses set the class attributes and implement the methods they need;
    the defaults describe a task without a head (feature extraction)."""

    task: ClassVar[Task]
    architecture: ClassVar[str]  # the transformers class that loads what edgekit writes
    formats: ClassVar[tuple[DataFormat, ...]]  # local data formats it reads (hf: through the datasets package)
    gates: ClassVar[tuple[str, ...]]  # evaluation-section keys its metrics answer
    metrics: ClassVar[tuple[str, ...]]  # the artifact metrics it reports, headline first
    head_layer: ClassVar[str | None] = None  # the head's Keras layer and HF tensor prefix
    needs_labels: ClassVar[bool] = True  # trains on labelled data (feature extraction: on text alone)

    @property
    def name(self) -> str:
        return self.task.value

    def head(self, config) -> Head | None:
        return None

    def outputs(self, config) -> tuple[Output, ...]:
        """What the artifact returns, in order (manifest ``outputs``)."""
        head = self.head(config)
        per_token = head.over == "tokens"
        return tuple(Output(n, per_token, None if head.columns == 1 and len(head.outputs) > 1 else head.columns)
                     for n in head.outputs)

    def output_names(self, config) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs(config))

    # --- data ------------------------------------------------------------------------------
    def read_splits(self, section) -> dict[str, Any]:
        """{split name: dataset} from a recipe's data section."""
        raise NotImplementedError

    def features(self, dataset, tokenizer, max_length: int, input_names: tuple[str, ...]):
        """The dataset as model inputs (a ``train.batching.TokenizedDataset`` with the targets the
        losses read)."""
        raise NotImplementedError

    def label_names(self, dataset) -> tuple[str, ...]:
        """The names the head's rows stand for ((): a head without label names)."""
        return ()

    # --- training (TensorFlow tensors; each returns per-example values [B]) ----------------
    def loss(self, out: dict, features: dict):
        """Fine-tuning: (loss [B], correct [B] as 0/1 or a score) from the model's outputs."""
        raise NotImplementedError

    def soft_loss(self, out: dict, features: dict, temperature: float):
        """Distillation toward the teacher's outputs ``features['teacher_<name>']``: loss [B]."""
        raise NotImplementedError

    def agreement(self, out: dict, features: dict):
        """Per-example agreement with the teacher's outputs, for progress lines [B]."""
        raise NotImplementedError

    # --- evaluation (numpy) -----------------------------------------------------------------
    def score(self, dataset, data, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray] | None) -> dict:
        """Metrics of ``outputs`` (per feature row, per-token outputs padded to a common width)
        on ``dataset``; agreement with ``reference`` (the fp32 model's outputs) when given."""
        raise NotImplementedError

    def check_gate(self, key: str) -> bool:
        return key in self.gates
