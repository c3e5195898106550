"""BERT-class family fixtures (scripts/make_family_fixtures.py: tiny random transformers models with
reference outputs): edgekit's port must reproduce transformers' hidden states and task heads, and
write back what transformers wrote."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FAMILIES = Path(__file__).parent / "fixtures" / "families"
CONVERTED = ("bert", "distilbert", "roberta", "xlm-roberta", "electra", "albert", "mobilebert")
HEADS = {"": "logits", "-token": "logits", "-qa": ("start_logits", "end_logits")}
FOLDERS = [f + s for f in CONVERTED for s in HEADS]


def _reference(folder: Path) -> dict[str, np.ndarray]:
    with np.load(folder / "reference.npz") as saved:
        return {k: saved[k] for k in saved.files}


def _outputs(model, ref: dict[str, np.ndarray]) -> dict:
    return model.model({n: ref[n].astype(np.int32) for n in model.model.input_names}, training=False)


@pytest.mark.parametrize("name", FOLDERS)
def test_family_fixtures_match_transformers_within_1e_5(name):
    from edgekit.models import load_pretrained

    folder = FAMILIES / name
    suffix = next(s for s in ("-token", "-qa", "") if name.endswith(s))
    ref = _reference(folder)
    model = load_pretrained(folder, output_hidden_states=True)
    out = _outputs(model, ref)
    mask = ref["attention_mask"].astype(bool)
    assert len(out["hidden_states"]) == model.config.num_layers + 1
    for i, state in enumerate(out["hidden_states"]):  # padded positions differ by design: compare real tokens
        np.testing.assert_allclose(state.numpy()[mask], ref[f"hidden_states_{i}"][mask], atol=1e-5)
    names = HEADS[suffix] if isinstance(HEADS[suffix], tuple) else (HEADS[suffix],)
    for output in names:
        got, want = out[output].numpy(), ref[output]
        if got.ndim == 3 or (got.ndim == 2 and got.shape == mask.shape):  # per token: real tokens only
            got, want = got[mask], want[mask]
        np.testing.assert_allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("name", FOLDERS)
def test_saved_family_models_are_the_files_transformers_wrote(name, tmp_path):
    """Saving gives back transformers' own tensor names, shapes and values and its config keys,
    so transformers loads the family's class with the same outputs (checked against torch by
    `scripts/make_family_fixtures.py check` on the saved folders: README, Families)."""
    from safetensors.numpy import load_file

    from edgekit.models import families, load_pretrained

    folder = FAMILIES / name
    model = load_pretrained(folder)
    model.save(tmp_path / "out")
    family = families.get(model.config.model_type)
    original = {k: v for k, v in load_file(str(folder / "model.safetensors")).items() if not family.ignores(k)}
    written = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert sorted(written) == sorted(original)
    for key, value in original.items():
        np.testing.assert_array_equal(written[key], value, err_msg=key)
    hf, ours = (json.loads((d / "config.json").read_text()) for d in (folder, tmp_path / "out"))
    assert ours["model_type"] == hf["model_type"] and ours["architectures"] == hf["architectures"]
    shared = {"vocab_size", "max_position_embeddings", "pad_token_id", "hidden_size", "dim", "n_layers",
              "num_hidden_layers", "type_vocab_size", "embedding_size", "layer_norm_eps", "activation", "hidden_act",
              "num_hidden_groups", "inner_group_num", "initializer_range", "intra_bottleneck_size", "true_hidden_size",
              "num_feedforward_networks", "trigram_input", "classifier_activation", "use_bottleneck",
              "key_query_shared_bottleneck", "use_bottleneck_attention", "normalization_type"}
    assert {k: ours.get(k) for k in shared & set(hf)} == {k: hf[k] for k in shared & set(hf)}
    again = load_pretrained(tmp_path / "out")
    ref = _reference(folder)
    np.testing.assert_array_equal(_outputs(again, ref)["last_hidden_state"].numpy(),
                                  _outputs(model, ref)["last_hidden_state"].numpy())


@pytest.mark.parametrize("family", CONVERTED)
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_family_sentence_embeddings_are_transformers_hidden_states_pooled(family, pooling):
    """Feature extraction from every family: the sequence fixture's encoder as a sentence
    encoder gives transformers' last hidden state, mean-pooled over the real tokens or the first."""
    from edgekit.train.heads import load_task_model

    model = load_task_model(FAMILIES / family, "feature-extraction", pooling=pooling)
    assert (model.config.task, model.config.pooling) == ("feature-extraction", pooling)
    ref = _reference(FAMILIES / family)
    mask = ref["attention_mask"].astype(np.float32)[..., None]
    hidden = ref["last_hidden_state"]
    want = (hidden * mask).sum(1) / mask.sum(1) if pooling == "mean" else hidden[:, 0]
    np.testing.assert_allclose(_outputs(model, ref)["embedding"].numpy(), want, atol=1e-5)


def test_albert_layers_stay_shared_until_they_differ(tmp_path):
    """ALBERT's one stored layer runs all three blocks: the ONNX graph stores it once; once a
    block's weights change (fine-tuning), the checkpoint is written with one group per block
    (``num_hidden_groups`` 3), which reads back to the same outputs."""
    from safetensors.numpy import load_file

    from edgekit.export.onnx.graph import build_model
    from edgekit.models import load_pretrained
    from edgekit.models.checkpoint import collect_weights

    model = load_pretrained(FAMILIES / "albert")
    onnx_names = {i.name for i in build_model(model.config, collect_weights(model.model, model.config)).graph.initializer}
    assert any(n.startswith("encoder.layer.0.") for n in onnx_names)
    assert not any(n.startswith(("encoder.layer.1.", "encoder.layer.2.")) for n in onnx_names)
    ffn = model.model.get_layer("layer_1_intermediate")
    kernel, bias = ffn.get_weights()
    ffn.set_weights([kernel * 1.5, bias])
    model.save(tmp_path / "tuned")
    written = json.loads((tmp_path / "tuned" / "config.json").read_text())
    assert (written["num_hidden_groups"], written["inner_group_num"]) == (3, 1)
    groups = {k.split(".")[3] for k in load_file(str(tmp_path / "tuned" / "model.safetensors")) if "albert_layer_groups" in k}
    assert groups == {"0", "1", "2"}
    ref = _reference(FAMILIES / "albert")
    again = load_pretrained(tmp_path / "tuned")
    np.testing.assert_array_equal(_outputs(again, ref)["logits"].numpy(), _outputs(model, ref)["logits"].numpy())
    assert not np.allclose(_outputs(again, ref)["logits"].numpy(), ref["logits"], atol=1e-5)


def test_albert_group_counts_it_cannot_read_are_refused_in_one_line(tmp_path):
    import shutil

    from edgekit.errors import EdgekitError
    from edgekit.models import load_pretrained

    shutil.copytree(FAMILIES / "albert", tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "num_hidden_groups": 4}))
    with pytest.raises(EdgekitError, match=r"config.json: num_hidden_groups 4: expected at most num_hidden_layers "
                                           r"\(3\)$"):
        load_pretrained(tmp_path / "m")
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, "inner_group_num": 2}))
    with pytest.raises(EdgekitError, match=r"config.json: inner_group_num 2: edgekit reads ALBERT layer groups of "
                                           r"one layer \(expected 1\)$"):
        load_pretrained(tmp_path / "m")


def test_a_bert_teacher_distils_into_a_distilbert_layout_student(tmp_path):
    """``distill.student.family: distilbert``: the student starts as the teacher's layers with the
    token types folded into the positions (same hidden states on single-sequence inputs) and is
    written with DistilBERT's names and shapes: the files of the DistilBERT fixture of that size."""
    from safetensors.numpy import load_file

    from edgekit.config import DistillSection, StudentSection
    from edgekit.models import load_pretrained
    from edgekit.train.distill import build_student

    teacher = load_pretrained(FAMILIES / "bert", output_hidden_states=True)
    section = DistillSection(student=StudentSection(layers_from_teacher=(0, 1), family="distilbert"),
                             hidden_loss_weight=1.0)
    student = build_student(teacher, section)
    assert (student.config.model_type, student.config.type_vocab_size, student.config.pooler_activation) == \
        ("distilbert", 0, "relu")
    assert "token_type_ids" not in student.model.input_names
    ref = _reference(FAMILIES / "bert")
    single = {**ref, "token_type_ids": np.zeros_like(ref["token_type_ids"])}
    mask = ref["attention_mask"].astype(bool)
    got, want = _outputs(student, single), _outputs(teacher, single)
    for a, b in zip(got["hidden_states"], want["hidden_states"]):
        np.testing.assert_allclose(a.numpy()[mask], b.numpy()[mask], atol=1e-5)
    student.save(tmp_path / "student")
    written = load_file(str(tmp_path / "student" / "model.safetensors"))
    fixture = load_file(str(FAMILIES / "distilbert" / "model.safetensors"))
    assert {k: v.shape for k, v in written.items()} == {k: v.shape for k, v in fixture.items()}
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert config["architectures"] == ["DistilBertForSequenceClassification"] and config["n_layers"] == 2
    again = load_pretrained(tmp_path / "student")
    np.testing.assert_allclose(_outputs(again, single)["logits"].numpy(), got["logits"].numpy(), atol=1e-6)


def test_a_mobilebert_student_keeps_the_bottlenecked_layout(tmp_path):
    """A MobileBERT teacher's one-layer student is its block 1 (same bottleneck, FFN stack and
    NoNorms): written under MobileBERT's own names and config keys, a layer of the teacher's files."""
    from safetensors.numpy import load_file

    from edgekit.config import DistillSection, StudentSection
    from edgekit.errors import ConfigError
    from edgekit.models import load_pretrained
    from edgekit.train.distill import build_student

    teacher = load_pretrained(FAMILIES / "mobilebert")
    student = build_student(teacher, DistillSection(student=StudentSection(layers_from_teacher=(1,))))
    assert (student.config.num_layers, student.config.bottleneck) == (1, teacher.config.bottleneck)
    student.save(tmp_path / "student")
    written = load_file(str(tmp_path / "student" / "model.safetensors"))
    original = load_file(str(FAMILIES / "mobilebert" / "model.safetensors"))
    for name, value in written.items():
        np.testing.assert_array_equal(value, original[name.replace(".layer.0.", ".layer.1.")], err_msg=name)
    assert len(written) == len([n for n in original if ".layer.0." not in n])
    config = json.loads((tmp_path / "student" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["num_feedforward_networks"], config["normalization_type"],
            config["architectures"]) == (1, 3, "no_norm", ["MobileBertForSequenceClassification"])
    with pytest.raises(ConfigError, match="a mobilebert teacher's blocks are bottlenecked; a distilbert student "
                                          r"cannot start from them \(expected mobilebert\)"):
        build_student(teacher, DistillSection(student=StudentSection(layers_from_teacher=(1,), family="distilbert")))


@pytest.mark.parametrize("key,value,message", [
    ("normalization_type", "layer_norm", ("normalization_type \"layer_norm\": edgekit builds MobileBERT's released "
                                          "layout (expected \"no_norm\")")),
    ("use_bottleneck_attention", True, ("use_bottleneck_attention true: edgekit builds MobileBERT's released layout "
                                        "(expected false)")),
    ("intra_bottleneck_size", 18, "intra_bottleneck_size 18 is not divisible by num_attention_heads 4"),
    ("num_feedforward_networks", "3", "num_feedforward_networks: expected an integer, got \"3\""),
])
def test_mobilebert_layouts_it_does_not_build_are_refused_in_one_line(tmp_path, key, value, message):
    import shutil

    from edgekit.errors import EdgekitError
    from edgekit.models import load_pretrained

    shutil.copytree(FAMILIES / "mobilebert", tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    extra = {"true_hidden_size": value} if key == "intra_bottleneck_size" else {}
    (tmp_path / "m" / "config.json").write_text(json.dumps({**config, key: value, **extra}))
    with pytest.raises(EdgekitError) as err:
        load_pretrained(tmp_path / "m")
    assert str(err.value) == f"{tmp_path / 'm' / 'config.json'}: {message}", str(err.value)


def test_structured_pruning_cuts_mobilebert_heads_and_every_ffns_neurons(tmp_path):
    """Heads split the bottleneck width (T 16: 4 heads of 4) and every FFN of a block (the two
    stacked ones and its own) keeps the same neuron count: dead heads / neurons (zeroed output
    rows) rank lowest and are cut with the outputs unchanged; saved with pruned_heads (and padded
    for transformers 5), it reads back to the same outputs."""
    from edgekit.models import load_pretrained
    from edgekit.train import prune as P

    pre = load_pretrained(FAMILIES / "mobilebert")
    ref = _reference(FAMILIES / "mobilebert")
    for i in range(2):
        dense = pre.model.get_layer(f"layer_{i}_attention_output")
        kernel, bias = dense.get_weights()
        kernel[4 * (i + 1):4 * (i + 2)] = 0  # head i + 1 of block i contributes nothing
        dense.set_weights([kernel, bias])
        for name in ("ffn_0_output", "ffn_1_output", "output"):
            dense = pre.model.get_layer(f"layer_{i}_{name}")
            kernel, bias = dense.get_weights()
            kernel[16 * i:16 * i + 16] = 0  # 16 dead neurons in every FFN
            dense.set_weights([kernel, bias])
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(2):
        ids = rng.integers(5, 200, size=(4, 12)).astype(np.int32)
        batches.append(({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)},
                        rng.integers(0, 3, 4).astype(np.int32)))
    assert P.ffn_importance(pre.model, pre.config, batches).shape == (6, 64)
    small = P.prune_structured(pre, batches, head_sparsity=0.25, ffn_sparsity=0.25)
    assert (small.config.num_heads, small.config.intermediate_size, small.config.pruned_heads) == (3, 48, ((1,), (2,)))
    want = _outputs(pre, ref)["logits"].numpy()
    np.testing.assert_allclose(_outputs(small, ref)["logits"].numpy(), want, atol=1e-5)
    for pad in (False, True):
        again = load_pretrained(small.save(tmp_path / f"pad-{pad}", pad_pruned_heads=pad))
        np.testing.assert_allclose(_outputs(again, ref)["logits"].numpy(), want, atol=1e-5)
    hf = json.loads((tmp_path / "pad-False" / "config.json").read_text())
    assert (hf["num_attention_heads"], hf["pruned_heads"], hf["intermediate_size"]) == (4, {"0": [1], "1": [2]}, 48)


@pytest.mark.parametrize("family, eps, message", [
    ("gpt2", 1e-12, "expected one of bert, distilbert, roberta, xlm-roberta, electra, albert, mobilebert, got gpt2"),
    ("electra", 1e-12, "distill.student.family: a bert teacher's student can be bert or distilbert, got electra"),
    ("distilbert", 1e-5, "distill.student.family: a distilbert model's LayerNorm epsilon is 1e-12, the teacher's 1e-05"),
])
def test_a_student_family_that_cannot_be_built_is_a_config_error(family, eps, message):
    from edgekit.config import StudentSection
    from edgekit.models.bert_config import BertConfig
    from edgekit.models.student import student_config

    teacher = BertConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32,
                         layer_norm_eps=eps)
    with pytest.raises(Exception) as err:  # FieldError (the section's own check) or ConfigError (vs the teacher)
        student_config(teacher, StudentSection(layers_from_teacher=(0,), family=family))
    assert message in str(err.value), str(err.value)


@pytest.mark.parametrize("family", ["electra", "albert", "mobilebert"])
def test_a_recipe_asking_full_int8_of_any_family_passes_the_recipe_check(tmp_path, family):
    """Projected embeddings (ELECTRA, ALBERT) and MobileBERT's blocks have full-int8 TFLite
    (tests/test_family_exports.py); their recipes are no longer refused for it."""
    from edgekit.config import Precision, load_recipe

    recipes = Path(__file__).parents[1] / "recipes"
    text = (recipes / "quickstart.yaml").read_text()
    text = text.replace("source: minilm-l6", f"source: {FAMILIES / family}").replace(
        "max_length: 128", "max_length: 64").replace("seq_len: 128", "seq_len: 64").replace(
        "data/english-", f"{recipes}/data/english-").replace(
        "{format: tflite, precision: int8-dynamic}", "{format: tflite, precision: int8-full}")
    (tmp_path / "r.yaml").write_text(text)
    assert load_recipe(tmp_path / "r.yaml").export.targets[1].precision is Precision.INT8_FULL


def test_a_pruned_albert_whose_blocks_stay_shared_names_its_heads_per_group(tmp_path):
    """Heads pruned alike in every block (the shared layer's head 1 dead everywhere, no FFN pruning)
    leave one stored layer: transformers 4.x prunes ALBERT's stored layers, so ``pruned_heads`` is
    keyed by group ({"0": [1]}; block keys 1, 2 made it fail with IndexError), and reads back per block."""
    from edgekit.models import load_pretrained
    from edgekit.train import prune as P

    pre = load_pretrained(FAMILIES / "albert")
    size = pre.config.head_size
    for i in range(pre.config.num_layers):
        dense = pre.model.get_layer(f"layer_{i}_attention_output")
        kernel, bias = dense.get_weights()
        kernel[size:2 * size] = 0
        dense.set_weights([kernel, bias])
    ids = np.random.default_rng(0).integers(5, 200, size=(4, 12)).astype(np.int32)
    batches = [({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)},
                np.array([0, 1, 2, 0], np.int32))]
    small = P.prune_structured(pre, batches, head_sparsity=0.25, ffn_sparsity=0.0)
    assert small.config.pruned_heads == ((1,), (1,), (1,))
    folder = small.save(tmp_path / "pruned")
    hf = json.loads((folder / "config.json").read_text())
    assert (hf["num_hidden_groups"], hf["pruned_heads"]) == (1, {"0": [1]})
    again = load_pretrained(folder)
    assert again.config.pruned_heads == small.config.pruned_heads
    ref = _reference(FAMILIES / "albert")
    np.testing.assert_array_equal(_outputs(again, ref)["logits"].numpy(), _outputs(small, ref)["logits"].numpy())
