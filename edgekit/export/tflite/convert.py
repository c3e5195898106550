"""tf.function -> TFLiteConverter: the export signature and the float precisions.

``signature`` wraps any ``fn(inputs) -> {output name: tensor}`` (the tf-keras model through
``keras_fn``, or the int8 graph of ``graph.EncoderGraph``) in a tf.function with int32 inputs
named ``input_ids``, ``attention_mask`` (, ``token_type_ids``) and the task's named outputs
(``logits``, ``embedding``, or ``start_logits`` and ``end_logits``; the converter lists
signature outputs by name, so QA's subgraph outputs are end_logits, start_logits).
Shapes are [None, None] (dynamic batch and sequence) or [batch_size, seq_len] (static: the
converter folds every shape computation, so the graph has no SHAPE / PACK / REDUCE_PROD).
The concrete function is converted through a tf.Module holding it, which gives the .tflite
its ``serving_default`` signature (runners address inputs and outputs by name, not position).

Precisions: fp32; fp16 (float16 weights, dequantized at load: float compute on CPU);
int8-dynamic (dynamic-range: int8 weights, activations quantized on the fly per op, float
outputs).
"""

from __future__ import annotations

from typing import Callable

from edgekit.config.enums import Precision


def signature(fn: Callable, input_names: tuple[str, ...], *, static: bool, batch_size: int = 1,
              seq_len: int | None = None, track=None):
    """(concrete function, trackable module) for the converter. ``track``: the object owning
    variables ``fn`` reads (a Keras model); without it the converter writes no signature.
    The module holds only ``track``'s variables: holding the Keras model itself makes the
    converter's SavedModel step trace every layer's call (MiniLM: 8 of 13 s per conversion)."""
    import tensorflow as tf

    shape = [batch_size, seq_len] if static else [None, None]
    spec = {n: tf.TensorSpec(shape, tf.int32, name=n) for n in input_names}

    @tf.function(input_signature=[spec])
    def serve(inputs):
        return dict(fn(inputs))

    module = tf.Module()
    module.serve = serve
    if track is not None:
        module.tracked = list(track.weights)
    return serve.get_concrete_function(), module


def keras_fn(model, outputs: tuple[str, ...]) -> Callable:
    """The tf-keras encoder's outputs of these names (the task's: ``base.task_outputs``)."""
    names = tuple(model.input_names)

    def call(inputs):
        out = model({n: inputs[n] for n in names}, training=False)
        return {name: out[name] for name in outputs}

    return call


def convert_float(concrete, module, precision: Precision) -> bytes:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    if precision is Precision.FP16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif precision is Precision.INT8_DYNAMIC:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision is not Precision.FP32:
        raise ValueError(f"convert_float does not write {precision.value}")
    return converter.convert()
