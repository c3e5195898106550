"""LoRA: adapters train alone, merge exactly, read and write peft's layout (against adapters peft
0.21.2 wrote, scripts/make_lora_fixtures.py), and run through the pipeline, mirrored and exported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from toy_data import export_folder, killed_at, write_recipe, write_toy_task

FIXTURES = Path(__file__).parent / "fixtures"
# the fixture's peft target_modules as edgekit's targets
TARGETS = {"bert": ("query", "value", "attention-output"), "distilbert": ("query", "value", "ffn-in"),
           "albert": ("query", "value")}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_task(tmp_path_factory.mktemp("toy"))


def _inputs(model, reference):
    return {n: reference[n].astype(np.int32) for n in model.model.input_names}


@pytest.mark.parametrize("family", sorted(TARGETS))
def test_a_peft_adapter_gives_peft_outputs_and_merges_into_them(family):
    from edgekit.models import load_pretrained
    from edgekit.models.checkpoint import collect_weights
    from edgekit.models.families import sharing
    from edgekit.train.lora import load_adapter

    reference = dict(np.load(FIXTURES / "lora" / family / "reference.npz"))
    base = load_pretrained(FIXTURES / "families" / family)
    x = _inputs(base, reference)
    assert np.abs(base.model(x)["logits"].numpy() - reference["logits"]).max() > 0.3  # the adapter matters
    adapted = load_adapter(base, FIXTURES / "lora" / family)
    np.testing.assert_allclose(adapted.model(x)["logits"].numpy(), reference["logits"], atol=1e-5)
    merged = adapted.merge()
    np.testing.assert_allclose(merged.model(x)["logits"].numpy(), reference["merged_logits"], atol=1e-5)
    if family == "albert":  # one stored layer group: one adapter per target, and the merge keeps one group
        assert (len(adapted.layers), len(adapted.adapters)) == (2 * base.config.num_layers, 2)
        assert sharing.share(collect_weights(merged.model, merged.config), merged.config.num_layers)[0] == 1


@pytest.mark.parametrize("family", sorted(TARGETS))
def test_edgekit_writes_the_tensors_and_config_peft_writes_and_reads_them_back(family, tmp_path):
    from safetensors.numpy import load_file

    from edgekit.config import LoraSection
    from edgekit.models import load_pretrained
    from edgekit.train.lora import add_adapters, load_adapter

    fixture = FIXTURES / "lora" / family
    base = load_pretrained(FIXTURES / "families" / family)
    adapted = add_adapters(base, LoraSection(rank=4, alpha=8, dropout=0.0, targets=TARGETS[family]), seed=0)
    rng = np.random.default_rng(1)
    for lowrank in adapted.adapters.values():
        lowrank.b.assign(rng.normal(0, 0.3, lowrank.b.shape).astype(np.float32))
    folder = adapted.save_adapter(tmp_path / "adapter", "base")
    ours, theirs = load_file(str(folder / "adapter_model.safetensors")), load_file(str(fixture /
                                                                                    "adapter_model.safetensors"))
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}
    config, peft = (json.loads((f / "adapter_config.json").read_text()) for f in (folder, fixture))
    for key in ("peft_type", "task_type", "r", "lora_alpha", "bias", "use_dora", "use_rslora"):
        assert config[key] == peft[key], key
    assert set(config["modules_to_save"]) <= set(peft["modules_to_save"])
    assert all(any(m.endswith("." + t) for t in peft["target_modules"]) for m in config["target_modules"])
    reference = dict(np.load(fixture / "reference.npz"))
    x = _inputs(base, reference)
    expected = adapted.model(x)["logits"].numpy()
    assert np.abs(expected - base.model(x)["logits"].numpy()).max() > 0.05
    reread = load_adapter(load_pretrained(FIXTURES / "families" / family), folder)
    np.testing.assert_allclose(reread.model(x)["logits"].numpy(), expected, atol=1e-6)


def test_lora_trains_only_the_adapters_and_the_head_and_the_merge_is_exact(toy):
    import tensorflow as tf

    from edgekit.config import FinetuneSection, LoraSection
    from edgekit.train.finetune import finetune
    from test_train import _classifier, _features, _splits, _test_accuracy

    from edgekit.train.lora import add_adapters

    splits = _splits(toy)
    model = _classifier(toy)
    before = {layer.name: [w.copy() for w in layer.get_weights()] for layer in model.model.layers}
    adapted = add_adapters(model, LoraSection(rank=2, alpha=4, dropout=0.0), seed=0)
    fit = finetune(adapted.pretrained, _features(model, splits["train"]),
                   FinetuneSection(epochs=6, batch_size=16, learning_rate=1e-2), seed=0,
                   strategy=tf.distribute.get_strategy(), show_progress=False)
    assert fit.history[-1]["loss"] < 0.5 * fit.history[0]["loss"], fit.history
    assert adapted.head_layers == ("pooler", "classifier")
    for layer in model.model.layers:
        changed = any(not np.array_equal(a, b) for a, b in zip(before[layer.name], layer.get_weights()))
        assert changed == (layer.name in adapted.head_layers), layer.name
    h, layers = model.config.hidden_size, model.config.num_layers
    counts = adapted.counts()
    assert counts["trainable_params"] == 2 * layers * 2 * (h + h) + (h * h + h) + (2 * h + 2), counts
    assert all(np.abs(a.b.numpy()).max() > 0 for a in adapted.adapters.values())
    features = _features(model, splits["test"])
    x = {n: features.batch(np.arange(len(splits["test"]))).inputs[n] for n in model.model.input_names}
    adapted_logits = adapted.model(x)["logits"].numpy()
    merged = adapted.merge()
    np.testing.assert_allclose(merged.model(x)["logits"].numpy(), adapted_logits, atol=1e-5)
    assert _test_accuracy(merged, splits["test"]) >= 0.9


@pytest.mark.parametrize("body, message", [
    ("finetune: {lora: {targets: [query, values]}}",
     ("recipe.yaml: finetune.lora.targets[1]: expected one of 'query', 'key', 'value', 'attention-output', "
      "'ffn-in', 'ffn-out', got str 'values' (did you mean 'value'?)")),
    ("finetune: {lora: {rank: 0}}", "finetune.lora.rank: expected"),
    ("finetune: {lora: {targets: []}}", "finetune.lora.targets: expected at least one of query, key"),
    ("quantize: {qat: {lora: {rank: 2}}}", "quantize.qat.lora: expected no adapters"),
    ("prune: {method: magnitude, target_sparsity: 0.5, recovery: {lora: {rank: 2}}}",
     "prune.recovery.lora: expected only with method 'structured'"),
])
def test_bad_lora_settings_are_one_line_config_errors(toy, tmp_path, body, message):
    from edgekit.config import load_recipe
    from edgekit.errors import ConfigError

    (tmp_path / "model").symlink_to(toy / "model")
    for name in ("train.tsv", "test.tsv"):
        (tmp_path / name).symlink_to(toy / name)
    with pytest.raises(ConfigError) as err:
        load_recipe(write_recipe(tmp_path, body + "\n"))
    text = str(err.value)
    assert "\n" not in text and message in text, text


def test_a_rank_wider_than_a_target_is_refused_before_training(toy, tmp_path):
    from edgekit.config import load_recipe
    from edgekit.errors import ConfigError
    from edgekit.train.pipeline import run_training

    recipe = load_recipe(write_recipe(toy, "finetune: {epochs: 1, lora: {rank: 64}}\n"))
    with pytest.raises(ConfigError, match=r"^finetune.lora.rank: expected at most 32 \(the narrowest target "
                                          r"layer's width\), got 64$"):
        run_training(recipe, cache_root=tmp_path, show_progress=False)


LORA_RECIPE = """finetune: {epochs: 6, batch_size: 16, learning_rate: 1.0e-2, lora: {rank: 4, alpha: 8, dropout: 0.0}}
distill: {student: {layers_from_teacher: [1]}, epochs: 4, batch_size: 16, learning_rate: 1.0e-2,
          lora: {rank: 4, targets: [query, value, ffn-in]}}
prune: {head_sparsity: 0.25, ffn_sparsity: 0.25,
        recovery: {epochs: 2, batch_size: 16, learning_rate: 1.0e-2, lora: {rank: 2, targets: [query, key, value,
                   attention-output, ffn-in, ffn-out]}}}
"""
EXPORT = """export:
  seq_len: 16
  targets:
    - {format: tflite, precision: int8-full}
    - {format: onnx, precision: int8-dynamic}
    - {format: openvino, precision: fp32}
quantize: {calibration_samples: 64}
evaluation: {split: test, max_accuracy_drop: 0.05}
"""


@pytest.mark.slow
def test_every_stage_trains_adapters_publishes_them_merged_and_the_result_exports(toy, tmp_path):
    from edgekit.config import load_recipe
    from edgekit.models import load_pretrained
    from edgekit.models.checkpoint import collect_weights
    from edgekit.train.heads import load_task_model
    from edgekit.train.lora import load_adapter
    from edgekit.train.pipeline import run_training

    recipe = load_recipe(write_recipe(toy, LORA_RECIPE))
    results = run_training(recipe, cache_root=tmp_path / "cache", show_progress=False)
    assert [r.stage for r in results] == ["model", "finetune", "distill", "prune"]
    # measured (seed 3): test accuracy 0.98 / 0.89 / 0.89; trainable share 8.0% / 11.1% / 15.5%
    for result, accuracy in zip(results[1:], (0.95, 0.8, 0.8)):
        record = result.record
        assert record["metrics"]["test_accuracy"] >= accuracy, (result.stage, record["metrics"])
        assert 0 < record["lora"]["trainable_share"] < 0.2, record["lora"]
        adapter = result.folder / "adapter"
        base = json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"]
        assert Path(base) == (toy / "model" if result.stage == "finetune" else adapter / "base")
        merged = load_pretrained(result.folder)
        # base (a head for these labels, as a peft user loads it) + adapter == the merged checkpoint
        start = load_task_model(base, "text-classification", ("negative", "positive"))
        rebuilt = load_adapter(start, adapter).merge()
        ours, theirs = collect_weights(merged.model, merged.config), collect_weights(rebuilt.model, rebuilt.config)
        assert ours.keys() == theirs.keys()
        for name in ours:
            np.testing.assert_allclose(ours[name], theirs[name], atol=1e-6, err_msg=f"{result.stage} {name}")
    again = run_training(recipe, cache_root=tmp_path / "cache", show_progress=False)
    assert all(r.reused for r in again)
    out = export_folder(write_recipe(toy, EXPORT), results[-1].folder, tmp_path / "out")
    manifest = json.loads((out / "edgekit.json").read_text())
    rows = manifest["artifacts"]
    assert len(rows) == 3 and all(r["status"] == "ok" and r["gate"] == [] for r in rows), rows
    full = next(r for r in rows if r["precision"] == "int8-full")
    assert full["details"]["integer_only"] and full["metrics"]["accuracy"] >= 0.8, full["metrics"]


MIRRORED_LORA = """
import sys; sys.path.insert(0, {tests!r})
from pathlib import Path
from edgekit.train.strategy import split_cpu
split_cpu(2)
from edgekit.config import load_recipe
from edgekit.train.pipeline import run_training
results = run_training(load_recipe(Path({recipe!r})), cache_root=Path({cache!r}), show_progress=False)
record = results[-1].record
print("accuracy", record["metrics"]["test_accuracy"], "share", record["lora"]["trainable_share"])
"""


def test_lora_trains_on_the_mirrored_strategy(toy, tmp_path):
    (tmp_path / "model").symlink_to(toy / "model")
    for name in ("train.tsv", "test.tsv"):
        (tmp_path / name).symlink_to(toy / name)
    recipe = write_recipe(tmp_path, "distribute: mirrored\nfinetune: {epochs: 6, batch_size: 16, learning_rate: "
                                    "1.0e-2, lora: {rank: 4, dropout: 0.0}}\n")
    code = MIRRORED_LORA.format(tests=str(REPO / "tests"), recipe=str(recipe), cache=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    words = out.stdout.split()
    assert float(words[1]) >= 0.95 and 0 < float(words[3]) < 0.2, out.stdout


@pytest.mark.parametrize("fixture", ["bert-qa", "distilbert-token", "roberta", "xlm-roberta", "electra",
                                     "albert-token", "mobilebert", "mobilebert-qa"])
def test_every_family_and_head_adapts_every_target_and_merges_exactly(fixture, tmp_path):
    from edgekit import tasks
    from edgekit.config import LoraSection, LoraTarget
    from edgekit.models import load_pretrained
    from edgekit.models.peft_layout import read_adapter
    from edgekit.train.lora import add_adapters, load_adapter

    base = load_pretrained(FIXTURES / "families" / fixture)
    adapted = add_adapters(base, LoraSection(rank=2, dropout=0.0, targets=tuple(LoraTarget)), seed=0)
    rng = np.random.default_rng(2)
    for lowrank in adapted.adapters.values():
        lowrank.b.assign(rng.normal(0, 0.05, lowrank.b.shape).astype(np.float32))
    per_block = 6 + 2 * (base.config.ffns_per_block - 1)  # q, k, v, attention output, FFN in / out (each FFN)
    assert len(adapted.layers) == per_block * base.config.num_layers
    x = _inputs(base, dict(np.load(FIXTURES / "families" / fixture / "reference.npz")))
    names = [o.name for o in tasks.for_config(base.config).outputs(base.config)]
    expected = {n: adapted.model(x)[n].numpy() for n in names}
    adapter = read_adapter(adapted.save_adapter(tmp_path / "adapter", None))
    assert adapter.task == base.config.task and set(adapter.lora) == set(adapted.adapters)
    assert max(np.abs(expected[n] - base.model(x)[n].numpy()).max() for n in names) > 1e-3  # the adapters matter
    merged = adapted.merge()
    fresh = load_adapter(load_pretrained(FIXTURES / "families" / fixture), tmp_path / "adapter")
    for name in names:  # MobileBERT's un-normalised stream reaches |logits| ~ 1e3: float error grows with it
        atol = 1e-5 * max(1.0, np.abs(expected[name]).max())
        np.testing.assert_allclose(merged.model(x)[name].numpy(), expected[name], atol=atol, err_msg=name)
        np.testing.assert_allclose(fresh.model(x)[name].numpy(), expected[name], atol=atol, err_msg=name)


def test_a_killed_lora_run_resumes_and_ends_identical(toy, tmp_path):
    import tensorflow as tf

    from test_train import _classifier, _features, _splits

    from edgekit.config import FinetuneSection, LoraSection
    from edgekit.train.finetune import task_loss
    from edgekit.train.lora import add_adapters
    from edgekit.train.loop import fit

    schedule = FinetuneSection(epochs=2, batch_size=32, learning_rate=1e-2, lora=LoraSection(rank=2, dropout=0.0))

    def run(work_dir=None, kill_at=None):
        adapted = add_adapters(_classifier(toy), schedule.lora, seed=0)
        extras, _ = killed_at(kill_at)
        result = fit(model=adapted.model, loss_fn=task_loss(adapted.model),
                     data=_features(adapted.base, _splits(toy)["train"]), schedule=schedule, seed=5,
                     strategy=tf.distribute.get_strategy(), description="t", extras=extras, work_dir=work_dir,
                     save_every=4, show_progress=False)
        return adapted, result

    reference, _ = run()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, kill_at=11)
    resumed, result = run(tmp_path)
    assert result.resumed_from == 8
    for a, b in zip(reference.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert any(np.abs(a.b.numpy()).max() > 0 for a in resumed.adapters.values())


def test_edgekit_train_says_what_a_lora_stage_trained_and_where_its_adapter_is(toy, tmp_path):
    from click.testing import CliRunner

    from edgekit.cli import main

    (tmp_path / "model").symlink_to(toy / "model")
    for name in ("train.tsv", "test.tsv"):
        (tmp_path / name).symlink_to(toy / name)
    recipe = write_recipe(tmp_path, "finetune: {epochs: 1, batch_size: 32, lora: {rank: 2}}\n")
    result = CliRunner().invoke(main, ["train", str(recipe), "--cache", str(tmp_path / "cache"), "--quiet"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    folder = Path(lines[1].strip())
    # 2 blocks x (query, value) x rank 2 x (32 in + 32 out) + pooler 32 x 32 + 32 + classifier 2 x 32 + 2,
    # of 22,594 weights
    assert lines[2].strip() == f"LoRA: 1,634 weights trained (7.23%); adapter {folder / 'adapter'}", lines
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()


def test_a_stage_whose_adapter_was_edited_is_not_reused(tmp_path):
    from edgekit.models import load_pretrained
    from edgekit.train.cache import StageSlot

    extra = tmp_path / "work" / "adapter"
    (extra / "base").mkdir(parents=True)
    (extra / "adapter_model.safetensors").write_bytes(b"weights")
    (extra / "base" / "config.json").write_text("{}")
    slot = StageSlot("finetune", "0123456789abcdef", tmp_path / "cache")
    folder = slot.publish(load_pretrained(FIXTURES / "families" / "bert"), {"stage": "finetune"}, extra)
    assert (folder / "adapter" / "base" / "config.json").read_text() == "{}"
    assert slot.finished() is not None
    (folder / "adapter" / "base" / "config.json").write_text('{"edited": true}')
    assert slot.finished() is None
