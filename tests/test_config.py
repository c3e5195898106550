"""Recipes and device profiles: every shipped file loads; bad files fail with one precise line."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import FIXTURES, REPO
from edgekit.config import (
    DistillSection, Format, Precision, StudentSection, list_devices, load_device, load_recipe,
)
from edgekit.config.loader import FieldError
from edgekit.errors import ConfigError

BAD = FIXTURES / "configs"

# fixture file -> the message after "FILE: " (exact prefix; the rest may add detail)
BAD_RECIPES = {
    "unknown_stage": "finetun: unknown key (did you mean 'finetune'?); allowed keys: name, task,",
    "unknown_nested_key": "distill.student.layer_from_teacher: unknown key (did you mean 'layers_from_teacher'?)",
    "wrong_type": "finetune.epochs: expected a number, got str 'three'",
    "missing_data_file": "data.train: expected an existing file or folder, got 'no-such-split.tsv' (no such path: ",
    "bad_precision": "export.targets[1].precision: expected one of 'fp32', 'fp16', 'int8-dynamic', 'int8-full',",
    "precision_not_for_format": "export.targets[0].precision: expected one of fp32, int8-dynamic, int8-static "
                                "for onnx, got 'fp16'",
    "missing_task": "task: missing required key (expected one of 'text-classification', 'feature-extraction', "
                    "'token-classification', 'question-answering')",
    "invalid_syntax": "invalid YAML: line 4, column 1: expected ',' or '}'",
    "top_level_list": "expected a mapping of keys at the top level, got list",
    "student_order": "distill.student.layers_from_teacher: expected increasing distinct indices, got [3, 1]",
    "unknown_device": "device: unknown device 'rpi6' (did you mean 'rpi5'?); known devices: android-arm64,",
    "missing_model_folder": "model.source: expected a built-in model (minilm-l6) or an existing folder, "
                            "got './models/nowhere'",
    "bool_as_int": "seed: expected an integer, got bool True",
    "recovery_teacher_without_distill": "prune.recovery_distill.teacher: expected a distill stage for 'teacher' "
                                        "(or use 'unpruned')",
    "recovery_distill_with_magnitude": "prune.recovery_distill: expected only with method 'structured' "
                                       "(magnitude pruning recovers on the labels)",
}
BAD_DEVICES = {
    "device_no_power_source": "power.source: expected a citation for the power figure",
    "device_wrong_name": "name: expected the file name 'device_wrong_name', got 'rpi9'",
}


def _message(loader, path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        loader(path)
    return str(info.value)


@pytest.mark.parametrize("stem", sorted(BAD_RECIPES))
def test_bad_recipe_message(stem):
    path = BAD / f"{stem}.yaml"
    message = _message(load_recipe, path)
    assert "\n" not in message
    assert message.startswith(f"{path}: {BAD_RECIPES[stem]}"), message


@pytest.mark.parametrize("stem", sorted(BAD_DEVICES))
def test_bad_device_message(stem):
    path = BAD / f"{stem}.yaml"
    message = _message(load_device, path)
    assert message == f"{path}: {BAD_DEVICES[stem]}"


def test_every_bad_fixture_is_covered():
    assert {p.stem for p in BAD.glob("*.yaml")} == set(BAD_RECIPES) | set(BAD_DEVICES)


@pytest.mark.parametrize("path", sorted((REPO / "recipes").glob("*.yaml")), ids=lambda p: p.stem)
def test_shipped_recipes_load(path):
    recipe = load_recipe(path)
    assert recipe.name == path.stem
    if recipe.data is not None:
        for split in (recipe.data.train, recipe.data.validation, recipe.data.test):
            assert split is None or split.is_file()


def test_recipe_summary_states_the_prune_plan():
    from edgekit.config.summary import recipe_lines

    lines = recipe_lines(load_recipe(REPO / "recipes" / "sst2-minilm-distill.yaml"))
    assert "prune    structured: 25% of heads, 50% of FFN neurons removed per layer; " \
           "recovery 2 epochs distilled from the teacher" in lines


def test_shipped_devices_cover_the_targets():
    names = list_devices()
    assert {"x86-cpu", "rpi4", "rpi5", "coral-usb", "coral-devboard", "intel-npu", "android-arm64"} <= set(names)
    for name in names:
        profile = load_device(name)
        assert profile.power.watts > 0 and "estimate" in profile.power.source
    coral = load_device("coral-usb")
    assert coral.accepts_target(Format.TFLITE, Precision.INT8_FULL)
    assert not coral.accepts_target(Format.TFLITE, Precision.FP32)
    assert (coral.batch_size, coral.max_tensor_rank, coral.shapes.value) == (1, 3, "static")
    assert not load_device("intel-npu").accepts_target(Format.OPENVINO, Precision.FP32)


def test_paths_resolve_against_the_recipe_folder():
    recipe = load_recipe(FIXTURES / "tiny-data" / "recipe.yaml")
    assert recipe.data.train == (FIXTURES / "tiny-data" / "train.tsv").resolve()
    assert Path(recipe.model.source) == (FIXTURES / "tiny-bert-cls").resolve()
    assert recipe.stages == ("finetune", "distill", "export")
    assert recipe.data.labels == ("negative", "positive")
    assert recipe.export.targets[0].precision is Precision.FP32


def test_anchors_and_merge_keys_still_load(tmp_path):
    """Duplicate keys are refused, but a merge key's keys may be overridden (that is what it is for)."""
    tiny = FIXTURES / "tiny-data"
    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\ntask: text-classification\nmodel: {{source: {FIXTURES / 'tiny-bert-cls'}, "
                    f"max_length: 32}}\ndata: {{train: {tiny / 'train.tsv'}}}\n"
                    "finetune: &ft {epochs: 1, batch_size: 8}\n"
                    "distill:\n  <<: *ft\n  batch_size: 4\n  student: {layers_from_teacher: [0]}\n")
    recipe = load_recipe(path)
    assert (recipe.distill.epochs, recipe.distill.batch_size, recipe.finetune.batch_size) == (1.0, 4, 8)


def test_device_by_path_and_unknown_name():
    assert load_device(REPO / "devices" / "rpi5.yaml").threads == 4
    with pytest.raises(ConfigError, match=r"^unknown device 'coral' \(did you mean 'coral-usb'\?\)"):
        load_device("coral")


def test_sections_validate_when_built_in_python():
    with pytest.raises(FieldError, match="missing required key"):
        DistillSection()
    with pytest.raises(FieldError, match="expected a fraction between 0 and 1, got 1.5"):
        DistillSection(student=StudentSection(layers_from_teacher=(0,)), alpha=1.5)
