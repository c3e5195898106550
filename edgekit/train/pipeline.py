"""Run a recipe's training stages in order — finetune → distill → prune — each cached.

Every stage reads the previous stage's checkpoint (or the recipe's model) and writes its
own; a stage whose inputs (checkpoint content, data, stage settings, seed) are unchanged is
reused, and a killed stage resumes from its last checkpoint.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from edgekit import tasks
from edgekit.config import Recipe, Task
from edgekit.data import TextDataset, load_unlabeled
from edgekit.errors import ConfigError
from edgekit.models.registry import resolve_model
from edgekit.train.cache import StageSlot, default_root, digest, folder_digest


@dataclass(frozen=True)
class StageResult:
    stage: str
    folder: Path  # Hugging Face-layout checkpoint
    record: dict  # stage.json: metrics, steps, seconds, settings
    reused: bool


class TrainingRun:
    """State shared by the stages of one recipe run."""

    def __init__(self, recipe: Recipe, cache_root: Path | None = None, show_progress: bool = True):
        from edgekit._tf import tf_modules
        from edgekit.train.strategy import make_strategy, worker_suffix

        self.tf, self.keras = tf_modules()
        self.recipe = recipe
        self.root = Path(cache_root) if cache_root else default_root()
        self.show_progress = show_progress
        self.task = tasks.get(recipe.task)
        self.splits: dict = self.task.read_splits(recipe.data) if recipe.data is not None else {}
        if self.task.task is Task.TEXT_CLASSIFICATION and self.splits and not self.labels:
            raise ConfigError("data.label_column: a text-classification recipe needs labelled data")
        self.inputs: dict[str, Path] = {}  # stage name -> the checkpoint folder it read
        self.strategy = make_strategy(recipe.distribute, recipe.distribute_timeout)
        suffix = worker_suffix(self.strategy)
        if suffix is not None:  # multi-worker: only the chief writes the shared cache
            self.root = self.root / suffix

    @property
    def labels(self) -> tuple[str, ...]:
        return self.task.label_names(next(iter(self.splits.values())))

    def features(self, dataset, pretrained):
        """``dataset`` as ``pretrained``'s inputs (the task's ``TokenizedDataset``)."""
        return self.task.features(dataset, pretrained.tokenizer, self.recipe.model.max_length,
                                  tuple(pretrained.model.input_names))

    def slot(self, stage: str, source_key: str, section, *extra) -> StageSlot:
        data = {name: split.fingerprint() for name, split in self.splits.items()}
        key = digest(stage, source_key, section, data, self.recipe.seed, self.recipe.model.max_length,
                     self.recipe.model.pooling, self.recipe.distribute, *extra)
        return StageSlot(stage, key, self.root)

    def evaluate(self, pretrained, reference: dict[str, dict] | None = None) -> dict:
        """The task's metrics on every evaluation split, ``<split>_<metric>`` (agreement with the
        ``reference`` outputs, per split, when given), with the model's size."""
        metrics = {"params": int(pretrained.model.count_params()), "layers": pretrained.config.num_layers,
                   "hidden_size": pretrained.config.hidden_size}
        for name, (split, data, out) in self._outputs(pretrained).items():
            scores = self.task.score(split, data, out, None if reference is None else reference.get(name))
            metrics.update({f"{name}_{k}": v for k, v in scores.items()})
        return metrics

    def outputs(self, pretrained) -> dict[str, dict]:
        """Per evaluation split, the model's outputs: the reference a student is compared with."""
        return {name: out for name, (_, _, out) in self._outputs(pretrained).items()}

    def _outputs(self, pretrained) -> dict[str, tuple]:
        from edgekit.train.infer import model_outputs

        outputs = self.task.outputs(pretrained.config)
        result = {}
        for name in ("validation", "test"):
            if name in self.splits:
                data = self.features(self.splits[name], pretrained)
                result[name] = (self.splits[name], data, model_outputs(pretrained.model, data, outputs))
        return result

    def recovery_teacher(self) -> Path | None:
        """The distill stage's teacher folder when prune recovery distils from it, else None."""
        from edgekit.config import RecoveryTeacher

        transfer = self.recipe.prune.recovery_distill if self.recipe.prune else None
        if transfer is None or transfer.teacher is not RecoveryTeacher.TEACHER:
            return None
        return self.inputs["distill"]

    def training_text(self) -> TextDataset:
        if "train" in self.splits:
            return self.splits["train"]
        section = self.recipe.distill
        if section is not None and section.unlabeled_text is not None:
            return load_unlabeled(section.unlabeled_text, self.recipe.data.max_examples if self.recipe.data else None)
        raise ConfigError("data.train: expected a training split (or distill.unlabeled_text)")


def run_training(recipe: Recipe, *, cache_root: Path | None = None, show_progress: bool = True) -> list[StageResult]:
    """Run the recipe's training stages; returns one result per stage, in order."""
    from edgekit.train import stages

    run = TrainingRun(recipe, cache_root, show_progress)
    run.keras.utils.set_random_seed(recipe.seed)
    folder = resolve_model(recipe.model.source)
    results = [StageResult("model", folder, {"source": str(folder)}, reused=True)]
    for name in recipe.stages:
        runner = getattr(stages, name, None)
        if runner is None:  # quantize / export are not training stages
            continue
        section = getattr(recipe, name)
        text = getattr(section, "unlabeled_text", None)
        run.inputs[name] = folder
        teacher = run.recovery_teacher() if name == "prune" else None
        extra = (folder_digest(teacher),) if teacher else ()
        slot = run.slot(name, folder_digest(folder), section, text and run.training_text().fingerprint(), *extra)
        record = slot.finished()
        if record is None:
            began = time.perf_counter()
            record = runner(run, folder, slot)
            record["seconds"] = round(time.perf_counter() - began, 1)
            slot.publish(record.pop("_pretrained"), record, record.pop("_adapter"))
            reused = False
        else:
            reused = True
        folder = slot.folder
        results.append(StageResult(name, folder, record, reused))
    return results
