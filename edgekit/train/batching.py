"""Length-bucketed, dynamically padded token batches (SST-2 sentences are short: ~13 tokens).

Texts are tokenised once. Each epoch shuffles with ``seed + epoch``, sorts rows by length
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
from edgekit.models.tokenizer import TextTokenizer

PAD_MULTIPLE = 8
WINDOW_BATCHES = 64


@dataclass(frozen=True)
class Batch:
    """``inputs``: int32 [B, S] arrays keyed by model input name; ``labels`` int32 [B] or None;
    ``rows``: int64 [B] indices into the dataset (to look up cached teacher outputs)."""

    inputs: dict[str, np.ndarray]
    labels: np.ndarray | None
    rows: np.ndarray


class TokenizedDataset:
    """A TextDataset tokenised once into ragged id lists; yields padded batches."""

    def __init__(self, dataset: TextDataset, tokenizer: TextTokenizer, max_length: int,
                 input_names: tuple[str, ...] = ("input_ids", "attention_mask", "token_type_ids")):
        self.dataset = dataset
        self.input_names = tuple(input_names)
        enc = tokenizer.encode_ragged(list(dataset.texts), max_length, pairs=dataset.text_pairs)
        self.ids: list[np.ndarray] = enc["input_ids"]
        self.type_ids: list[np.ndarray] = enc["token_type_ids"]
        self.lengths = np.array([len(i) for i in self.ids], dtype=np.int64)
        self.pad_id = tokenizer.pad_id
        self.max_length = max_length

    def __len__(self) -> int:
        return len(self.ids)

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)

    def batch(self, rows: np.ndarray) -> Batch:
        """Rows padded to a shared length (their longest, rounded up to a multiple of 8)."""
        rows = np.asarray(rows, dtype=np.int64)
        longest = int(self.lengths[rows].max())
        width = min(-(-longest // PAD_MULTIPLE) * PAD_MULTIPLE, self.max_length)
        ids = np.full((len(rows), width), self.pad_id, dtype=np.int32)
        types = np.zeros((len(rows), width), dtype=np.int32)
        mask = np.zeros((len(rows), width), dtype=np.int32)
        for r, i in enumerate(rows):
            n = self.lengths[i]
            ids[r, :n], types[r, :n], mask[r, :n] = self.ids[i], self.type_ids[i], 1
        arrays = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        labels = None if self.dataset.labels is None else self.dataset.labels[rows].astype(np.int32)
        return Batch({n: arrays[n] for n in self.input_names}, labels, rows)

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
