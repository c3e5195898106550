"""Batched inference over a tokenised dataset, results back in dataset order."""

from __future__ import annotations

import numpy as np

from edgekit._tf import tf_modules
from edgekit.train.batching import TokenizedDataset

tf, _ = tf_modules()


def model_outputs(model, data: TokenizedDataset, keys: tuple[str, ...] = ("logits",),
                  batch_size: int = 128) -> dict[str, np.ndarray]:
    """``{key: [N, ...]}`` for per-example outputs (``logits`` [N, C], ``pooled`` [N, H])."""
    call = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    rows = []
    for batch in data.in_order(batch_size):
        out = call({k: tf.constant(v) for k, v in batch.inputs.items()})
        for k in keys:
            parts[k].append(out[k].numpy())
        rows.append(batch.rows)
    order = np.argsort(np.concatenate(rows), kind="stable")
    return {k: np.concatenate(v)[order] for k, v in parts.items()}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(-1) == labels).mean())
