"""A recipe checked against its model before any training: what ``config.json`` (and the
safetensors header, for the classifier head) says is enough to refuse a recipe that training
would otherwise reject after its first stage, or run wrongly. No weights are read, TF-free.

``edgekit check``, ``train`` and ``export`` all load recipes through ``load_recipe``, which
calls ``check_model``: one place for every check that needs the model.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from edgekit.config.enums import PruneMethod, Task
from edgekit.config.recipe import Recipe
from edgekit.errors import ConfigError, EdgekitError


def check_model(recipe: Recipe, folder: Path, where: Path, *, seq_len_written: bool = True) -> Recipe:
    """Raise ``ConfigError`` (naming ``where``, the recipe file, and the key) for the first
    setting of ``recipe`` that its model in ``folder`` cannot take.

    Returns the recipe, with what it leaves out fitted to the model: ``export.seq_len`` (unless
    ``seq_len_written``) at most the model's positions, and ``data.labels`` the classifier's own
    when it trains from the model's head as is, so that the data's labels map onto the head's
    rows by name or index, never by their sorted order."""
    from edgekit.models.checkpoint import CONFIG_FILE
    from edgekit.models.tokenizer import TextTokenizer

    def refuse(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where}: {key}: {message}")

    try:
        teacher = _read_config(folder)
        tokenizer = TextTokenizer(folder)
        tokenizer.check_fits(teacher.vocab_size, folder / CONFIG_FILE)
    except EdgekitError as err:
        raise refuse("model.source", _named(err, folder)) from None
    _check_extra_tokens(recipe, tokenizer, refuse)
    positions = teacher.max_positions
    if recipe.export is not None and not seq_len_written and recipe.export.seq_len > positions:
        recipe = dataclasses.replace(recipe, export=dataclasses.replace(recipe.export, seq_len=positions))
    _check_lengths(recipe, teacher, "the model's", refuse)
    trained = {"distill", "prune"} & set(recipe.stages)
    if recipe.task is not Task.FEATURE_EXTRACTION and recipe.finetune is None and trained:
        if teacher.task != recipe.task.value:
            stage = "distill" if recipe.distill is not None else "prune"
            raise refuse(stage, f"expected a {recipe.task.value} model.source without a finetune stage ({folder} "
                                f"is a {teacher.task} model; add a finetune stage)")
        labels = recipe.data.labels if recipe.data is not None else ()
        if labels and len(labels) != teacher.num_labels:
            raise refuse("data.labels", f"expected the model's {teacher.num_labels} labels "
                                        f"({', '.join(teacher.id2label)}), got {len(labels)}")
        if labels and set(labels) == set(teacher.id2label) and labels != teacher.id2label:
            raise refuse("data.labels", f"expected the model's labels in the order of its classifier rows "
                                        f"({', '.join(teacher.id2label)}), got {', '.join(labels)}")
        if not labels and teacher.num_labels > 1 and recipe.data is not None and recipe.data.label_column:
            recipe = dataclasses.replace(recipe, data=dataclasses.replace(recipe.data, labels=teacher.id2label))
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
    return recipe


def check_export_model(recipe: Recipe, folder: Path, where: Path | None) -> None:
    """Refuse a recipe whose token lengths or task do not fit ``folder`` (``export --model``: the
    model exported in place of the recipe's own, which ``check_model`` checked)."""
    def refuse(key: str, message: str) -> ConfigError:
        return ConfigError(f"{where or 'recipe'}: {key}: {message}")

    try:
        config = _read_config(folder)
    except EdgekitError as err:
        raise ConfigError(_named(err, folder)) from None
    _check_lengths(recipe, config, f"--model {folder}'s", refuse)
    from edgekit.models.tokenizer import TextTokenizer

    _check_extra_tokens(recipe, TextTokenizer(folder), refuse)
    if config.task != recipe.task.value:  # its outputs would be scored by another task's metric
        raise refuse("task", f"expected a {recipe.task.value} model for --model, got {folder}, a {config.task} model")


def _check_extra_tokens(recipe: Recipe, tokenizer, refuse) -> None:
    """``export.vocabulary.extra``: each token must be one of the model's vocabulary (training
    keeps the tokenizer, so this holds for the trained stages too)."""
    extra = recipe.export.vocabulary.extra if recipe.export is not None else ()
    for i, token in enumerate(extra):
        if tokenizer.backend.token_to_id(token) is None:
            raise refuse(f"export.vocabulary.extra[{i}]", f"expected a token of the model's vocabulary "
                                                          f"({tokenizer.file}), got {token!r}")


def _check_lengths(recipe: Recipe, config, whose: str, refuse) -> None:
    """``model.max_length`` and ``export.seq_len`` within the position table: longer inputs index
    past it (an error in one runtime, garbage in another)."""
    positions = config.max_positions
    lengths = [("model.max_length", recipe.model.max_length)]
    if recipe.export is not None:
        lengths.append(("export.seq_len", recipe.export.seq_len))
    for key, length in lengths:
        if length > positions:
            source = ("max_position_embeddings" if not config.position_offset else
                      f"max_position_embeddings {config.max_position_embeddings} less the {config.model_type} "
                      f"position offset {config.position_offset}")
            raise refuse(key, f"expected at most {whose} {positions} positions ({source}), got {length}")


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
    from edgekit.models.student import student_config

    try:
        return student_config(teacher, s)
    except ConfigError as err:  # "distill.student.KEY: message"
        key, _, message = str(err).partition(": ")
        raise refuse(key, message) from None
    except EdgekitError as err:
        raise refuse("distill.student", f"the student cannot be built: {err}") from None


def _read_config(folder: Path):
    """The model's BertConfig from its config.json and the names and shapes of its head tensors
    (no weights, no TensorFlow)."""
    from edgekit import tasks
    from edgekit.models.bert_config import BertConfig
    from edgekit.models.checkpoint import CONFIG_FILE
    from edgekit.models.files import read_json_object

    hf = read_json_object(folder / CONFIG_FILE)
    heads = _head_rows(folder)
    declared = [a for a in hf.get("architectures") or [] if isinstance(a, str)]
    task = tasks.by_architecture(declared[0]) if declared else None
    if task is None or task.head_layer not in {*heads, None}:  # the head the weights hold (loading says the rest)
        task = tasks.get(Task.QUESTION_ANSWERING if "qa_outputs" in heads else
                         Task.TEXT_CLASSIFICATION if "classifier" in heads else Task.FEATURE_EXTRACTION)
    rows = heads.get("classifier", 0) if task.head_layer == "classifier" else 0
    return BertConfig.from_hf(hf, num_labels=rows, task=task.name)


def _named(err: EdgekitError, folder: Path) -> str:
    """``err``'s message, led by the file it is about (config.json unless it names one of ``folder``)."""
    from edgekit.models.checkpoint import CONFIG_FILE

    return str(err) if str(err).startswith(str(folder)) else f"{folder / CONFIG_FILE}: {err}"


def _head_rows(folder: Path) -> dict[str, int]:
    """Rows of the checkpoint's head tensors ({"classifier": 9} or {"qa_outputs": 2}; {}: none),
    from the safetensors header only; {} as well when the weights cannot be read (loading them
    later says why)."""
    from safetensors import safe_open

    from edgekit.models.checkpoint import WEIGHTS_FILE, WEIGHTS_INDEX, folder_family, shard_files

    rows = {}
    try:
        family = folder_family(folder)  # RoBERTa's classifier is classifier.out_proj
        index = folder / WEIGHTS_INDEX
        for path in shard_files(index) if index.is_file() else [folder / WEIGHTS_FILE]:
            with safe_open(str(path), framework="numpy") as f:
                for name in f.keys():
                    layer = family.to_edgekit(name).removesuffix(".weight")
                    if layer in ("classifier", "qa_outputs"):
                        rows[layer] = f.get_slice(name).get_shape()[0]
        return rows
    except Exception:  # noqa: BLE001 - unreadable or corrupt weights: refused, with the reason, when loaded
        return {}
