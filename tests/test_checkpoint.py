"""HF checkpoint import/export against transformers' own outputs (tiny classifier fixture)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import TINY_CLS, model_inputs, reference
from edgekit.errors import ModelLoadError
from edgekit.models import TextTokenizer, load_pretrained


@pytest.fixture(scope="module")
def tiny():
    return load_pretrained(TINY_CLS)


def test_tiny_classifier_matches_transformers(tiny):
    ref = reference("tiny_bert_cls")
    out = tiny.model(model_inputs(ref), training=False)
    real = ref["attention_mask"].astype(bool)
    assert np.abs(out["logits"].numpy() - ref["logits"]).max() <= 1e-4
    assert np.abs(out["last_hidden_state"].numpy() - ref["last_hidden_state"])[real].max() <= 1e-4
    assert tiny.config.id2label == ("negative", "neutral", "positive")
    assert tiny.config.pooling == "pooler"


def test_vocab_txt_tokenizer_lowercases_and_strips_accents_like_transformers():
    ref = reference("tiny_bert_cls")
    got = TextTokenizer(TINY_CLS).encode(list(ref["texts"]), max_length=64)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[name], ref[name])


def test_truncation_keeps_sep_and_static_padding():
    tok = TextTokenizer(TINY_CLS)
    enc = tok.encode(["the movie was great the movie was great"], max_length=5, pad_to=8)
    assert enc["input_ids"].shape == (1, 8)
    assert enc["input_ids"][0, 4] == 3 and enc["attention_mask"][0].sum() == 5  # [SEP] survives


def test_save_writes_transformers_layout_and_reloads_identically(tiny, tmp_path):
    out = tiny.save(tmp_path / "student")
    saved, original = load_file(str(out / "model.safetensors")), load_file(str(TINY_CLS / "model.safetensors"))
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in original.items()}
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "negative", "1": "neutral", "2": "positive"}
    assert (out / "vocab.txt").read_text() == (TINY_CLS / "vocab.txt").read_text()
    ref = reference("tiny_bert_cls")
    again = load_pretrained(out).model(model_inputs(ref), training=False)
    np.testing.assert_array_equal(again["logits"].numpy(), tiny.model(model_inputs(ref))["logits"].numpy())


def test_failed_save_leaves_no_folder(tiny, tmp_path, monkeypatch):
    import safetensors.numpy

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", broken)
    with pytest.raises(OSError):
        tiny.save(tmp_path / "student")
    assert list(tmp_path.iterdir()) == []


def _copy_fixture(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(TINY_CLS, folder)
    return folder


def test_pickled_checkpoint_is_refused_with_a_conversion_hint(tmp_path):
    folder = _copy_fixture(tmp_path)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as err:
        load_pretrained(folder)
    message = str(err.value)
    assert "pytorch_model.bin" in message and "arbitrary code" in message
    assert "save_pretrained" in message and "safe_serialization=True" in message


def _rewrite_weights(folder, change):
    weights = load_file(str(folder / "model.safetensors"))
    change(weights)
    save_file(weights, str(folder / "model.safetensors"))


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda w: w.pop("bert.encoder.layer.1.output.dense.bias"),
         "missing tensor 'encoder.layer.1.output.dense.bias' for a 2-layer model"),
        (lambda w: w.update({"bert.encoder.layer.0.intermediate.dense.weight": np.zeros((48, 32), np.float32)}),
         "tensor 'encoder.layer.0.intermediate.dense.weight' has shape (48, 32), config.json implies (64, 32)"),
        (lambda w: w.update({"qa_outputs.weight": np.zeros((2, 32), np.float32)}),
         "the weights hold both a classifier and a qa_outputs head"),
    ],
)
def test_bad_weights_are_named(tmp_path, change, expected):
    folder = _copy_fixture(tmp_path)
    _rewrite_weights(folder, change)
    with pytest.raises(ModelLoadError) as err:
        load_pretrained(folder)
    assert expected in str(err.value)


def test_unprefixed_base_model_weights_load(tmp_path):
    """BertModel checkpoints have no ``bert.`` prefix; both spellings load the same tensors."""
    folder = _copy_fixture(tmp_path)
    _rewrite_weights(folder, lambda w: w.update({k.removeprefix("bert."): w.pop(k) for k in list(w)}))
    ref = reference("tiny_bert_cls")
    logits = load_pretrained(folder).model(model_inputs(ref))["logits"].numpy()
    assert np.abs(logits - ref["logits"]).max() <= 1e-4


@pytest.mark.parametrize("remove, expected", [("config.json", "no config.json"), ("vocab.txt", "no tokenizer.json or vocab.txt")])
def test_missing_files_are_named(tmp_path, remove, expected):
    folder = _copy_fixture(tmp_path)
    (folder / remove).unlink()
    with pytest.raises(ModelLoadError, match=expected):
        load_pretrained(folder)


def test_unknown_model_type_is_refused_naming_the_families(tmp_path):
    folder = _copy_fixture(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "deberta-v2"}))
    with pytest.raises(ModelLoadError, match=r"model_type 'deberta-v2' is not supported \(expected one of bert, "
                                             r"distilbert, roberta, xlm-roberta, electra, albert, mobilebert; "
                                             r"deberta-v2 is not converted yet\)$"):
        load_pretrained(folder)
