"""The fp32 model as a TensorFlow function with the artifact contract (see ``base``):
named int32 inputs, the task's named outputs. Converters trace it; nothing here is format-specific."""

from __future__ import annotations

import dataclasses

from edgekit._tf import tf_modules
from edgekit.export.base import task_outputs
from edgekit.models.pretrained import Pretrained

# Additive attention-mask constant used in exported graphs. -30 gives float outputs equal to
# -10000's (exp(-30) ~ 1e-13 of a real token's weight), but keeps the masked scores inside a
# range that int8 activations can represent; -10000 sends full-int8 BERT to chance accuracy
# (shared/notes/full-int8-findings.md).
EXPORT_MASK_BIAS = -30.0


def with_mask_bias(pretrained: Pretrained, mask_bias: float | None) -> Pretrained:
    """The same weights in an encoder built with another mask constant (None: EXPORT_MASK_BIAS)."""
    from edgekit.models.encoder import build_encoder

    bias = EXPORT_MASK_BIAS if mask_bias is None else mask_bias
    if pretrained.config.mask_bias == bias:
        return pretrained
    config = pretrained.config.replace(mask_bias=bias)
    model = build_encoder(config)
    model.set_weights(pretrained.model.get_weights())
    return dataclasses.replace(pretrained, config=config, model=model)


def serving_function(pretrained: Pretrained, *, static: bool = False, seq_len: int = 128, batch_size: int = 1):
    """A ``tf.function`` taking one dict of int32 [B, S] tensors (fixed B and S when ``static``)
    and returning the task's outputs by name (``base.task_outputs``: [B, ...] or [B, S, ...])."""
    tf, _ = tf_modules()
    model = pretrained.model
    names = tuple(o.name for o in task_outputs(pretrained))
    shape = [batch_size, seq_len] if static else [None, None]
    spec = {n: tf.TensorSpec(shape, tf.int32, name=n) for n in model.input_names}

    @tf.function(input_signature=[spec], autograph=False)
    def serve(inputs):
        out = model(inputs, training=False)
        return {name: out[name] for name in names}

    return serve
