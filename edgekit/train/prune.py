"""Pruning: structured (whole heads and FFN neurons out: a physically smaller dense model) and
unstructured magnitude pruning with tensorflow-model-optimization (zeros in Dense kernels).

Structured pruning ranks heads and FFN neurons by first-order Taylor importance (Michel et
al. 2019, "Are Sixteen Heads Really Better than One?"): every head's context and every FFN
neuron's activation is multiplied by a mask ξ = 1, and the importance of a unit is
``E_x |∂L(x)/∂ξ|`` — the mean over examples of the absolute per-example gradient. For an FFN
neuron that gradient is ``Σ_tokens activation × ∂L/∂activation``. The masks are per-example
inputs of an instrumented copy of the encoder (``build_encoder(importance_masks=True)``), so
one backward pass gives every example's gradient. Dropout is off (``training=False``).

The loss L: the task's supervised loss on the batch's targets. Without them, a sentence
classifier is scored against its own argmax predictions (self-consistency: which units the
current predictions depend on); an encoder without a classifier is scored by ``½‖pooled‖²``
taken before L2 normalisation (a normalised vector's norm is constant and would give zero
gradients). That measures how much each unit moves the sentence vector along its own
direction; it is a proxy — with labelled data, prefer a classifier.

Magnitude pruning only zeroes weights: the tensors keep their shapes, so the model runs
exactly as fast as before and only a compressed file (zip, gzip) gets smaller.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Iterable

import numpy as np

from edgekit import tasks
from edgekit._tf import tf_modules
from edgekit.config.enums import Task
from edgekit.models.bert_config import BertConfig
from edgekit.models.pretrained import Pretrained
from edgekit.models.weight_layout import weight_slots

# (inputs: dict of int32 [B, S] arrays, targets: the task's {name: array} (labels [B] alone may be
# given as the array), or None)
Batch = tuple[dict[str, np.ndarray], "dict | np.ndarray | None"]

_MASK_INPUTS = ("head_mask", "ffn_mask")
# Keras layers whose heads / FFN neurons structured pruning slices: layer_<i>_[ffn_<j>_]<kind>
_SLICED = re.compile(r"layer_(?P<layer>\d+)_(?:ffn_(?P<ffn>\d+)_)?"
                     r"(?P<kind>query|key|value|attention_output|intermediate|output)$")
# Dense layers that magnitude pruning leaves dense: the task heads are tiny and sensitive.
UNPRUNED_DENSE = ("classifier", "qa_outputs")


def _targets(targets) -> dict:
    """A batch's targets as the task's {name: tensor} ({} for none)."""
    tf, _ = tf_modules()
    if targets is None:
        return {}
    if not isinstance(targets, dict):
        targets = {"labels": targets}
    return {k: tf.constant(v, dtype=tf.int32) for k, v in targets.items()}


# ---------------------------------------------------------------------------- importance


def _feed(model, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
    """The model's own inputs from a batch (zero token types when the batch has none)."""
    names = [n for n in model.input_names if n not in _MASK_INPUTS]
    feed = {}
    for name in names:
        if name in inputs:
            feed[name] = np.asarray(inputs[name], dtype=np.int32)
        elif name == "token_type_ids":
            feed[name] = np.zeros_like(np.asarray(inputs["input_ids"]), dtype=np.int32)
        else:
            raise ValueError(f"batch lacks the model input {name!r} (has {', '.join(sorted(inputs))})")
    return feed


def _instrumented(model, config: BertConfig):
    """A copy of ``model`` with head / FFN mask inputs; the weights are copied by layer name."""
    from edgekit.models.encoder import build_encoder

    # Only the label-free encoder loss needs the pooled vector before normalisation.
    scored = config.replace(normalize=False) if config.normalize and config.task == "feature-extraction" else config
    copy = build_encoder(scored, importance_masks=True)
    for slot in weight_slots(config):
        copy.get_layer(slot.layer).set_weights(model.get_layer(slot.layer).get_weights())
    return copy


def _importances(model, config: BertConfig, batches: Iterable[Batch]) -> tuple[np.ndarray, np.ndarray]:
    """(head importance [L, N], FFN importance [L * F, I]: F FFNs per block, ``encoder``'s
    ``ffn_mask`` rows) in one pass over ``batches``."""
    tf, _ = tf_modules()
    scored = _instrumented(model, config)
    layers, heads, neurons = config.num_layers, config.num_heads, config.intermediate_size
    ffns = layers * config.ffns_per_block

    task = tasks.for_config(config)

    def loss_of(outputs, feed, targets):
        if targets:
            return tf.reduce_sum(task.loss(outputs, {**feed, **targets})[0])
        if task.task is Task.TEXT_CLASSIFICATION:  # self-consistency: its own predictions as labels
            labels = tf.argmax(outputs["logits"], axis=-1, output_type=tf.int32)
            return tf.reduce_sum(task.loss(outputs, {"labels": labels})[0])
        if task.head(config) is not None:
            raise ValueError(f"importance of a {task.name} model needs its targets")
        return 0.5 * tf.reduce_sum(tf.square(outputs["pooled"]))

    head_total = np.zeros((layers, heads), dtype=np.float64)
    ffn_total = np.zeros((ffns, neurons), dtype=np.float64)
    count = 0
    for inputs, targets in batches:
        feed = _feed(scored, inputs)
        size = feed["input_ids"].shape[0]
        head_mask = tf.ones((size, layers, heads))
        ffn_mask = tf.ones((size, ffns, neurons))
        with tf.GradientTape() as tape:
            tape.watch([head_mask, ffn_mask])
            outputs = scored({**feed, "head_mask": head_mask, "ffn_mask": ffn_mask}, training=False)
            # A sum of per-example losses: row b of each mask gradient is example b's own gradient.
            loss = loss_of(outputs, feed, _targets(targets))
        head_grad, ffn_grad = tape.gradient(loss, [head_mask, ffn_mask])
        head_total += np.abs(head_grad.numpy()).sum(axis=0)
        ffn_total += np.abs(ffn_grad.numpy()).sum(axis=0)
        count += size
    if not count:
        raise ValueError("importance needs at least one batch")
    return head_total / count, ffn_total / count


def head_importance(model, config: BertConfig, batches: Iterable[Batch]) -> np.ndarray:
    """[num_layers, num_heads] mean |∂L/∂head mask| per example; higher = more important."""
    return _importances(model, config, batches)[0]


def ffn_importance(model, config: BertConfig, batches: Iterable[Batch]) -> np.ndarray:
    """[num_layers × FFNs per block, intermediate_size] mean |Σ activation × ∂L/∂activation| per example."""
    return _importances(model, config, batches)[1]


# ---------------------------------------------------------------------------- structured


def _count(sparsity: float, total: int, what: str) -> int:
    """Units to remove: sparsity × total rounded half up, keeping at least one unit."""
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {sparsity}")
    return min(int(math.floor(sparsity * total + 0.5)), total - 1)


def _least_important(scores: np.ndarray, remove: int) -> np.ndarray:
    """Indices of the ``remove`` lowest scores (ties: lower index first), sorted."""
    return np.sort(np.argsort(scores, kind="stable")[:remove])


def _output_options(model) -> dict[str, bool]:
    outputs = model.output if isinstance(model.output, dict) else {}
    return {"output_hidden_states": "hidden_states" in outputs, "output_attentions": "attentions" in outputs}


def prune_structured(pretrained: Pretrained, batches: Iterable[Batch], *, head_sparsity: float,
                     ffn_sparsity: float) -> Pretrained:
    """A new, physically smaller Pretrained: per layer, the ``round(head_sparsity × heads)``
    least important heads (at least one head stays) and ``round(ffn_sparsity ×
    intermediate_size)`` least important FFN neurons are cut out of the weight matrices.

    Every layer keeps the same counts (one config describes the model); the removed heads are
    recorded in ``config.pruned_heads`` in the original numbering (so saving writes HF's
    ``pruned_heads``), also when ``pretrained`` was pruned before. ``pretrained`` is unchanged;
    the tokenizer and ``source`` carry over. ``batches`` is read once, and only when
    something is removed.
    """
    config, model = pretrained.config, pretrained.model
    heads, neurons = config.num_heads, config.intermediate_size
    drop_heads = _count(head_sparsity, heads, "head_sparsity")
    drop_neurons = _count(ffn_sparsity, neurons, "ffn_sparsity")
    if drop_heads or drop_neurons:
        head_scores, ffn_scores = _importances(model, config, batches)
    else:
        head_scores = np.zeros((config.num_layers, heads))
        ffn_scores = np.zeros((config.num_layers * config.ffns_per_block, neurons))

    kept_heads, kept_neurons, pruned_heads = [], [], []
    for i in range(config.num_layers):
        removed = set(_least_important(head_scores[i], drop_heads).tolist())
        kept_heads.append([h for h in range(heads) if h not in removed])
        before = set(config.pruned_heads[i]) if config.pruned_heads else set()
        original = [h for h in range(config.original_num_heads) if h not in before]  # current -> original
        pruned_heads.append(tuple(sorted(before | {original[h] for h in removed})))

    for scores in ffn_scores:  # every FFN (MobileBERT's stacked ones too) keeps the same count
        gone = set(_least_important(scores, drop_neurons).tolist())
        kept_neurons.append(np.array([n for n in range(neurons) if n not in gone], dtype=np.int64))
    new_config = config.replace(
        num_heads=heads - drop_heads, attention_head_size=config.head_size,
        pruned_heads=tuple(pruned_heads), intermediate_size=neurons - drop_neurons,
    )
    from edgekit.models.encoder import build_encoder

    new_model = build_encoder(new_config, **_output_options(model))
    size, per_block = config.head_size, config.ffns_per_block
    for slot in weight_slots(new_config):
        values = model.get_layer(slot.layer).get_weights()
        sliced = _SLICED.match(slot.layer)
        if sliced:
            i, kind = int(sliced["layer"]), sliced["kind"]
            ffn = i * per_block + (int(sliced["ffn"]) if sliced["ffn"] else per_block - 1)
            columns = np.concatenate([np.arange(h * size, (h + 1) * size) for h in kept_heads[i]])
            kernel, bias = values
            if kind in ("query", "key", "value"):  # Keras kernels are [in, out]
                values = [kernel[:, columns], bias[columns]]
            elif kind == "attention_output":
                values = [kernel[columns, :], bias]
            elif kind == "intermediate":
                values = [kernel[:, kept_neurons[ffn]], bias[kept_neurons[ffn]]]
            else:  # output
                values = [kernel[kept_neurons[ffn], :], bias]
        new_model.get_layer(slot.layer).set_weights(values)
    return Pretrained(config=new_config, model=new_model, tokenizer=pretrained.tokenizer, source=pretrained.source)


# ---------------------------------------------------------------------------- magnitude


def pruning_schedule(target_sparsity: float, steps: int):
    """tfmot PolynomialDecay from 0 to ``target_sparsity``, reached at ~75% of ``steps`` (the
    rest recovers at the final sparsity), with about 10 mask updates.

    tfmot counts a wrapper's training calls 1, 2, ... and updates the masks only at steps that
    are multiples of ``frequency`` inside [begin_step, end_step]; its default frequency=100
    with a schedule shorter than 100 steps never updates them, so nothing is pruned. Here
    ``end_step`` is a multiple of ``frequency`` and at most ``steps``, so the last update
    applies exactly ``target_sparsity``.
    """
    import tensorflow_model_optimization as tfmot

    if not 0.0 <= target_sparsity < 1.0:
        raise ValueError(f"target_sparsity must be in [0, 1), got {target_sparsity}")
    if steps < 1:
        raise ValueError(f"magnitude pruning needs at least one step, got {steps}")
    end = max(1, round(0.75 * steps))
    frequency = max(1, end // 10)
    end = end // frequency * frequency
    return tfmot.sparsity.keras.PolynomialDecay(
        initial_sparsity=0.0, final_sparsity=target_sparsity, begin_step=0, end_step=end, frequency=frequency)


def dense_kernel_sparsity(model, skip: tuple[str, ...] = UNPRUNED_DENSE) -> float:
    """Fraction of exact zeros over the kernels of the model's Dense layers (not ``skip``)."""
    _, keras = tf_modules()
    zeros = total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dense) and layer.name not in skip:
            kernel = layer.kernel.numpy()
            zeros += int((kernel == 0).sum())
            total += kernel.size
    return zeros / total if total else 0.0


def _batches_for(batches: Iterable[Batch], steps: int):
    """``steps`` batches, re-iterating ``batches`` (epochs) when it is not a one-shot iterator."""
    done = 0
    while done < steps:
        progressed = False
        for batch in batches:
            progressed = True
            yield batch
            done += 1
            if done == steps:
                return
        if not progressed:
            raise ValueError("magnitude pruning got no batches")
        if iter(batches) is batches:
            raise ValueError(f"batches ran out after {done} of {steps} steps (pass a list to repeat them)")


def magnitude_prune(model, batches: Iterable[Batch], *, target_sparsity: float, steps: int,
                    learning_rate: float, loss_fn: Callable) -> Any:
    """Unstructured magnitude pruning of every Dense kernel except the task head.

    A copy of ``model`` (a tf-keras functional model; ``model`` itself is not changed) gets
    tfmot's ``prune_low_magnitude`` wrappers with ``pruning_schedule(target_sparsity,
    steps)``, trains ``steps`` batches with Adam(``learning_rate``) and dropout on (the
    wrappers count their steps; tfmot's UpdatePruningStep callback starts the count and
    re-applies the masks after the last update), and is returned stripped of the wrappers:
    same layers, names and outputs, ~``target_sparsity`` zeros in each pruned kernel (see
    ``dense_kernel_sparsity``). Biases, LayerNorms and embeddings stay dense. The tensors keep
    their shapes: latency does not change, only compressed file size.

    ``loss_fn`` follows ``edgekit.train.loop.LossFn``: ``loss_fn(model)`` returns
    ``fn(features, training)`` → per-example loss [B] (or a tuple whose first item it is),
    where ``features`` are the batch inputs plus its targets (e.g. ``edgekit.train.finetune.task_loss``).
    """
    import tensorflow_model_optimization as tfmot

    tf, keras = tf_modules()
    schedule = pruning_schedule(target_sparsity, steps)
    base = keras.models.clone_model(model)
    base.set_weights(model.get_weights())

    def wrap(layer):
        if isinstance(layer, keras.layers.Dense) and layer.name not in UNPRUNED_DENSE:
            return tfmot.sparsity.keras.prune_low_magnitude(layer, pruning_schedule=schedule)
        return layer

    wrapped = keras.models.clone_model(base, clone_function=wrap)
    loss_of = loss_fn(wrapped)
    optimizer = keras.optimizers.Adam(learning_rate)

    @tf.function(reduce_retracing=True)
    def train_step(features):
        with tf.GradientTape() as tape:
            result = loss_of(features, True)
            per_example = result[0] if isinstance(result, (tuple, list)) else result
            loss = tf.reduce_mean(per_example)
        variables = wrapped.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    callback = tfmot.sparsity.keras.UpdatePruningStep()
    callback.set_model(wrapped)
    callback.on_train_begin()
    for step, (inputs, targets) in enumerate(_batches_for(batches, steps)):
        callback.on_train_batch_begin(step)
        features = {name: tf.constant(value) for name, value in _feed(wrapped, inputs).items()}
        train_step({**features, **_targets(targets)})
    # The optimizer's last steps move masked weights off zero; this re-applies the masks.
    callback.on_epoch_end(0)
    return tfmot.sparsity.keras.strip_pruning(wrapped)
