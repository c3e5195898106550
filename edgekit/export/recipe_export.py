"""The export of a whole recipe: pick the model (trained stages, or ``--model``), the
targets (recipe, ``--targets``), the data (recipe, ``--data``) and the output folder."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from edgekit.config import Format, Recipe
from edgekit.config.enums import VocabularyKeep
from edgekit.errors import ConfigError


@dataclass(frozen=True)
class ExportOutcome:
    out: Path
    manifest: dict
    report: str  # report.md
    published: bool  # False: the run failed (``blockers``) and ``out`` was left as it was

    @property
    def failed(self) -> list[dict]:
        """Artifacts that failed to export or failed the evaluation gate."""
        return [a for a in self.manifest["artifacts"] if a["status"] != "ok" or a["gate"]]

    @property
    def blockers(self) -> list[dict]:
        from edgekit.export.pipeline import blockers

        return blockers(self.manifest)


def with_data_dir(recipe: Recipe, folder: Path) -> Recipe:
    """The recipe with every data file (the splits, the distillation text) re-rooted in ``folder``
    (same file names); one it would leave where it was, or a recipe with none, is refused."""
    def moved(key: str, path: Path) -> Path:
        there = Path(folder) / path.name
        if not there.is_file():
            raise ConfigError(f"--data {folder}: {key}: no file {path.name} there")
        return there.resolve()

    data, distill = recipe.data, recipe.distill
    splits = {split: moved(f"data.{split}", getattr(data, split)) for split in ("train", "validation", "test")
              if data is not None and getattr(data, split) is not None}
    if splits:
        data = dataclasses.replace(data, **splits)
    if distill is not None and distill.unlabeled_text is not None:
        distill = dataclasses.replace(distill, unlabeled_text=moved("distill.unlabeled_text", distill.unlabeled_text))
    if data is recipe.data and distill is recipe.distill:
        raise ConfigError("--data: the recipe names no data file to re-root (a Hugging Face dataset stays as it is)")
    return dataclasses.replace(recipe, data=data, distill=distill)


def _model_facts(stage) -> dict:
    metrics = stage.record.get("metrics", {})
    return {"source": str(stage.folder), "stage": stage.stage, "layers": metrics.get("layers"),
            "params": metrics.get("params"), "metrics": {k: v for k, v in metrics.items()
                                                         if k not in ("layers", "params", "hidden_size")}}


def _inputs(recipe: Recipe, recipe_file: Path | None, model: Path | None, cache_root: Path | None) -> dict[str, Path]:
    """What the export reads or writes besides OUT, by description: OUT must stay apart from all
    of it (the stage cache even before training creates it)."""
    from edgekit.train.cache import default_root

    files = {"the recipe": recipe_file, "the model folder": model or Path(recipe.model.source)}
    for split in ("train", "validation", "test") if recipe.data else ():
        files[f"the {split} file"] = getattr(recipe.data, split)
    if recipe.distill:
        files["the distillation text"] = recipe.distill.unlabeled_text
    found = {label: Path(path) for label, path in files.items() if path is not None and Path(path).exists()}
    return found if model is not None else {**found, "the stage cache": Path(cache_root or default_root())}


def export_recipe(recipe: Recipe, *, out: Path | None = None, model: Path | None = None,
                  formats: tuple[Format, ...] | None = None, cache_root: Path | None = None,
                  threads: int = 2, show_progress: bool = True, log=print,
                  recipe_file: Path | None = None) -> ExportOutcome:
    """Train what the recipe trains (cached), then export and evaluate every target into ``out``.

    ``out`` is checked before any work (``claim_out``: new, empty or an earlier export, apart
    from the recipe file, the model and the data) and written only by a run that passes. With
    ``export.vocabulary.keep: from-data`` every target is made from the vocabulary-pruned model
    (``edgekit.export.vocabulary``), measured against the unpruned one in the manifest."""
    from edgekit.export.pipeline import Exporter, claim_out, write_export
    from edgekit.models.pretrained import load_pretrained

    if recipe.export is None:
        raise ConfigError("export: the recipe has no export section (targets)")
    targets = tuple(t for t in recipe.export.targets if formats is None or t.format in formats)
    if not targets:
        wanted = ", ".join(f.value for f in formats or ())
        raise ConfigError(f"--targets {wanted}: none of the recipe's export targets has that format")
    if model is not None:
        from edgekit.config.model_fit import check_export_model

        check_export_model(recipe, Path(model), recipe_file)
    out = Path(out) if out is not None else Path("edgekit-out") / recipe.name
    claim_out(out, _inputs(recipe, recipe_file, model, cache_root))
    facts = {"device": recipe.device} if recipe.device else {}
    if model is not None:
        folder = Path(model)
        facts["student"] = {"source": str(folder)}
    else:
        from edgekit.train.pipeline import run_training

        stages = run_training(recipe, cache_root=cache_root, show_progress=show_progress)
        folder = stages[-1].folder
        facts["student"] = _model_facts(stages[-1])
        teacher = next((s for s in stages if s.stage == "finetune"), None)
        if teacher is not None and teacher is not stages[-1]:
            facts["teacher"] = _model_facts(teacher)
    untrained = model is None and not set(recipe.stages) & {"finetune", "distill", "prune"}
    exporter = Exporter(recipe, load_pretrained(folder, pooling=recipe.model.pooling if untrained else None),
                        threads=threads, log=log)
    if recipe.export.vocabulary.keep is VocabularyKeep.ALL:
        return ExportOutcome(out, *write_export(out, exporter, targets, facts))
    from edgekit.export.vocabulary import pruned

    with pruned(exporter, recipe_file) as (exporter, facts["vocabulary"]):  # the unpruned one is let go here
        return ExportOutcome(out, *write_export(out, exporter, targets, facts))
