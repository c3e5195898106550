"""Human-readable summaries of recipes and device profiles (for `edgekit check` / `devices`)."""

from __future__ import annotations

from edgekit.config.device import DeviceProfile
from edgekit.config.enums import Distribute, PruneMethod, RecoveryTeacher
from edgekit.config.recipe import Recipe


def recipe_lines(recipe: Recipe) -> list[str]:
    """One line per fact a user checks before a long run: model, data, stages, targets, gate."""
    multi = recipe.distribute is Distribute.MULTI_WORKER
    wait = f", waits {recipe.distribute_timeout:g} s for its cluster" if multi else ""
    lines = [f"recipe   {recipe.name} ({recipe.task.value}, seed {recipe.seed}, distribute {recipe.distribute.value}"
             f"{wait})",
             f"model    {recipe.model.source} (max_length {recipe.model.max_length})"]
    if recipe.data is not None:
        d = recipe.data
        if d.hf_dataset:
            lines.append(f"data     hf dataset {d.hf_dataset}" + (f" ({d.hf_config})" if d.hf_config else ""))
        for split in ("train", "validation", "test"):
            path = getattr(d, split)
            if path is not None:
                lines.append(f"data     {split:<10} {path}")
        if d.labels:
            lines.append(f"labels   {', '.join(d.labels)}")
    lines.append(f"stages   {' -> '.join(recipe.stages) or 'none'}")
    if recipe.distill is not None:
        s = recipe.distill.student
        width = ("" if s.hidden_size is None else f", hidden {s.hidden_size}") + (
            "" if s.family is None else f", {s.family} layout")
        lines.append(f"student  {len(s.layers_from_teacher)} layers from teacher {list(s.layers_from_teacher)}{width}")
    if recipe.prune is not None:
        lines.append(f"prune    {_prune_plan(recipe)}")
    if recipe.export is not None:
        targets = ", ".join(f"{t.format.value}:{t.precision.value}" for t in recipe.export.targets)
        lines.append(f"export   {targets} (seq_len {recipe.export.seq_len}, {recipe.export.shapes.value} shapes)")
    if recipe.device is not None:
        lines.append(f"device   {recipe.device}")
    gate = {k: v for k, v in vars(recipe.evaluation).items() if k not in ("split", "gate") and v is not None}
    if gate:
        mode = " (warn only)" if recipe.evaluation.gate.value == "warn" else ""
        lines.append(f"gate     {recipe.evaluation.split}: " + ", ".join(f"{k} {v}" for k, v in gate.items()) + mode)
    return lines


def _prune_plan(recipe: Recipe) -> str:
    p = recipe.prune
    if p.method is PruneMethod.MAGNITUDE:
        removed = f"magnitude: {p.target_sparsity:.0%} of Dense weights set to zero"
    else:
        removed = f"structured: {p.head_sparsity:.0%} of heads, {p.ffn_sparsity:.0%} of FFN neurons removed per layer"
    epochs = f"{p.recovery.epochs:g} epoch" + ("" if p.recovery.epochs == 1 else "s")
    if p.recovery_distill is None:
        return f"{removed}; recovery {epochs} on the labels"
    teacher = {RecoveryTeacher.TEACHER: "the teacher", RecoveryTeacher.UNPRUNED: "the unpruned model"}
    return f"{removed}; recovery {epochs} distilled from {teacher[p.recovery_distill.teacher]}"


def device_line(profile: DeviceProfile) -> str:
    """``name  arch  formats  threads  shapes  watts`` for the device table."""
    return (f"{profile.name:<15} {profile.arch:<7} {profile.threads:>2} thr  {profile.shapes.value:<7} "
            f"{profile.power.watts:>5.1f} W (est.)  {profile.accepts_summary()}")
