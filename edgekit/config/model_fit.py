"""A recipe checked against its model before any training: what ``config.json`` (and the
safetensors header, for the classifier head) says is enough to refuse a recipe that training
would otherwise reject after its first stage, or run wrongly. No weights are read, TF-free.

``edgekit check``, ``train`` and ``export`` all load recipes through ``load_recipe``, which
calls ``check_model``: one place for every check that needs the model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgekit.config.enums import PruneMethod, Task
from edgekit.config.recipe import Recipe
from edgekit.errors import ConfigError, EdgekitError


def check_model(recipe: Recipe, folder: Path, where: Path) -> None:
    """Raise ``ConfigError`` (naming ``where``, the recipe file, and the key) for the first
    setting of ``recipe`` that its model in ``folder`` cannot take."""
    from edgekit.models.bert_config import BertConfig
    from edgekit.models.checkpoint import CONFIG_FILE
    from edgekit.models.files import read_json_object
    from edgekit.models.tokenizer import TextTokenizer

    def refuse(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {message}")

    try:
        teacher = BertConfig.from_hf(read_json_object(folder / CONFIG_FILE), num_labels=_classifier_rows(folder))
        TextTokenizer(folder).check_fits(teacher.vocab_size, folder / CONFIG_FILE)
    except EdgekitError as err:
        text = str(err) if str(err).startswith(str(folder)) else f"{folder / CONFIG_FILE}: {err}"
        raise refuse("model.source", text) from None
    positions = teacher.max_position_embeddings
    if recipe.model.max_length > positions:
        raise refuse("model.max_length", f"expected at most the model's {positions} positions "
                                         f"(max_position_embeddings), got {recipe.model.max_length}")
    classify = recipe.task is Task.TEXT_CLASSIFICATION
    trained = {"distill", "prune"} & set(recipe.stages)
    if classify and recipe.finetune is None and trained:
        if not teacher.num_labels:
            stage = "distill" if recipe.distill is not None else "prune"
            raise refuse(stage, f"expected a classifier model.source for text-classification without a finetune "
                                f"stage ({folder} has no classifier head; add a finetune stage)")
        labels = recipe.data.labels if recipe.data is not None else ()
        if labels and len(labels) != teacher.num_labels:
            raise refuse("data.labels", f"expected the model's {teacher.num_labels} labels "
                                        f"({', '.join(teacher.id2label)}), got {len(labels)}")
    student = teacher
    if recipe.distill is not None:
        student = _check_student(recipe, teacher, refuse)
    if recipe.prune is not None and recipe.prune.method is PruneMethod.STRUCTURED:
        for key, units, what in (("head_sparsity", student.num_heads, "heads"),
                                 ("ffn_sparsity", student.intermediate_size, "FFN neurons")):
            fraction = getattr(recipe.prune, key)
            removed = math.floor(fraction * units + 0.5)  # edgekit.train.prune rounds half up
            if fraction and not 1 <= removed < units:
                which = "none" if removed < 1 else f"all {units}"
                raise refuse(f"prune.{key}", f"{fraction} of the model's {units} {what} per layer removes {which}; "
                                             f"expected a fraction that removes 1..{units - 1}")


def _check_student(recipe: Recipe, teacher, refuse):
    """The student's config as ``edgekit.train.distill`` will build it, or the refusal."""
    s = recipe.distill.student
    layers = teacher.num_layers
    if max(s.layers_from_teacher) >= layers:
        raise refuse("distill.student.layers_from_teacher",
                     f"expected indices 0..{layers - 1} (the teacher's {layers} layers, counted from 0), "
                     f"got {list(s.layers_from_teacher)}")
    for key, have in (("hidden_size", teacher.hidden_size), ("intermediate_size", teacher.intermediate_size)):
        wanted = getattr(s, key)
        if wanted is not None and wanted > have:
            raise refuse(f"distill.student.{key}", f"expected at most the teacher's {have} (the student is "
                                                   f"sliced from it), got {wanted}")
    hidden = s.hidden_size or teacher.hidden_size
    heads = s.num_attention_heads or teacher.num_heads
    if hidden % heads:
        key = "num_attention_heads" if s.num_attention_heads else "hidden_size"
        raise refuse(f"distill.student.{key}", f"expected hidden_size {hidden} divisible by {heads} heads")
    try:
        return teacher.replace(num_layers=len(s.layers_from_teacher), hidden_size=hidden, num_heads=heads,
                               intermediate_size=s.intermediate_size or teacher.intermediate_size)
    except EdgekitError as err:
        raise refuse("distill.student", f"the student cannot be built: {err}") from None


def _classifier_rows(folder: Path) -> int:
    """Outputs of the checkpoint's classifier head (0: none), from the safetensors header only;
    0 as well when the weights cannot be read (loading them later says why)."""
    from safetensors import safe_open

    from edgekit.models.checkpoint import WEIGHTS_FILE, WEIGHTS_INDEX

    try:
        path = folder / WEIGHTS_FILE
        if (folder / WEIGHTS_INDEX).is_file():
            shard = json.loads((folder / WEIGHTS_INDEX).read_text()).get("weight_map", {}).get("classifier.weight")
            if shard is None:
                return 0
            path = folder / shard
        with safe_open(str(path), framework="numpy") as f:
            return f.get_slice("classifier.weight").get_shape()[0] if "classifier.weight" in f.keys() else 0
    except Exception:  # noqa: BLE001 - unreadable or corrupt weights: refused, with the reason, when loaded
        return 0
