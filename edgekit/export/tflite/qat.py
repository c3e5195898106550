"""Quantization-aware training with tensorflow-model-optimization, then full-int8 conversion.

tfmot (0.8.1) needs a tf-keras model and fake-quantizes only what it knows: here every Dense
layer is annotated (``quantize_annotate_layer``) and ``quantize_apply`` wraps it with int8
weight and output fake-quant; embeddings, LayerNorm, attention and GELU stay float during
training and get their int8 ranges from calibration at conversion. tfmot's Dense config
quantizes kernels per tensor; a per-output-channel kernel fake-quant (LastValueQuantizer
per_axis=True) trains, but TF 2.21's converter then fails ("'tfl.transpose' op has
mismatched quantized axes"), so QAT kernels stay per tensor. The model is rebuilt
with a bounded padding bias (``mask_bias``) first, then weights are copied *by variable
name* after ``quantize_apply`` (its variable order differs from the original's).

Training: ``edgekit.train.loop.fit`` with the ``TrainSchedule`` given (AdamW, warm-up then
decay) on the task's own train split and its loss (``edgekit.tasks``: cross-entropy on
sentence labels, on each word's first sub-token tag, on the start and end positions), or,
for encoders on unlabeled text, mean squared error to the fp32 model's embeddings. The head
Dense is fake-quantized like every other Dense. Conversion uses a representative dataset:
without one the converter silently keeps float activations.
"""

from __future__ import annotations

import numpy as np

from edgekit import tasks
from edgekit.config import TrainSchedule


def _custom_objects() -> dict:
    from edgekit.models import layers as L

    return {c.__name__: c for c in (L.HiddenActivation, L.PositionEmbedding, L.SingleTypeEmbedding, L.AttentionMaskBias,
                                    L.SplitHeads, L.ScaleHeads, L.ScaledDotProductAttention, L.Pooling,
                                    L.L2Normalize, L.NoNorm, L.Trigram)}


def quantize_aware_model(pretrained, mask_bias: float):
    """A tfmot QAT copy of ``pretrained.model`` (Dense layers fake-quantized), same weights."""
    import tensorflow_model_optimization as tfmot
    import tf_keras as keras

    from edgekit.models.encoder import build_encoder

    base = build_encoder(pretrained.config.replace(mask_bias=mask_bias), mask_lookup=True)
    base.set_weights(pretrained.model.get_weights())  # same architecture: same weight order

    def annotate(layer):
        if isinstance(layer, keras.layers.Dense):
            return tfmot.quantization.keras.quantize_annotate_layer(layer)
        return layer

    annotated = keras.models.clone_model(base, clone_function=annotate)
    with tfmot.quantization.keras.quantize_scope(_custom_objects()):
        model = tfmot.quantization.keras.quantize_apply(annotated)
    source = {v.name: v for v in base.weights}
    copied = 0
    for variable in model.weights:
        if variable.name in source:
            variable.assign(source[variable.name])
            copied += 1
    if copied != len(base.weights):
        raise RuntimeError(f"QAT copy: matched {copied} of {len(base.weights)} weights by name")
    return model


def _distillation_loss(model, task):
    """Loop ``LossFn``: the task's loss toward the fp32 model's outputs (``teacher_<name>``) at
    temperature 1, and its agreement with them."""
    names = tuple(model.input_names)

    def loss_fn(features, training):
        out = model({n: features[n] for n in names}, training=training)
        return task.soft_loss(out, features, 1.0), task.agreement(out, features)

    return loss_fn


def train(model, pretrained, data, schedule: TrainSchedule, *, max_length: int, seed: int = 0):
    """Fine-tune the QAT model in place on ``data``, the task's train split (``TextDataset``,
    ``TaggedDataset`` or ``QADataset``, made into features by ``TaskSpec.features``); returns
    the loop's FitResult. Labelled: the task's loss (``TaskSpec.loss``). Without targets
    (feature extraction, or an unlabelled text split): distillation toward the fp32 model's own
    outputs (``TaskSpec.soft_loss``; feature extraction: MSE to its sentence vectors)."""
    from edgekit._tf import tf_modules
    from edgekit.train.finetune import task_loss
    from edgekit.train.infer import model_outputs
    from edgekit.train.loop import fit

    tf, _ = tf_modules()
    task = tasks.for_config(pretrained.config)
    features = task.features(data, pretrained.tokenizer, max_length, tuple(pretrained.model.input_names))
    extras = None
    if task.needs_labels and features.targets:
        loss_fn = task_loss(model, pretrained.config.task)
    else:  # per-example outputs only: every per-token task's data is labelled
        target = model_outputs(pretrained.model, features, task.outputs(pretrained.config))
        extras = lambda batch: {f"teacher_{k}": v[batch.rows] for k, v in target.items()}  # noqa: E731
        loss_fn = _distillation_loss(model, task)
    return fit(model=model, loss_fn=loss_fn, data=features, schedule=schedule, seed=seed,
               strategy=tf.distribute.get_strategy(), description="qat", extras=extras, show_progress=False)


def convert(model, input_names: tuple[str, ...], outputs: tuple[str, ...], batches: list[dict[str, np.ndarray]],
            options, *, static: bool, batch_size: int, seq_len: int) -> bytes:
    """The trained QAT model's ``outputs`` as full-int8 TFLite (int8 outputs), calibrated on ``batches``.

    The Dense layers' fake-quant ranges come from training; every other tensor's range comes
    from ``calibrate`` (the same range rules as int8-full: the padding-bias lookup keeps its
    table's range, so padding stays masked after calibrating on unpadded inputs)."""
    from edgekit.export.tflite.convert import keras_fn, signature
    from edgekit.export.tflite.int8 import quantize_graph

    concrete, module = signature(keras_fn(model, outputs), input_names, static=static, batch_size=batch_size,
                                 seq_len=seq_len, track=model)
    return quantize_graph(concrete, module, batches, options)
