"""Training stages on the tiny model and a toy task: they learn, distil, resume and cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO
from toy_data import killed_at, write_recipe, write_toy_task
from edgekit.config import DistillSection, FinetuneSection, StudentSection, load_recipe


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_task(tmp_path_factory.mktemp("toy"))


def _splits(toy):
    from edgekit.config import DataSection
    from edgekit.data import load_splits

    return load_splits(DataSection(train=toy / "train.tsv", test=toy / "test.tsv", labels=("negative", "positive")))


def _classifier(toy, seed=0):
    from edgekit.train.heads import load_task_model

    return load_task_model(toy / "model", "text-classification", ("negative", "positive"), seed=seed)


def _features(model, split):
    from edgekit.train.batching import TokenizedDataset

    return TokenizedDataset.from_texts(split, model.tokenizer, 16, tuple(model.model.input_names))


def _outputs(model):
    from edgekit import tasks

    return tasks.for_config(model.config).outputs(model.config)


def _logits(model, split):
    from edgekit.train.infer import model_outputs

    return model_outputs(model.model, _features(model, split), _outputs(model))["logits"]


def _test_accuracy(model, split):
    return float((_logits(model, split).argmax(-1) == split.labels).mean())


def test_finetune_learns_the_toy_task(toy):
    import tensorflow as tf

    from edgekit.train.finetune import finetune

    splits = _splits(toy)
    model = _classifier(toy)
    before = _test_accuracy(model, splits["test"])
    fit = finetune(model, _features(model, splits["train"]),
                   FinetuneSection(epochs=6, batch_size=16, learning_rate=3e-3), seed=0, strategy=tf.distribute.get_strategy(), show_progress=False)
    assert fit.steps == 6 * 16 and fit.resumed_from == 0
    first, last = fit.history[0], fit.history[-1]
    assert last["loss"] < 0.5 * first["loss"], fit.history
    assert _test_accuracy(model, splits["test"]) >= 0.95 > before


def test_a_killed_run_resumes_at_its_last_checkpoint_and_ends_identical(toy, tmp_path):
    import tensorflow as tf

    from edgekit.train.batching import TokenizedDataset
    from edgekit.train.finetune import task_loss
    from edgekit.train.loop import fit

    splits = _splits(toy)
    schedule = FinetuneSection(epochs=2, batch_size=32, learning_rate=1e-3)
    strategy = tf.distribute.get_strategy()

    def run(work_dir=None, kill_at=None):
        model = _classifier(toy)
        data = TokenizedDataset.from_texts(splits["train"], model.tokenizer, 16, tuple(model.model.input_names))
        extras, calls = killed_at(kill_at)
        result = fit(model=model.model, loss_fn=task_loss(model.model), data=data, schedule=schedule,
                     seed=5, strategy=strategy, description="t", extras=extras, work_dir=work_dir, save_every=4,
                     show_progress=False)
        return model, result, len(calls)

    reference, _, _ = run()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path, kill_at=11)  # steps 1-10 done, checkpoint at step 8
    resumed, result, calls = run(tmp_path)
    assert (result.resumed_from, calls) == (8, 16 - 8)
    for a, b in zip(reference.model.get_weights(), resumed.model.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_a_checkpoint_cut_short_is_refused_in_one_line(toy, tmp_path):
    import tensorflow as tf

    from edgekit.errors import ModelLoadError
    from edgekit.train.batching import TokenizedDataset
    from edgekit.train.finetune import task_loss
    from edgekit.train.loop import fit

    saved = tmp_path / "checkpoints"
    saved.mkdir()
    (saved / "checkpoint").write_text('model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-4"\n')
    (saved / "ckpt-4.index").write_text("cut short")
    model = _classifier(toy)
    data = TokenizedDataset.from_texts(_splits(toy)["train"], model.tokenizer, 16, tuple(model.model.input_names))
    with pytest.raises(ModelLoadError) as err:
        fit(model=model.model, loss_fn=task_loss(model.model), data=data,
            schedule=FinetuneSection(epochs=1, batch_size=32), seed=5, strategy=tf.distribute.get_strategy(),
            description="t", work_dir=tmp_path, show_progress=False)
    assert str(err.value).startswith(f"{saved}/ckpt-4: cannot resume from this checkpoint (")
    assert str(err.value).endswith(f"delete {tmp_path} to train the stage from its start")


def test_a_teacher_cache_cut_short_or_edited_is_computed_again(toy, tmp_path):
    from edgekit.models import load_pretrained
    from edgekit.train.batching import TokenizedDataset
    from edgekit.train.distill import TeacherCache

    teacher = load_pretrained(toy / "model", output_hidden_states=True)
    data = TokenizedDataset.from_texts(_splits(toy)["train"], teacher.tokenizer, 16, tuple(teacher.model.input_names))
    outputs = _outputs(teacher)
    whole = TeacherCache.in_folder(tmp_path, teacher, data, (1,))
    assert TeacherCache.load(tmp_path, data, outputs, (1,)) is not None
    hidden = tmp_path / "teacher_hidden.npy"
    whole_bytes = hidden.read_bytes()
    hidden.write_bytes(whole_bytes[:-100])  # cut short
    assert TeacherCache.load(tmp_path, data, outputs, (1,)) is None
    hidden.write_bytes(whole_bytes)
    assert TeacherCache.load(tmp_path, data, outputs, (1,)) is not None
    hidden.unlink()  # a run killed before the hidden states were saved
    assert TeacherCache.load(tmp_path, data, outputs, (1,)) is None
    np.savez(tmp_path / "teacher_targets.npz", logits=whole.targets["logits"][:5])  # rows of another data set
    assert TeacherCache.load(tmp_path, data, outputs, None) is None
    np.savez(tmp_path / "teacher_targets.npz", embedding=whole.targets["logits"])  # another task's outputs
    assert TeacherCache.load(tmp_path, data, outputs, None) is None
    (tmp_path / "teacher_targets.npz").write_bytes(b"PK\x03\x04")  # cut short
    again = TeacherCache.in_folder(tmp_path, teacher, data, (1,))
    np.testing.assert_array_equal(again.targets["logits"], whole.targets["logits"])
    assert again.hidden.shape == whole.hidden.shape


def test_a_cached_stage_edited_by_hand_is_trained_again(toy, tmp_path):
    from edgekit.train.pipeline import run_training

    recipe = load_recipe(write_recipe(toy, "finetune: {epochs: 1, batch_size: 64}\n"))
    [_, first] = run_training(recipe, cache_root=tmp_path, show_progress=False)
    stage = first.folder / "stage.json"
    edits = {"list": lambda: stage.write_text("[1, 2]"), "not-json": lambda: stage.write_text('{"metrics": '),
             "metrics-edited": lambda: stage.write_text(stage.read_text().replace('"layers": 2', '"layers": 9')),
             "deleted": stage.unlink,
             "weights-changed": lambda: (first.folder / "model.safetensors").write_bytes(b"cut short")}
    for name, edit in edits.items():
        edit()
        [_, again] = run_training(recipe, cache_root=tmp_path, show_progress=False)
        assert not again.reused and again.folder == first.folder, name
        assert again.record["metrics"] == first.record["metrics"], name
    [_, last] = run_training(recipe, cache_root=tmp_path, show_progress=False)
    assert last.reused


def test_distilled_student_agrees_with_its_teacher(toy, tmp_path):
    import tensorflow as tf

    from edgekit.train.batching import TokenizedDataset
    from edgekit.train.distill import TeacherCache, build_student, distill
    from edgekit.train.finetune import finetune
    from edgekit.train.infer import model_outputs

    splits = _splits(toy)
    strategy = tf.distribute.get_strategy()
    teacher = _classifier(toy)
    finetune(teacher, _features(teacher, splits["train"]), FinetuneSection(epochs=6, batch_size=16, learning_rate=3e-3),
             seed=0, strategy=strategy, show_progress=False)
    section = DistillSection(student=StudentSection(layers_from_teacher=(1,), hidden_size=16, num_attention_heads=2,
                                                    intermediate_size=32),
                             epochs=8, batch_size=16, learning_rate=3e-3, hidden_loss_weight=0.5, temperature=2.0)
    from edgekit.models import load_pretrained

    teacher_folder = teacher.save(toy / "teacher")
    teacher = load_pretrained(teacher_folder, output_hidden_states=True)
    student = build_student(teacher, section)
    assert (student.config.num_layers, student.config.hidden_size) == (1, 16)
    data = TokenizedDataset.from_texts(splits["train"], teacher.tokenizer, 16, tuple(teacher.model.input_names))
    cache = TeacherCache.compute(teacher, data, (1,), tmp_path)
    # the cached hidden states are the teacher's own, padded back per batch
    batch = data.batch(np.arange(5))
    cached = cache.extras(batch)["teacher_hidden"][:, :, 0]
    live = teacher.model(batch.inputs)["hidden_states"][2].numpy()
    mask = batch.inputs["attention_mask"].astype(bool)
    np.testing.assert_allclose(cached[mask], live[mask], atol=2e-2)  # float16 storage

    test = TokenizedDataset.from_texts(splits["test"], teacher.tokenizer, 16, tuple(teacher.model.input_names))
    teacher_labels = model_outputs(teacher.model, test, _outputs(teacher))["logits"].argmax(-1)

    def agreement():
        return float((model_outputs(student.model, test, _outputs(student))["logits"].argmax(-1) == teacher_labels).mean())

    before = agreement()
    fit = distill(teacher, student, data, cache, section, seed=0, strategy=strategy,
                  show_progress=False)
    assert fit.history[-1]["loss"] < fit.history[0]["loss"]
    assert agreement() >= max(0.9, before + 0.2), before


def test_pipeline_caches_stages_and_keys_them_by_settings(toy, tmp_path):
    from edgekit.train.pipeline import run_training

    body = ("finetune: {epochs: 4, batch_size: 16, learning_rate: 3.0e-3}\n"
            "distill: {student: {layers_from_teacher: [1]}, epochs: 4, batch_size: 16, learning_rate: 3.0e-3}\n")
    recipe = load_recipe(write_recipe(toy, body))
    first = run_training(recipe, cache_root=tmp_path, show_progress=False)
    assert [r.stage for r in first] == ["model", "finetune", "distill"]
    assert not first[1].reused and not first[2].reused
    record = json.loads((first[2].folder / "stage.json").read_text())
    assert record["metrics"]["layers"] == 1 and record["metrics"]["test_accuracy"] >= 0.9
    assert record["metrics"]["params"] < record["teacher_metrics"]["params"]
    assert not list(tmp_path.glob("*.work"))  # finished stages leave no work folders

    again = run_training(recipe, cache_root=tmp_path, show_progress=False)
    assert [r.reused for r in again[1:]] == [True, True]
    assert again[2].folder == first[2].folder

    changed = load_recipe(write_recipe(toy, body.replace("learning_rate: 3.0e-3}\ndistill", "learning_rate: 2.0e-3}\ndistill")))
    third = run_training(changed, cache_root=tmp_path, show_progress=False)
    assert not third[1].reused and third[1].folder != first[1].folder

def _test_logits(folder, split):
    from edgekit.models import load_pretrained

    return _logits(load_pretrained(folder), split)


def test_prune_stage_recovers_by_distilling_the_unpruned_model(toy, tmp_path):
    from edgekit.train.pipeline import run_training

    body = ("finetune: {epochs: 4, batch_size: 16, learning_rate: 3.0e-3}\n"
            "prune: {head_sparsity: 0.5, ffn_sparsity: 0.75,\n"
            "        recovery: {epochs: 2, batch_size: 4, learning_rate: 1.0e-3}%s}\n")
    recipe = load_recipe(write_recipe(toy, body % ",\n        recovery_distill: {alpha: 0.8, hidden_loss_weight: 1.0}"))
    assert recipe.prune.recovery_distill.hidden_loss_weight == 1.0
    _, finetuned, pruned = run_training(recipe, cache_root=tmp_path, show_progress=False)
    record, before = pruned.record, pruned.record["before_recovery"]
    assert record["metrics"]["params"] == before["params"] < record["params_before"] == finetuned.record["metrics"]["params"]
    assert record["steps"] == 2 * 64 and record["history"][-1]["loss"] < record["history"][0]["loss"]
    assert record["metrics"]["test_agreement"] >= 0.95 and record["metrics"]["test_accuracy"] >= 0.9

    labels_only = load_recipe(write_recipe(toy, body % ""))
    assert labels_only.prune.recovery_distill is None
    again = run_training(labels_only, cache_root=tmp_path, show_progress=False)
    assert again[1].reused and not again[2].reused and again[2].folder != pruned.folder
    # Both recoveries keep the labels on this easy task; distillation also keeps the unpruned
    # model's logits (measured: mean |difference| 0.03 vs 1.16 for labels only, logits ~1.6).
    split = _splits(toy)["test"]
    unpruned = _test_logits(finetuned.folder, split)
    distilled_gap = np.abs(_test_logits(pruned.folder, split) - unpruned).mean()
    labels_gap = np.abs(_test_logits(again[2].folder, split) - unpruned).mean()
    assert distilled_gap < 0.15 and labels_gap > 3 * distilled_gap, (distilled_gap, labels_gap)


def test_prune_recovery_learns_from_the_teacher_it_names(toy, tmp_path):
    from edgekit.train.pipeline import run_training

    body = ("finetune: {epochs: 4, batch_size: 16, learning_rate: 3.0e-3}\n"
            "distill: {student: {layers_from_teacher: [1]}, epochs: 4, batch_size: 16, learning_rate: 3.0e-3}\n"
            "prune: {head_sparsity: 0.5, ffn_sparsity: 0.75,\n"
            "        recovery: {epochs: 2, batch_size: 4, learning_rate: 1.0e-3},\n"
            "        recovery_distill: {teacher: %s, alpha: 1.0, hidden_loss_weight: 1.0}}\n")
    split = _splits(toy)["test"]
    gaps, folders = {}, set()
    for teacher in ("teacher", "unpruned"):
        _, finetuned, student, pruned = run_training(load_recipe(write_recipe(toy, body % teacher)),
                                                     cache_root=tmp_path, show_progress=False)
        assert pruned.record["metrics"]["test_accuracy"] >= 0.9
        logits = _test_logits(pruned.folder, split)
        gaps[teacher] = (np.abs(logits - _test_logits(finetuned.folder, split)).mean(),
                         np.abs(logits - _test_logits(student.folder, split)).mean())
        folders.add(pruned.folder)
    # measured mean |logit difference| to (teacher, unpruned student): (0.011, 0.105) and (0.105, 0.017)
    to_teacher, to_student = gaps["teacher"]
    assert to_teacher < to_student / 3, gaps
    to_teacher, to_student = gaps["unpruned"]
    assert to_student < to_teacher / 3, gaps
    assert len(folders) == 2


MIRRORED = """
import sys; sys.path.insert(0, {tests!r})
from pathlib import Path
from edgekit.train.strategy import split_cpu, make_strategy
split_cpu(2)
from edgekit.config import Distribute, FinetuneSection
from toy_data import write_toy_task
from test_train import _classifier, _features, _splits, _test_accuracy
from edgekit.train.finetune import finetune
toy = Path({toy!r})
strategy = make_strategy(Distribute.MIRRORED)
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
with strategy.scope():
    model = _classifier(toy)
fit = finetune(model, _features(model, _splits(toy)["train"]),
               FinetuneSection(epochs=6, batch_size=16, learning_rate=3e-3), seed=0, strategy=strategy, show_progress=False)
print("replicas", strategy.num_replicas_in_sync, "loss", fit.history[0]["loss"], fit.history[-1]["loss"],
      "accuracy", _test_accuracy(model, _splits(toy)["test"]))
"""


def test_mirrored_strategy_trains_on_two_logical_cpus(toy):
    code = MIRRORED.format(tests=str(REPO / "tests"), toy=str(toy))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    words = out.stdout.split()
    assert words[1] == "2"
    assert float(words[4]) < 0.5 * float(words[3]) and float(words[6]) >= 0.95


def test_feature_extraction_student_matches_teacher_embeddings_from_unlabeled_text(toy, tmp_path):
    from toy_data import toy_rows

    from edgekit.train.pipeline import run_training

    (toy / "unlabeled.txt").write_text("\n".join(t for t, _ in toy_rows(256, 7)) + "\n")
    (toy / "fe.yaml").write_text(
        "name: toy-fe\ntask: feature-extraction\nmodel: {source: model, max_length: 16}\n"
        "data: {test: test.tsv, label_column: null}\n"
        "distill: {student: {layers_from_teacher: [1]}, unlabeled_text: unlabeled.txt, epochs: 6, batch_size: 16,"
        " learning_rate: 3.0e-3}\n")
    [_, stage] = run_training(load_recipe(toy / "fe.yaml"), cache_root=tmp_path, show_progress=False)
    history = stage.record["history"]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert stage.record["metrics"]["test_cosine_mean"] >= 0.95


def test_multi_worker_strategy_trains_as_a_one_worker_cluster(toy):
    code = MIRRORED.format(tests=str(REPO / "tests"), toy=str(toy)).replace(
        "split_cpu(2)\n", "").replace("Distribute.MIRRORED", "Distribute.MULTI_WORKER").replace(
        "assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync\n", "")
    env = dict(os.environ, TF_CONFIG=json.dumps({"cluster": {"worker": ["localhost:23461"]},
                                                 "task": {"type": "worker", "index": 0}}))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    words = out.stdout.split()
    assert words[1] == "1" and float(words[4]) < 0.5 * float(words[3]) and float(words[6]) >= 0.95


def test_only_the_chief_writes_the_shared_stage_cache():
    import tensorflow as tf

    from edgekit.train.strategy import worker_suffix

    def strategy(task_type, task_id, chief=False):
        spec = {"worker": ["a:1", "b:1"], **({"chief": ["c:1"]} if chief else {})}
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec(spec), task_type=task_type, task_id=task_id)
        return type("Strategy", (), {"cluster_resolver": resolver})()

    assert worker_suffix(tf.distribute.get_strategy()) is None
    assert worker_suffix(strategy("worker", 0)) is None
    assert worker_suffix(strategy("worker", 1)) == "worker-1"
    assert worker_suffix(strategy("chief", 0, chief=True)) is None
    assert worker_suffix(strategy("worker", 0, chief=True)) == "worker-0"


def test_multi_worker_without_tf_config_is_a_one_line_error(monkeypatch):
    from edgekit.config import Distribute
    from edgekit.errors import EdgekitError
    from edgekit.train.strategy import make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(EdgekitError, match="^distribute: multi_worker needs TF_CONFIG"):
        make_strategy(Distribute.MULTI_WORKER)
