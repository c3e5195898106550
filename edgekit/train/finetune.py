"""Fine-tune: train the task's head and the encoder on labelled data, with the task's loss."""

from __future__ import annotations

from pathlib import Path

from edgekit import tasks
from edgekit.config import TrainSchedule
from edgekit.models.pretrained import Pretrained
from edgekit.train.batching import TokenizedDataset
from edgekit.train.loop import FitResult, fit


def task_loss(model, task=None):
    """The task's supervised loss (``tasks.TaskSpec.loss``) as a loop ``LossFn`` for ``model``;
    ``task`` defaults to text classification (a loss factory of one argument, as tfmot wants)."""
    spec = tasks.get(task or "text-classification")
    names = tuple(model.input_names)

    def loss_fn(features, training):
        return spec.loss(model({n: features[n] for n in names}, training=training), features)

    return loss_fn


def finetune(pretrained: Pretrained, data: TokenizedDataset, schedule: TrainSchedule, *, seed: int,
             strategy, work_dir: Path | None = None, show_progress: bool = True,
             description: str = "finetune") -> FitResult:
    """Train ``pretrained.model`` (built in ``strategy.scope()``) in place on ``data`` (the task's
    features, ``TaskSpec.features``); returns the loop's record."""
    loss_fn = task_loss(pretrained.model, pretrained.config.task)
    return fit(model=pretrained.model, loss_fn=loss_fn, data=data, schedule=schedule, seed=seed, strategy=strategy,
               description=description, work_dir=work_dir, show_progress=show_progress)
