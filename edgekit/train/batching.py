"""Length-bucketed, dynamically padded token batches (SST-2 sentences are short: ~13 tokens).

Rows are tokenised once (texts here; words and question/context windows by their tasks). Each epoch shuffles with ``seed + epoch``, sorts rows by length
inside windows of ``batch_size * 64`` rows, cuts batches there and shuffles the batch order:
every batch is padded only to its own longest text (rounded up to a multiple of 8 so the
compiled train step sees few distinct shapes), and the order is reproducible, which is what
lets a resumed run skip exactly the batches it already trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

from edgekit.data import TextDataset
from edgekit.tasks.base import IGNORE
from edgekit.models.tokenizer import TextTokenizer

PAD_MULTIPLE = 8
WINDOW_BATCHES = 64


@dataclass(frozen=True)
class Batch:
    """``inputs``: int32 [B, S] arrays keyed by model input name; ``targets``: what the task's
    losses read (``labels`` [B], ``token_labels`` [B, S] padded with ``IGNORE``, ...);
    ``rows``: int64 [B] indices into the dataset (to look up cached teacher outputs)."""

    inputs: dict[str, np.ndarray]
    targets: dict[str, np.ndarray]
    rows: np.ndarray




class TokenizedDataset:
    """Token id rows (ragged, specials included) with per-row targets; yields padded batches.

    ``targets`` maps a name to an array [N, ...] (one value per row) or to a list of N int32
    arrays [n_i] aligned with the tokens (padded with ``IGNORE`` in a batch)."""

    def __init__(self, ids: list[np.ndarray], type_ids: list[np.ndarray], *, pad_id: int, max_length: int,
                 input_names: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids"),
                 targets: dict | None = None, meta=None):
        self.meta = meta  # how rows map back to the task's examples (word or question windows), if they differ
        self.ids, self.type_ids = list(ids), list(type_ids)
        self.input_names = tuple(input_names)
        self.lengths = np.array([len(i) for i in self.ids], dtype=np.int64)
        self.pad_id = pad_id
        self.max_length = max_length
        self.targets = dict(targets or {})

    @classmethod
    def from_texts(cls, dataset: TextDataset, tokenizer: TextTokenizer, max_length: int,
                   input_names: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")):
        """Texts (and pairs) tokenised once, truncated to ``max_length``; ``labels`` when labelled."""
        enc = tokenizer.encode_ragged(list(dataset.texts), max_length, pairs=dataset.text_pairs)
        targets = {} if dataset.labels is None else {"labels": dataset.labels}
        return cls(enc["input_ids"], enc["token_type_ids"], pad_id=tokenizer.pad_id, max_length=max_length,
                   input_names=input_names, targets=targets)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def width(self) -> int:
        """The longest row (per-token outputs over the dataset are padded to it)."""
        return int(self.lengths.max()) if len(self) else 0

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batch(self, rows: np.ndarray) -> Batch:
        """Rows padded to a shared length (their longest, rounded up to a multiple of 8)."""
        rows = np.asarray(rows, dtype=np.int64)
        longest = int(self.lengths[rows].max())
        width = min(-(-longest // PAD_MULTIPLE) * PAD_MULTIPLE, max(self.max_length, longest))
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int32)
        types = np.zeros((len(rows), width), dtype=np.int32)
        mask = np.zeros((len(rows), width), dtype=np.int32)
        for r, i in enumerate(rows):
            n = self.lengths[i]
            ids[r, :n], types[r, :n], mask[r, :n] = self.ids[i], self.type_ids[i], 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        targets = {}
        for name, values in self.targets.items():
            if isinstance(values, np.ndarray):
                targets[name] = values[rows]
            else:
                padded = np.full((len(rows), width), IGNORE, dtype=np.int32)
                for r, i in enumerate(rows):
                    padded[r, :len(values[i])] = values[i]
                targets[name] = padded
        return Batch({n: arrays[n] for n in self.input_names}, targets, rows)

    def epoch_order(self, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
        """The row indices of each batch of one training epoch (shuffled, length-bucketed)."""
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(self))
        window = batch_size * WINDOW_BATCHES
        batches = []
        for start in range(0, len(order), window):
            chunk = order[start:start + window]
            chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
            batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
        return [batches[i] for i in rng.permutation(len(batches))]

    def in_order(self, batch_size: int) -> Iterator[Batch]:
        """Every row once, sorted by length (fast inference); ``Batch.rows`` maps results back."""
        order = np.argsort(self.lengths, kind="stable")
        for start in range(0, len(order), batch_size):
            yield self.batch(order[start:start + batch_size])

    def row_inputs(self, i: int) -> dict[str, np.ndarray]:
        """Row ``i`` alone at its natural length: int32 [1, n_i] inputs (the latency and calibration unit)."""
        n = int(self.lengths[i])
        arrays = {"input_ids": self.ids[i], "attention_mask": np.ones(n, np.int32), "token_type_ids": self.type_ids[i]}
        return {name: np.asarray(arrays[name], np.int32)[None] for name in self.input_names}


def collect(call, data: TokenizedDataset, outputs, batch_size: int = 128, on_batch=None) -> dict[str, np.ndarray]:
    """``call`` (dict of int32 [B, S] -> dict of arrays) over ``data`` in length-sorted batches:
    ``{name: [N, ...]}`` for the ``outputs`` (``tasks.Output``s), per-token ones cut or padded
    with zeros to ``data.width`` (so batches of any width, static or not, line up).
    ``on_batch(batch, out)`` sees each batch with ``call``'s whole result (to stream other outputs)."""
    width = data.width
    parts: dict[str, list[np.ndarray]] = {o.name: [] for o in outputs}
    rows = []
    for batch in data.in_order(batch_size):
        out = call(batch.inputs)
        if on_batch is not None:
            on_batch(batch, out)
        for o in outputs:
            value = np.asarray(out[o.name], dtype=np.float32)
            if o.per_token:
                value = value[:, :width]
                value = np.pad(value, [(0, 0), (0, width - value.shape[1])] + [(0, 0)] * (value.ndim - 2))
            parts[o.name].append(value)
        rows.append(batch.rows)
    order = np.argsort(np.concatenate(rows), kind="stable")
    return {k: np.concatenate(v)[order] for k, v in parts.items()}
