"""The training stages as the pipeline runs them: ``stage(run, source_folder, slot) -> record``.

Each returns its ``stage.json`` record (metrics, steps, settings) with the trained model
under ``"_pretrained"``; the pipeline publishes it. Stages build their models inside the
run's tf.distribute scope and keep resumable state in ``slot.work``.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from edgekit.config import PruneMethod
from edgekit.errors import ConfigError
from edgekit.models.pretrained import load_pretrained
from edgekit.train.cache import StageSlot, read_record

ADAPTER_DIR = "adapter"  # a LoRA stage's adapter in peft's layout, inside the stage's folder


def _previous_metrics(folder: Path) -> dict:
    metrics = (read_record(folder) or {}).get("metrics")
    return metrics if isinstance(metrics, dict) else {}


def _fit_record(fit) -> dict:
    return {"steps": fit.steps, "resumed_from": fit.resumed_from, "train_seconds": round(fit.seconds, 1),
            "history": fit.history}


def _with_adapters(run, model, schedule, key: str):
    """(the model to train, its ``lora.Adapted`` or None): adapters when ``schedule.lora`` asks
    for them. Call inside the strategy's scope; ``key`` names the recipe section in errors."""
    if schedule.lora is None:
        return model, None
    from edgekit.train.lora import add_adapters

    adapted = add_adapters(model, schedule.lora, seed=run.recipe.seed, key=key)
    return adapted.pretrained, adapted


def _merged(adapted, trained, slot: StageSlot, base: Path | None) -> tuple:
    """(the model to publish, the record's entries, the folder to publish beside it). With LoRA:
    the merged model and ``adapter/`` in peft's layout, whose base is ``base`` (the checkpoint the
    stage read) or, when no checkpoint holds the starting weights (a new student, a pruned
    model), ``adapter/base/`` written from them."""
    if adapted is None:
        return trained, {}, None
    folder = slot.work / ADAPTER_DIR
    shutil.rmtree(folder, ignore_errors=True)  # the stage's own, from a run killed while writing it
    if base is None:
        adapted.base.save(folder / "base")  # before merging: the frozen starting weights
        base = slot.folder / ADAPTER_DIR / "base"
    adapted.save_adapter(folder, str(base))
    entry = {**adapted.counts(), "adapter": ADAPTER_DIR}
    return adapted.merge(), {"lora": entry}, folder


def finetune(run, source: Path, slot: StageSlot) -> dict:
    from edgekit.train.finetune import finetune as train
    from edgekit.train.heads import load_task_model

    recipe = run.recipe
    if not run.task.needs_labels:
        raise ConfigError(f"finetune: task {run.task.name!r} has no head to train (expected a labelled task)")
    with run.strategy.scope():
        model = load_task_model(source, run.task.task, run.labels, pooling=recipe.model.pooling, seed=recipe.seed)
        trained, adapted = _with_adapters(run, model, recipe.finetune, "finetune.lora")
    fit = train(trained, run.features(run.splits["train"], model), recipe.finetune, seed=recipe.seed,
                strategy=run.strategy, work_dir=slot.work, show_progress=run.show_progress)
    model, lora, adapter = _merged(adapted, trained, slot, source)
    return {"stage": "finetune", "settings": dataclasses.asdict(recipe.finetune), **_fit_record(fit), **lora,
            "metrics": run.evaluate(model), "_pretrained": model, "_adapter": adapter}


def distill(run, source: Path, slot: StageSlot) -> dict:
    from edgekit.train.distill import TeacherCache, build_student, distill as train

    recipe, section = run.recipe, run.recipe.distill
    layers = section.student.layers_from_teacher
    teacher = load_pretrained(source, output_hidden_states=bool(section.hidden_loss_weight),
                              output_attentions=bool(section.attention_loss_weight))
    if teacher.config.task != run.task.name and not run.task.needs_labels:  # an encoder from any checkpoint
        from edgekit.train.heads import load_task_model

        teacher = load_task_model(source, run.task.task, output_hidden_states=bool(section.hidden_loss_weight),
                                  output_attentions=bool(section.attention_loss_weight))
    if teacher.config.task != run.task.name:
        raise ConfigError(f"distill: a {run.task.name} student needs a {run.task.name} teacher, got a "
                          f"{teacher.config.task} model (add a finetune stage or use a fine-tuned model.source)")
    data = run.features(run.training_text(), teacher)
    cache = TeacherCache.in_folder(slot.work, teacher, data, layers if section.hidden_loss_weight else None)
    reference = run.outputs(teacher)
    with run.strategy.scope():
        student, adapted = _with_adapters(run, build_student(teacher, section), section, "distill.lora")
        attention_teacher = teacher.model if section.attention_loss_weight else None
    fit = train(teacher, student, data, cache, section, seed=recipe.seed, strategy=run.strategy,
                work_dir=slot.work, show_progress=run.show_progress, teacher_attention_model=attention_teacher)
    student, lora, adapter = _merged(adapted, student, slot, None)
    metrics = run.evaluate(student, reference)
    teacher_metrics = _previous_metrics(source) or run.evaluate(teacher)
    return {"stage": "distill", "settings": dataclasses.asdict(section), **_fit_record(fit), **lora,
            "metrics": metrics, "teacher_metrics": teacher_metrics, "_pretrained": student, "_adapter": adapter}


def prune(run, source: Path, slot: StageSlot) -> dict:
    from edgekit.train import prune as pruning
    from edgekit.train.finetune import finetune as train, task_loss

    recipe, section = run.recipe, run.recipe.prune
    if not run.task.needs_labels or "train" not in run.splits:
        raise ConfigError("prune: expected a labelled task with a training split (for recovery)")
    transfer = section.recovery_distill  # None unless structured (the recipe checks)
    model = load_pretrained(source, output_hidden_states=bool(transfer and transfer.hidden_loss_weight))
    reference = run.outputs(model)
    before = int(model.model.count_params())
    data = run.features(run.splits["train"], model)
    sample = [(b.inputs, b.targets) for b in (data.batch(r) for r in data.epoch_order(32, recipe.seed, 0)[:32])]
    adapter = None
    if section.method is PruneMethod.STRUCTURED:
        unpruned = model
        with run.strategy.scope():
            model = pruning.prune_structured(model, sample, head_sparsity=section.head_sparsity,
                                             ffn_sparsity=section.ffn_sparsity)
        before_recovery = run.evaluate(model, reference)
        with run.strategy.scope():
            trained, adapted = _with_adapters(run, model, section.recovery, "prune.recovery.lora")
        if transfer is None:
            fit = train(trained, run.features(run.splits["train"], model), section.recovery, seed=recipe.seed,
                        strategy=run.strategy, work_dir=slot.work, show_progress=run.show_progress,
                        description="prune recovery")
        else:
            fit = _distill_recovery(run, unpruned, trained, data, section, slot)
        model, lora, adapter = _merged(adapted, trained, slot, None)
        extra = {**_fit_record(fit), **lora, "before_recovery": before_recovery}
    else:
        steps = max(1, int(section.recovery.epochs * data.num_batches(section.recovery.batch_size)))
        batches = [(b.inputs, b.targets) for b in (data.batch(r) for e in range(int(section.recovery.epochs) + 1)
                                                    for r in data.epoch_order(section.recovery.batch_size,
                                                                              recipe.seed, e))][:steps]
        pruned = pruning.magnitude_prune(model.model, batches, target_sparsity=section.target_sparsity, steps=steps,
                                         learning_rate=section.recovery.learning_rate,
                                         loss_fn=lambda m: task_loss(m, run.task.task))
        model = dataclasses.replace(model, model=pruned)
        extra = {"steps": steps}
    metrics = run.evaluate(model, reference)
    return {"stage": "prune", "settings": dataclasses.asdict(section), **extra, "params_before": before,
            "metrics": metrics, "_pretrained": model, "_adapter": adapter}


def _distill_recovery(run, unpruned, pruned, data, section, slot: StageSlot):
    """Recovery as distillation from the unpruned model (same depth and width: layer i → i) or
    from the distill stage's teacher (at the student's ``layers_from_teacher``)."""
    from edgekit.config import DistillSection, StudentSection
    from edgekit.train.distill import TeacherCache, distill

    transfer = section.recovery_distill
    teacher_folder = run.recovery_teacher()
    if teacher_folder is None:
        teacher, layers = unpruned, tuple(range(unpruned.config.num_layers))
    else:
        teacher = load_pretrained(teacher_folder, output_hidden_states=bool(transfer.hidden_loss_weight))
        layers = run.recipe.distill.student.layers_from_teacher
    settings = {k: v for k, v in dataclasses.asdict(transfer).items() if k != "teacher"}
    recovery = {f.name: getattr(section.recovery, f.name) for f in dataclasses.fields(section.recovery)}
    schedule = DistillSection(**recovery, **settings,
                              student=StudentSection(layers_from_teacher=layers))
    cache = TeacherCache.in_folder(slot.work, teacher, data, layers if transfer.hidden_loss_weight else None)
    return distill(teacher, pruned, data, cache, schedule, seed=run.recipe.seed, strategy=run.strategy,
                   work_dir=slot.work, show_progress=run.show_progress, description="prune recovery")
