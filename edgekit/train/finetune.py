"""Fine-tune: train the classification head and the encoder on labelled text."""

from __future__ import annotations

from pathlib import Path

from edgekit._tf import tf_modules
from edgekit.config import TrainSchedule
from edgekit.data import TextDataset
from edgekit.models.pretrained import Pretrained
from edgekit.train.batching import TokenizedDataset
from edgekit.train.loop import FitResult, fit

tf, keras = tf_modules()


def classification_loss(model):
    """Cross-entropy on ``features['labels']``; also returns per-example correctness."""
    names = tuple(model.input_names)

    def loss_fn(features, training):
        logits = model({n: features[n] for n in names}, training=training)["logits"]
        labels = features["labels"]
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return loss, tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels)

    return loss_fn


def finetune(pretrained: Pretrained, train: TextDataset, schedule: TrainSchedule, *, max_length: int, seed: int,
             strategy, work_dir: Path | None = None, show_progress: bool = True,
             description: str = "finetune") -> FitResult:
    """Train ``pretrained.model`` (built in ``strategy.scope()``) in place; returns the loop's record."""
    data = TokenizedDataset(train, pretrained.tokenizer, max_length, tuple(pretrained.model.input_names))
    return fit(model=pretrained.model, loss_fn=classification_loss(pretrained.model), data=data, schedule=schedule,
               seed=seed, strategy=strategy, description=description, work_dir=work_dir,
               show_progress=show_progress)
