"""The one resumable training loop every stage uses (fine-tune, distil, prune recovery, QAT).

A stage supplies a model, a per-example loss and the batches; the loop owns the optimiser,
the compiled (``tf.function``) step, tf.distribute, checkpoints and progress. Checkpoints
go to ``work_dir`` every ``save_every`` steps and at the end; a rerun with the same
``work_dir`` restores the model, the optimiser and the step and, because the epoch order is
a pure function of ``(seed, epoch)``, continues with exactly the next batch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgekit._tf import tf_modules
from edgekit.config import TrainSchedule
from edgekit.errors import ModelLoadError
from edgekit.models.files import first_line
from edgekit.train.batching import Batch, TokenizedDataset
from edgekit.train.optim import make_optimizer
from edgekit.train.progress import stage_progress

tf, keras = tf_modules()

# (features, training) -> (per-example loss [B], per-example correct 0/1 [B])
LossFn = Callable[[dict, bool], tuple]
# a batch -> extra per-example arrays the loss needs (e.g. cached teacher logits [B, C])
ExtrasFn = Callable[[Batch], dict[str, np.ndarray]]


@dataclass
class FitResult:
    steps: int
    resumed_from: int
    seconds: float
    history: list[dict] = field(default_factory=list)  # {"step", "loss", "accuracy"} per interval


def _features(batch: Batch, extras: ExtrasFn | None) -> dict[str, np.ndarray]:
    features = {**batch.inputs, **batch.targets}
    if extras is not None:
        features.update(extras(batch))
    return features


def _split(strategy, features: dict[str, np.ndarray]):
    """One numpy batch -> per-replica tensors (the batch dimension split evenly)."""
    n = strategy.num_replicas_in_sync
    if n == 1:
        return {k: tf.convert_to_tensor(v) for k, v in features.items()}
    parts = {k: np.array_split(v, n, axis=0) for k, v in features.items()}
    return strategy.experimental_distribute_values_from_function(
        lambda ctx: {k: tf.convert_to_tensor(p[ctx.replica_id_in_sync_group]) for k, p in parts.items()})


def _restore(checkpoint, path: str, work_dir: Path) -> None:
    """Resume from ``path``; one that cannot be read (a run killed while saving, files edited) is
    refused in one line: it may have restored part of the model, which must not train on."""
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except (tf.errors.OpError, AssertionError, ValueError) as err:
        raise ModelLoadError(f"{path}: cannot resume from this checkpoint ({first_line(err)}); delete {work_dir} "
                             "to train the stage from its start") from None


def fit(*, model, loss_fn: LossFn, data: TokenizedDataset, schedule: TrainSchedule, seed: int, strategy,
        description: str, extras: ExtrasFn | None = None, trackables: dict | None = None,
        work_dir: Path | None = None, save_every: int = 500, history_every: int = 50,
        show_progress: bool = True) -> FitResult:
    """Train ``model`` (and the variables of ``trackables``) on ``data`` for ``schedule.epochs``.

    ``model`` and ``trackables`` must have been built inside ``strategy.scope()``.
    """
    steps_per_epoch = data.num_batches(schedule.batch_size)
    total = max(1, math.ceil(schedule.epochs * steps_per_epoch))
    trackables = dict(trackables or {})
    variables = [v for v in model.trainable_variables
                 if not (schedule.freeze_word_embeddings and "word_embeddings" in v.name)]
    for layer in trackables.values():
        variables += list(layer.trainable_variables)
    with strategy.scope():
        optimizer = make_optimizer(schedule, total)
        optimizer.build(variables)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, **trackables)
    manager = None
    if work_dir is not None:
        manager = tf.train.CheckpointManager(checkpoint, str(Path(work_dir) / "checkpoints"), max_to_keep=1)
        if manager.latest_checkpoint:
            _restore(checkpoint, manager.latest_checkpoint, Path(work_dir))
    start = int(optimizer.iterations.numpy())

    @tf.function(reduce_retracing=True)
    def train_step(features, global_batch):
        def replica(features):
            with tf.GradientTape() as tape:
                loss, correct = loss_fn(features, True)
                scaled = tf.reduce_sum(loss) / global_batch
            grads = tape.gradient(scaled, variables)
            optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
            return tf.reduce_sum(loss), tf.reduce_sum(tf.cast(correct, tf.float32))

        loss_sum, correct_sum = strategy.run(replica, args=(features,))
        reduce = tf.distribute.ReduceOp.SUM
        return strategy.reduce(reduce, loss_sum, axis=None), strategy.reduce(reduce, correct_sum, axis=None)

    result = FitResult(steps=total, resumed_from=start, seconds=0.0)
    began = time.perf_counter()
    window = np.zeros(3)  # loss sum, correct sum, examples
    with stage_progress(description, total, completed=start, enabled=show_progress) as update:
        step = start
        while step < total:
            epoch, index = divmod(step, steps_per_epoch)
            for rows in data.epoch_order(schedule.batch_size, seed, epoch)[index:]:
                if step >= total:
                    break
                batch = data.batch(rows)
                loss_sum, correct_sum = train_step(_split(strategy, _features(batch, extras)),
                                                   tf.constant(float(len(rows))))
                step += 1
                window += (float(loss_sum), float(correct_sum), len(rows))
                if step % history_every == 0 or step == total:
                    entry = {"step": step, "loss": window[0] / window[2], "accuracy": window[1] / window[2]}
                    result.history.append(entry)
                    window[:] = 0
                    update(0, loss=entry["loss"], acc=entry["accuracy"])
                update(1)
                if manager is not None and (step % save_every == 0 or step == total):
                    manager.save(checkpoint_number=step)
    result.seconds = time.perf_counter() - began
    return result
