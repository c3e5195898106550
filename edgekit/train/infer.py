"""Batched inference over a tokenised dataset, results back in dataset order."""

from __future__ import annotations

import numpy as np

from edgekit._tf import tf_modules
from edgekit.train.batching import TokenizedDataset, collect

tf, _ = tf_modules()


def model_outputs(model, data: TokenizedDataset, outputs, batch_size: int = 128) -> dict[str, np.ndarray]:
    """The tf-keras ``model``'s ``outputs`` over ``data`` (``collect``)."""
    fn = tf.function(lambda inputs: model(inputs, training=False), reduce_retracing=True)

    def call(inputs):
        return {k: v.numpy() for k, v in fn({k: tf.constant(v) for k, v in inputs.items()}).items()
                if k in {o.name for o in outputs}}

    return collect(call, data, outputs, batch_size)
