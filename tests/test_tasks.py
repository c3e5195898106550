"""Tasks as components: the table, gate keys per task, sentence pairs, and tiny NER / QA runs
through training and every format with the task's metric measured in each runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from edgekit import tasks
from edgekit.config import EvaluationSection, Task, load_recipe
from edgekit.errors import ConfigError
from edgekit.models.bert_config import BertConfig
from task_data import export_task, write_ner_recipe, write_ner_task, write_qa_recipe, write_qa_task
from toy_data import FILLER, toy_rows, write_toy_task

GATES = sorted(k for k in vars(EvaluationSection()) if k.startswith(("min_", "max_")))
DATA = {Task.TEXT_CLASSIFICATION: "{train: t.tsv, labels: [a, b]}", Task.FEATURE_EXTRACTION: "{train: t.tsv}",
        Task.TOKEN_CLASSIFICATION: "{format: conll, train: t.tsv}",
        Task.QUESTION_ANSWERING: "{format: squad, train: t.tsv}"}


def _config(task: Task, labels: int = 0) -> BertConfig:
    return BertConfig(vocab_size=50, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, task=task.value,
                      num_labels=labels, id2label=tuple(f"L{i}" for i in range(labels)))


def test_each_task_names_its_outputs_and_its_transformers_class():
    shapes = {Task.TEXT_CLASSIFICATION: {"logits": ["batch", 3]}, Task.FEATURE_EXTRACTION: {"embedding": ["batch", 16]},
              Task.TOKEN_CLASSIFICATION: {"logits": ["batch", "sequence", 3]},
              Task.QUESTION_ANSWERING: {"start_logits": ["batch", "sequence"], "end_logits": ["batch", "sequence"]}}
    for task, expected in shapes.items():
        labels = 3 if task in (Task.TEXT_CLASSIFICATION, Task.TOKEN_CLASSIFICATION) else 0
        config = _config(task, labels)
        spec = tasks.for_config(config)
        assert {o.name: o.shape for o in spec.outputs(config)} == expected
        assert config.to_hf()["architectures"] == [spec.architecture]
        assert tasks.by_architecture(spec.architecture) is spec
    assert tasks.by_architecture("BertForMaskedLM") is None


def test_a_head_splits_its_columns_into_named_outputs():
    head = tasks.get(Task.QUESTION_ANSWERING).head(_config(Task.QUESTION_ANSWERING))
    both = np.arange(2 * 5 * 2).reshape(2, 5, 2)
    parts = head.split(both)
    np.testing.assert_array_equal(parts["start_logits"], both[..., 0])
    np.testing.assert_array_equal(parts["end_logits"], both[..., 1])


@pytest.mark.parametrize("task", list(Task), ids=[t.value for t in Task])
@pytest.mark.parametrize("gate", GATES)
def test_a_gate_key_is_accepted_only_by_the_tasks_it_answers(tmp_path, task, gate):
    (tmp_path / "t.tsv").write_text("sentence\tlabel\nx\ta\n")
    path = tmp_path / "r.yaml"
    path.write_text(f"name: r\ntask: {task.value}\ndata: {DATA[task]}\nevaluation: {{{gate}: 0.5}}\n")
    if tasks.get(task).check_gate(gate):
        assert getattr(load_recipe(path).evaluation, gate) == 0.5
    else:
        with pytest.raises(ConfigError) as err:
            load_recipe(path)
        assert str(err.value) == (f"{path}: evaluation.{gate}: expected a gate of task {task.value!r} "
                                  f"({', '.join(tasks.get(task).gates)})")


# --- sentence pairs ---

def _write_pairs(folder: Path) -> None:
    """The label is in the second segment only: a model that never reads the pair is at chance."""
    rng = np.random.default_rng(5)
    for name, count, seed in (("train", 256, 0), ("test", 64, 1)):
        rows = ["sentence\tpair\tlabel"]
        for text, label in toy_rows(count, seed):
            rows.append(f"{' '.join(rng.choice(FILLER, size=4))}\t{text}\t{label}")
        (folder / f"{name}.tsv").write_text("\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def pair_export(tmp_path_factory):
    folder = write_toy_task(tmp_path_factory.mktemp("pairs"), train=0, test=0)
    _write_pairs(folder)
    recipe = folder / "recipe.yaml"
    recipe.write_text(
        "name: pairs\ntask: text-classification\nseed: 3\nmodel: {source: model, max_length: 24}\n"
        "data: {train: train.tsv, test: test.tsv, text_pair_column: pair, labels: [negative, positive]}\n"
        "finetune: {epochs: 6, batch_size: 16, learning_rate: 3.0e-3}\n"
        "export:\n  seq_len: 24\n  targets:\n    - {format: onnx, precision: fp32}\n"
        "    - {format: tflite, precision: int8-full, shapes: static}\n"
        "evaluation: {split: test, min_accuracy: 0.9}\n")
    return folder, export_task(recipe, folder / "out")


def test_a_pair_classifier_reads_its_second_segment_in_every_runtime(pair_export):
    folder, out = pair_export
    manifest = json.loads((out / "edgekit.json").read_text())
    assert manifest["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", 2]}]
    for artifact in manifest["artifacts"]:
        assert artifact["status"] == "ok" and artifact["metrics"]["accuracy"] >= 0.9, artifact
        assert artifact["metrics"]["agreement"] >= 0.95, artifact

    from edgekit.predict import Predictor

    model = next((folder / "cache").glob("finetune-*"))
    predictor = Predictor.load(model, max_length=24)
    first, second = "the movie was", "a great cafe !"
    [paired] = predictor.predict([first], pairs=[second])
    [joined] = predictor.predict([first + " " + second])
    assert paired.label == "positive"
    assert not np.allclose(paired.logits, joined.logits)  # token types 1 on the pair: not one text


def test_the_bench_feeds_a_pair_classifier_both_texts_as_its_evaluation_does(pair_export):
    from tokenizers import Tokenizer

    from edgekit.ondevice import bench as ondevice

    folder, out = pair_export
    manifest = ondevice.read_manifest(out)
    texts, source = ondevice.natural_texts(manifest, out)
    rows = [line.split("\t") for line in (folder / "test.tsv").read_text().splitlines()[1:]]
    assert source == "test.tsv" and texts == [(first, second) for first, second, _ in rows]
    samples, info = ondevice.make_inputs(out, manifest, "natural", (texts, source), ondevice.load_tokenizer(out))
    backend = Tokenizer.from_file(str(out / "tokenizer.json"))
    backend.enable_truncation(24)
    encodings = [backend.encode(a, b) for a, b in texts]
    assert info["pairs"] and "64 text pairs" in info["source"]
    assert [s["token_type_ids"].tolist() for s in samples] == [[e.type_ids] for e in encodings]
    assert [s["input_ids"].tolist() for s in samples] == [[e.ids] for e in encodings]


# --- tiny NER and QA through every format ---

TARGETS = ("export:\n  seq_len: {seq}\n  targets:\n    - {{format: tflite, precision: fp32}}\n"
           "    - {{format: tflite, precision: int8-full, shapes: static}}\n"
           "    - {{format: onnx, precision: int8-dynamic}}\n    - {{format: openvino, precision: fp32}}\n"
           "evaluation: {{split: test, gate: warn}}\n")


@pytest.fixture(scope="module")
def ner_export(tmp_path_factory):
    folder = write_ner_task(tmp_path_factory.mktemp("ner"))
    return export_task(write_ner_recipe(folder, TARGETS.format(seq=16)), folder / "out")


@pytest.fixture(scope="module")
def qa_export(tmp_path_factory):
    folder = write_qa_task(tmp_path_factory.mktemp("qa"))
    return export_task(write_qa_recipe(folder, TARGETS.format(seq=136)), folder / "out")


def test_a_tiny_tagger_keeps_its_entity_f1_in_every_runtime(ner_export):
    manifest = json.loads((ner_export / "edgekit.json").read_text())
    assert manifest["task"] == "token-classification"
    assert manifest["outputs"] == [{"name": "logits", "dtype": "float32", "shape": ["batch", "sequence", 7]}]
    reference = manifest["evaluation"]["fp32_tensorflow"]
    assert reference["f1"] >= 0.95 and reference["agreement"] == 1.0
    for artifact in manifest["artifacts"]:
        m = artifact["metrics"]
        assert artifact["status"] == "ok", artifact
        assert m["f1"] >= reference["f1"] - 0.1 and m["agreement"] >= 0.95, (artifact["path"], m)
        if artifact["precision"] == "fp32":
            assert m["f1"] == reference["f1"] and m["agreement"] == 1.0, (artifact["path"], m)
    assert (ner_export / "labels.txt").read_text().split() == list(manifest["labels"])
    ev = manifest["evaluation"]  # sentences split into windows are counted, never cut silently
    assert ev["windows"] >= ev["examples"] + ev["windowed"] and ev["windows"] > 0
    report = (ner_export / "report.md").read_text()
    assert f"({ev['examples']} texts in {ev['windows']} windows; {ev['windowed']} needed more than one)" in report
    assert f"| f1 | {reference['f1']:.4f} | +0.0000 |" in report  # the task's headline metric, not agreement


def test_a_tiny_reader_keeps_its_squad_scores_in_every_runtime(qa_export):
    manifest = json.loads((qa_export / "edgekit.json").read_text())
    assert manifest["task"] == "question-answering"
    assert [o["name"] for o in manifest["outputs"]] == ["start_logits", "end_logits"]
    reference = manifest["evaluation"]["fp32_tensorflow"]
    assert reference["f1"] >= 0.5
    for artifact in manifest["artifacts"]:
        m = artifact["metrics"]
        assert artifact["status"] == "ok", artifact
        if artifact["precision"] == "fp32":
            assert (m["f1"], m["exact_match"], m["agreement"]) == (reference["f1"], reference["exact_match"], 1.0)
        else:
            assert m["f1"] >= reference["f1"] - 0.2, (artifact["path"], m)
