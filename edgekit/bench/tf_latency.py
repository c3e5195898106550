"""Batch-1 latency of a tf-keras model under TensorFlow: fixed lengths or real texts.

The float reference for every exported artifact (not an edge runtime). Milliseconds.
"""

from __future__ import annotations

import itertools

import numpy as np

from edgekit._tf import tf_modules
from edgekit.bench.timing import LatencyStats, measure


def set_threads(threads: int) -> None:
    """Pin TensorFlow's intra- and inter-op pools; call before the first TF operation."""
    tf, _ = tf_modules()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _compiled(model):
    tf, _ = tf_modules()
    return tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)


def fixed_length(model, seq_len: int, min_seconds: float = 2.0) -> LatencyStats:
    """One [1, seq_len] input of real-looking ids (all positions attended)."""
    tf, _ = tf_modules()
    call = _compiled(model)
    inputs = {name: tf.constant(np.ones((1, seq_len), np.int32)) for name in model.input_names}
    return measure(lambda: call(inputs), warmup=5, min_runs=30, min_seconds=min_seconds)


def natural_length(pretrained, texts: list[str], max_length: int = 128, min_seconds: float = 2.0) -> LatencyStats:
    """Each call runs the next text at its own token count (no padding), cycling through ``texts``."""
    tf, _ = tf_modules()
    call = _compiled(pretrained.model)
    names = pretrained.model.input_names
    batches = []
    for text in texts:
        enc = pretrained.tokenizer.encode([text], max_length)
        batches.append({n: tf.constant(enc[n]) for n in names})
    for batch in batches[:50]:  # trace every length bucket before timing
        call(batch)
    cycle = itertools.cycle(batches)
    return measure(lambda: call(next(cycle)), warmup=len(batches) if len(batches) < 200 else 200,
                   min_runs=len(batches) if len(batches) < 300 else 300, min_seconds=min_seconds)
