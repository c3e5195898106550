"""What every export backend receives and returns.

A backend module (``edgekit.export.<format>``) provides ``export(job) -> ExportResult`` and
``load(path, threads) -> Runner``. Artifacts take int32 inputs ``input_ids``,
``attention_mask`` (and ``token_type_ids`` when the model has token types), each
[batch, seq], and have ONE output: ``logits`` [batch, labels] for classifiers or
``embedding`` [batch, hidden] (the pooled, possibly L2-normalised sentence vector) for
encoders — the same numbers as the fp32 tf-keras model's ``logits`` / ``pooled``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edgekit.config import QuantizeSection
from edgekit.config.formats import FormatRow
from edgekit.data import TextDataset
from edgekit.models.pretrained import Pretrained


INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")


def input_names(pretrained: Pretrained) -> tuple[str, ...]:
    """The model's inputs in BERT's order (Keras lists dict inputs alphabetically)."""
    return tuple(n for n in INPUT_ORDER if n in pretrained.model.input_names)


def output_name(pretrained: Pretrained) -> str:
    return "logits" if pretrained.config.num_labels else "embedding"


@dataclass(frozen=True)
class ExportJob:
    row: FormatRow
    pretrained: Pretrained  # the fp32 model (tf-keras) to convert; never modified
    folder: Path  # write the artifact (and any side files) here
    seq_len: int  # static: the fixed sequence length; dynamic: the longest input expected
    static: bool  # fixed [batch_size, seq_len] input shapes (no shape ops in the graph)
    batch_size: int = 1
    # representative inputs for calibration: int32 arrays [1, n_i] at natural length
    calibration: tuple[dict[str, np.ndarray], ...] = ()
    quantize: QuantizeSection = field(default_factory=QuantizeSection)
    train: TextDataset | None = None  # labelled text for quantization-aware training
    threads: int = 2

    @property
    def path(self) -> Path:
        """The main artifact file: ``<format>-<precision><suffix>`` in ``folder``."""
        return self.folder / f"{self.row.key}{self.row.suffix}"

    @property
    def input_names(self) -> tuple[str, ...]:
        return input_names(self.pretrained)

    @property
    def output(self) -> str:
        return output_name(self.pretrained)


@dataclass
class ExportResult:
    """Files written (the main artifact first) and facts for the manifest/report
    (e.g. ``ops``: op name -> count, ``float_ops``: ops that stayed float)."""

    files: list[Path]
    details: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """An artifact loaded in its own runtime."""

    input_names: tuple[str, ...]
    runtime: str  # e.g. "ai-edge-litert 2.3.0"
    static_shape: tuple[int, int] | None  # fixed [batch, seq] of a static artifact, else None

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Run one batch (int32 arrays [B, S]); returns the single output [B, C or H] float32.

        A static-shape artifact's runner pads (mask 0) or truncates to its fixed sequence
        length and runs its fixed batch size at a time, so callers never see the difference."""


def run_static(call, inputs: dict[str, np.ndarray], batch_size: int, seq_len: int) -> np.ndarray:
    """Run a fixed-shape artifact ``call`` (dict of [batch_size, seq_len] -> [batch_size, K]) on
    any [B, S] batch: pad with mask 0 or truncate to ``seq_len``, feed ``batch_size`` rows at a
    time (the last chunk padded with empty rows) and return [B, K]."""
    rows = next(iter(inputs.values())).shape[0]
    fitted = {}
    for name, value in inputs.items():
        value = np.asarray(value, dtype=np.int32)[:, :seq_len]
        pad_rows = -rows % batch_size
        fitted[name] = np.pad(value, ((0, pad_rows), (0, seq_len - value.shape[1])))
    outs = [call({n: v[i:i + batch_size] for n, v in fitted.items()}) for i in range(0, rows + (-rows % batch_size),
                                                                                   batch_size)]
    return np.concatenate(outs)[:rows]
