"""What every export backend receives and returns.

A backend module (``edgekit.export.<format>``) provides ``export(job) -> ExportResult`` and
``load(path, threads) -> Runner``. Artifacts take int32 inputs ``input_ids``,
``attention_mask`` (and ``token_type_ids`` when the model has token types), each
[batch, seq], and return the task's named float32 outputs (``edgekit.tasks``: ``Output``):
``logits`` [batch, labels] (text classification), ``embedding`` [batch, hidden] (the pooled,
possibly L2-normalised sentence vector), ``logits`` [batch, seq, tags] (token classification)
or ``start_logits`` and ``end_logits`` [batch, seq] (question answering) - the same numbers
as the fp32 tf-keras model's outputs of those names.

Every artifact also records its outputs (``outputs_record``: the manifest's JSON, in the
format's own metadata slot), so that a runner knows which outputs are per token without
guessing from fixed shapes (a static [1, 16] ``start_logits`` and a 16-label ``logits`` look
alike).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Collection, Protocol

import numpy as np

from edgekit import tasks
from edgekit.config import QuantizeSection
from edgekit.config.formats import FormatRow
from edgekit.errors import ModelLoadError
from edgekit.models.pretrained import Pretrained
from edgekit.tasks import Output
from edgekit.tasks.base import SEQUENCE

INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
OUTPUTS_KEY = "edgekit_outputs"  # the metadata entry holding ``outputs_record``


def input_names(pretrained: Pretrained) -> tuple[str, ...]:
    """The model's inputs in BERT's order (Keras lists dict inputs alphabetically)."""
    return tuple(n for n in INPUT_ORDER if n in pretrained.model.input_names)


def task_outputs(pretrained: Pretrained) -> tuple[Output, ...]:
    """The artifact outputs of the model's task, in order."""
    return tasks.for_config(pretrained.config).outputs(pretrained.config)


def outputs_record(outputs: Collection[Output]) -> str:
    """The outputs as the JSON an artifact carries (``Output.to_json`` per output)."""
    return json.dumps([o.to_json() for o in outputs])


def read_outputs_record(text: str) -> tuple[Output, ...]:
    """``outputs_record``'s JSON back as ``Output``s."""
    outputs = []
    for entry in json.loads(text):
        shape = entry["shape"]
        width = shape[-1] if isinstance(shape[-1], int) else None
        outputs.append(Output(entry["name"], SEQUENCE in shape, width))
    return tuple(outputs)


def artifact_outputs(path: Path, names: Collection[str], record: str | None) -> tuple[Output, ...]:
    """The outputs of the artifact ``path`` whose runtime lists ``names``: as its record says,
    in the record's order; without a record (an artifact written before records, or by another
    tool) every output counts as one value per example (None width: unknown)."""
    if record is None:
        return tuple(Output(n, False, None) for n in names)
    outputs = read_outputs_record(record)
    if {o.name for o in outputs} != set(names):
        raise ModelLoadError(f"{path}: outputs {sorted(names)} (expected the ones its {OUTPUTS_KEY} record "
                             f"lists: {sorted(o.name for o in outputs)})")
    return outputs


def per_token(outputs: Collection[Output]) -> tuple[str, ...]:
    """Names of the outputs that have a sequence axis (``run_static``'s ``per_token``)."""
    return tuple(o.name for o in outputs if o.per_token)


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
    # the task's train split for quantization-aware training (TextDataset, TaggedDataset or QADataset)
    train: Any = None
    threads: int = 2

    @property
    def path(self) -> Path:
        """The main artifact file: ``<format>-<precision><suffix>`` in ``folder``."""
        return self.folder / f"{self.row.key}{self.row.suffix}"

    @property
    def input_names(self) -> tuple[str, ...]:
        return input_names(self.pretrained)

    @property
    def outputs(self) -> tuple[Output, ...]:
        return task_outputs(self.pretrained)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)


@dataclass
class ExportResult:
    """Files written (the main artifact first) and facts for the manifest/report
    (e.g. ``ops``: op name -> count, ``float_ops``: ops that stayed float)."""

    files: list[Path]
    details: dict[str, Any] = field(default_factory=dict)


class Runner(Protocol):
    """An artifact loaded in its own runtime."""

    input_names: tuple[str, ...]
    outputs: tuple[Output, ...]  # what it returns, as the artifact records them
    runtime: str  # e.g. "ai-edge-litert 2.3.0"
    static_shape: tuple[int, int] | None  # fixed [batch, seq] of a static artifact, else None

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch (int32 arrays [B, S]); returns every output by name, float32: [B, ...]
        per example, [B, S, ...] per token (real positions as the unpadded rows would give).

        A static-shape artifact's runner pads (mask 0) or truncates to its fixed sequence
        length and runs its fixed batch size at a time, so callers never see the difference,
        except that a per-token output of truncated inputs stops at the fixed length."""


def run_static(call, inputs: dict[str, np.ndarray], batch_size: int, seq_len: int,
               per_token: Collection[str] = ()) -> dict[str, np.ndarray]:
    """Run a fixed-shape artifact ``call`` (dict of [batch_size, seq_len] int32 -> dict of
    [batch_size, ...] float32) on any [B, S] batch: pad with mask 0 or truncate to ``seq_len``,
    feed ``batch_size`` rows at a time (the last chunk padded with empty rows) and return every
    output for the B rows; the outputs named in ``per_token`` ([batch_size, seq_len, ...]) come
    back at the caller's length, [B, min(S, seq_len), ...]."""
    rows, seq = next(iter(inputs.values())).shape
    pad_rows = -rows % batch_size
    fitted = {}
    for name, value in inputs.items():
        value = np.asarray(value, dtype=np.int32)[:, :seq_len]
        fitted[name] = np.pad(value, ((0, pad_rows), (0, seq_len - value.shape[1])))
    chunks = [call({n: np.ascontiguousarray(v[i:i + batch_size]) for n, v in fitted.items()})
              for i in range(0, rows + pad_rows, batch_size)]
    out = {}
    for name in chunks[0]:
        joined = np.concatenate([c[name] for c in chunks])[:rows]
        out[name] = joined[:, :seq] if name in per_token else joined
    return out
