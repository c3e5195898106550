"""The model a user loads is the model they get: tokenizer <-> embedding table fit, one-line
errors for every broken model file (unreadable ones as a non-root user), and Predictor's inputs.

Commands a user types are in the bad-input catalogue (tests/test_bad_inputs.py); these are the
Python API and the cases a catalogue sandbox cannot hold (files another user may not read).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from conftest import REPO, TINY_CLS
from edgekit.errors import EdgekitError, ModelLoadError
from edgekit.models import BertConfig, Pretrained, TextTokenizer, load_pretrained


def _copy(tmp_path: Path, name: str = "model") -> Path:
    folder = tmp_path / name
    shutil.copytree(TINY_CLS, folder)
    return folder


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _with_tokenizer_json(folder: Path) -> Path:
    """``folder`` with the tokenizer.json that edgekit writes next to its vocab.txt."""
    TextTokenizer(folder)._tok.save(str(folder / "tokenizer.json"))
    return folder


def _load_error(folder: Path) -> str:
    with pytest.raises(ModelLoadError) as err:
        load_pretrained(folder)
    message = str(err.value)
    assert len(message.splitlines()) == 1, message
    return message


# --- tokenizer <-> embedding table ---

def test_a_truncated_vocabulary_is_another_models_tokenizer(tmp_path):
    folder = _copy(tmp_path)
    lines = (folder / "vocab.txt").read_text().splitlines()
    (folder / "vocab.txt").write_text("\n".join(lines[:40]) + "\n")
    assert _load_error(folder) == (
        f"{folder}/vocab.txt: 40 tokens for a 69-row embedding table ({folder}/config.json vocab_size): a model's "
        "own tokenizer covers at least 90% of the rows; the tokenizer does not belong to this model")


def test_a_vocabulary_larger_than_the_table_is_refused_before_the_first_rare_word(tmp_path):
    folder = _copy(tmp_path)
    with (folder / "vocab.txt").open("a") as f:
        f.write("".join(f"extra{i}\n" for i in range(20)))
    message = _load_error(folder)
    assert "89 tokens for a 69-row embedding table" in message and "ids 69..88 are past the table" in message


def test_a_table_padded_a_little_past_the_tokenizer_is_normal(tmp_path):
    folder = _copy(tmp_path)  # 69 tokens; the table padded to 72 rows, a multiple of 8
    weights = load_file(str(folder / "model.safetensors"))
    name = "bert.embeddings.word_embeddings.weight"
    weights[name] = np.concatenate([weights[name], np.zeros((3, weights[name].shape[1]), np.float32)])
    save_file(weights, str(folder / "model.safetensors"))
    _edit_config(folder, vocab_size=72)
    assert load_pretrained(folder).config.vocab_size == 72
    tokenizer = TextTokenizer(TINY_CLS)
    tokenizer.check_fits(int(69 / 0.9), Path("config.json"))  # the 90% rule's edge
    with pytest.raises(ModelLoadError, match="69 tokens for a 77-row"):
        tokenizer.check_fits(77, Path("config.json"))


def test_special_token_ids_past_the_table_are_refused(tmp_path):
    """A post-processor may add [CLS]/[SEP] under ids that are not in the vocabulary."""
    folder = _with_tokenizer_json(_copy(tmp_path))
    (folder / "vocab.txt").unlink()
    spec = json.loads((folder / "tokenizer.json").read_text())
    spec["post_processor"]["cls"] = ["[CLS]", 500]
    (folder / "tokenizer.json").write_text(json.dumps(spec))
    assert "69 tokens (ids up to 500) for a 69-row embedding table" in _load_error(folder)


def test_every_pretrained_checks_its_tokenizer():
    """Also the ones built without load_pretrained (a classifier head, a student)."""
    config = BertConfig(vocab_size=30522, hidden_size=16, num_layers=1, num_heads=4, intermediate_size=32)
    with pytest.raises(ModelLoadError, match="69 tokens for a 30,522-row embedding table"):
        Pretrained(config=config, model=None, tokenizer=TextTokenizer(TINY_CLS), source=TINY_CLS)


def test_vocab_txt_and_tokenizer_json_that_disagree_are_refused(tmp_path):
    folder = _with_tokenizer_json(_copy(tmp_path))
    lines = (folder / "vocab.txt").read_text().splitlines()
    lines[5], lines[6] = lines[6], lines[5]
    (folder / "vocab.txt").write_text("\n".join(lines) + "\n")
    assert _load_error(folder) == (
        f"{folder}/vocab.txt and {folder}/tokenizer.json disagree: 'movie' is id 5 in vocab.txt, id 6 in "
        "tokenizer.json (69 and 69 tokens; both must hold the same tokens under the same ids)")


def test_save_writes_the_tokenizer_in_memory_and_agreeing_files(tmp_path):
    source, out = _copy(tmp_path), tmp_path / "out"
    out.mkdir()
    tokenizer = TextTokenizer(source)
    tokenizer.encode(["the movie"], max_length=8, pad_to=8)  # truncation/padding state is not the tokenizer
    tokenizer.save(out)
    written = TextTokenizer(out)  # loading checks vocab.txt against tokenizer.json
    assert written.file == out / "tokenizer.json" and written.max_id == tokenizer.max_id
    # A source file edited after loading would ship a tokenizer the model was never run with.
    (source / "vocab.txt").write_text((source / "vocab.txt").read_text().replace("movie", "film"))
    again = tmp_path / "again"
    again.mkdir()
    with pytest.raises(ModelLoadError, match=f"^{source}: tokenizer files changed since the model was loaded"):
        tokenizer.save(again)


# --- model folder files: one line naming the file ---

BAD_CONFIGS = [
    ("[1, 2]", "config.json: expected a JSON object, got an array"),
    ("hello", "config.json: invalid JSON (Expecting value at line 1)"),
    (b"\xff{}", "config.json:1: invalid UTF-8 byte 0xff at byte offset 0"),
]
BAD_VALUES = [
    ({"hidden_size": "32"}, 'config.json: hidden_size: expected an integer, got "32"'),
    ({"hidden_size": True}, "config.json: hidden_size: expected an integer, got true"),
    ({"num_attention_heads": None}, "config.json: num_attention_heads: expected an integer, got null"),
    ({"layer_norm_eps": "x"}, 'config.json: layer_norm_eps: expected a number, got "x"'),
    ({"hidden_act": ["gelu"]}, 'config.json: hidden_act: expected a string, got ["gelu"]'),
    ({"num_hidden_layers": 0}, "config.json: num_hidden_layers must be at least 1, got 0"),
    ({"vocab_size": -5}, "config.json: vocab_size must be at least 1, got -5"),
    ({"attention_probs_dropout_prob": 1.5}, "config.json: attention_probs_dropout_prob must be in [0, 1), got 1.5"),
    ({"id2label": ["a", "b", "c"]}, "config.json: id2label: expected an object mapping label ids to names"),
    ({"edgekit": [1]}, "config.json: edgekit: expected an object, got an array"),
    ({"edgekit": {"normalize": "yes"}}, 'config.json: edgekit.normalize: expected true or false, got "yes"'),
    ({"pruned_heads": {"0": [1]}, "num_attention_heads": 0}, "config.json: hidden_size 32 is not divisible"),
    ({"model_type": "gpt2"}, "config.json: model_type 'gpt2' is not supported"),
    ({"pad_token_id": 69}, "config.json: pad_token_id must be in 0..68 (vocab_size 69), got 69"),
    ({"layer_norm_eps": float("inf")}, "config.json: layer_norm_eps must be a finite number > 0, got inf"),
    ({"edgekit": {"mask_bias": float("nan")}}, "config.json: edgekit.mask_bias must be in [-1e+09, 0), got nan"),
    ({"edgekit": {"mask_bias": 0}}, "config.json: edgekit.mask_bias must be in [-1e+09, 0), got 0"),
    ({"edgekit": {"mask_bias": 1000}}, "config.json: edgekit.mask_bias must be in [-1e+09, 0), got 1000"),
    ({"edgekit": {"pooling_mode": "mean"}},
     "config.json: edgekit.pooling_mode: unknown key (expected pooling, normalize, mask_bias)"),
    ({"num_labels": 2}, "config.json: num_labels: expected 3 (the classifier's rows), got 2"),
    ({"id2label": {"0": "neg", "2": "pos", "5": "x"}},
     "config.json: id2label: expected the ids 0..2 (the classifier's 3 rows), got 0, 2, 5"),
    ({"id2label": {"0": "neg", "1": "pos"}}, "config.json: id2label: expected the ids 0..2 (the classifier's 3 rows), got 0, 1"),
    ({"id2label": {"0": "pos", "1": "pos", "2": "neg"}}, "config.json: id2label.1: 'pos' also names label 0"),
    ({"id2label": {"0": "neg", "1": None, "2": "pos"}}, "config.json: id2label.1: expected a label name, got null"),
]


@pytest.mark.parametrize("content, expected", BAD_CONFIGS, ids=["list", "not-json", "not-utf8"])
def test_a_config_json_that_is_not_a_json_object(tmp_path, content, expected):
    folder = _copy(tmp_path)
    path = folder / "config.json"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    assert _load_error(folder).startswith(f"{folder}/{expected}")


@pytest.mark.parametrize("changes, expected", BAD_VALUES, ids=[next(iter(c)) + f"-{i}" for i, (c, _) in
                                                              enumerate(BAD_VALUES)])
def test_config_json_values_of_the_wrong_type_or_range(tmp_path, changes, expected):
    folder = _copy(tmp_path)
    _edit_config(folder, **changes)
    assert _load_error(folder).startswith(f"{folder}/{expected}")


def test_a_config_json_without_a_required_key(tmp_path):
    folder = _copy(tmp_path)
    config = json.loads((folder / "config.json").read_text())
    del config["num_hidden_layers"]
    (folder / "config.json").write_text(json.dumps(config))
    assert _load_error(folder) == f"{folder}/config.json: no num_hidden_layers (expected in a BERT config.json)"


def _edit_weights(folder: Path, edit) -> None:
    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _scale(tensors: dict, name: str, factor: float) -> None:
    tensors[name] = (tensors[name] * factor).astype(tensors[name].dtype)


@pytest.mark.parametrize("edit, expected", [
    (lambda t: t.update({"bert.pooler.dense.bias": t["bert.pooler.dense.bias"].astype(np.int8)}),
     "tensor 'pooler.dense.bias' is int8, expected floating point weights"),
    (lambda t: _scale(t, "classifier.bias", np.nan), "tensor 'classifier.bias' holds NaN or infinite values"),
    (lambda t: t.update({"embeddings.LayerNorm.bias": t["bert.embeddings.LayerNorm.bias"]}),
     "tensor 'embeddings.LayerNorm.bias' is in the checkpoint twice (with and without the 'bert.' prefix"),
    (lambda t: [t.pop(n) for n in ("classifier.weight", "classifier.bias")],
     "config.json: architectures: BertForSequenceClassification needs a classifier head, but the weights have no "
     "classifier.weight (expected BertModel for an encoder)"),
], ids=["int8", "nan", "twice", "classifier-without-head"])
def test_weights_that_would_give_a_silently_wrong_model(tmp_path, edit, expected):
    folder = _copy(tmp_path)
    _edit_weights(folder, edit)
    assert expected in _load_error(folder)


def test_architectures_tell_a_token_classifier_from_a_sentence_classifier(tmp_path):
    """The same classifier.weight [3, H]: per token under BertForTokenClassification, per text otherwise."""
    folder = _copy(tmp_path)
    _edit_config(folder, architectures=["BertForTokenClassification"])
    tagger = load_pretrained(folder)
    assert tagger.config.task == "token-classification"
    ids = np.array([[2, 7, 9, 3]], np.int32)
    out = tagger.model({"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})
    assert tuple(out["logits"].shape) == (1, 4, 3)
    _edit_config(folder, architectures=["BertForMultipleChoice"])
    assert _load_error(folder).startswith(f"{folder}/config.json: architectures: BertForMultipleChoice is not a head "
                                          "edgekit builds (expected one of BertForSequenceClassification")
    _edit_config(folder, architectures=["BertForQuestionAnswering"])
    assert _load_error(folder) == (f"{folder}/config.json: architectures: BertForQuestionAnswering needs a qa_outputs "
                                   "head, but the weights have no qa_outputs.weight (expected BertModel for an encoder)")


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float64"])
def test_half_and_double_precision_weights_load_as_float32(tmp_path, dtype):
    import ml_dtypes

    folder = _copy(tmp_path)
    _edit_weights(folder, lambda t: t.update({k: v.astype(getattr(ml_dtypes, dtype, dtype)) for k, v in t.items()}))
    fp32 = load_pretrained(TINY_CLS).model.get_layer("classifier").get_weights()[0]
    loaded = load_pretrained(folder).model.get_layer("classifier").get_weights()[0]
    assert loaded.dtype == np.float32 and np.allclose(loaded, fp32, atol=1e-2)


def test_config_sizes_are_checked_against_the_tensors_before_a_model_is_built(tmp_path, monkeypatch):
    import edgekit.models.encoder as encoder

    folder = _copy(tmp_path)
    _edit_config(folder, max_position_embeddings=10**9)  # a 128 GB position table, if it were built
    monkeypatch.setattr(encoder, "build_encoder", lambda *a, **k: pytest.fail("built before checking the tensors"))
    assert _load_error(folder) == (f"{folder}: tensor 'embeddings.position_embeddings.weight' has shape (64, 32), "
                                   "config.json implies (1000000000, 32)")


@pytest.mark.parametrize("keep", [0, 7, 5000, 90000])
def test_a_truncated_safetensors_file(tmp_path, keep):
    folder = _copy(tmp_path)
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[:keep])
    assert _load_error(folder).startswith(f"{folder}/model.safetensors: cannot read safetensors file (")


@pytest.mark.parametrize("index, expected", [
    ("[1]", "model.safetensors.index.json: expected a JSON object, got an array"),
    ('{"weight_map": []}', "model.safetensors.index.json: weight_map: expected an object mapping tensor names"),
    ('{"weight_map": {"a": "gone.safetensors"}}', "gone.safetensors: no such file (a shard named in model.safet"),
])
def test_a_broken_shard_index(tmp_path, index, expected):
    folder = _copy(tmp_path)
    (folder / "model.safetensors").rename(folder / "model-00001-of-00001.safetensors")
    (folder / "model.safetensors.index.json").write_text(index)
    assert _load_error(folder).startswith(f"{folder}/{expected}")


@pytest.mark.parametrize("name, content, expected", [
    ("tokenizer.json", "{}", "tokenizer.json: not a tokenizers file (Model missing."),
    ("tokenizer.json", b"\xfe", "tokenizer.json:1: invalid UTF-8 byte 0xfe at byte offset 0"),
    ("vocab.txt", b"[PAD]\n\xff\n", "vocab.txt:2: invalid UTF-8 byte 0xff at byte offset 6"),
    ("vocab.txt", "", "vocab.txt: no [CLS] token"),
    ("tokenizer_config.json", "[1]", "tokenizer_config.json: expected a JSON object, got an array"),
    ("tokenizer_config.json", '{"do_lower_case": "no"}', 'tokenizer_config.json: do_lower_case: expected true or'),
    ("tokenizer_config.json", '{"pad_token": 0}', "tokenizer_config.json: pad_token: expected a string, got 0"),
    ("modules.json", '{"a": 1}', 'modules.json: expected an array of objects with "type" and "path" strings'),
    ("modules.json", '[{"type": "sentence_transformers.models.Pooling", "path": "1_Pooling"}]',
     "1_Pooling/config.json: no such file (the Pooling module named in modules.json)"),
], ids=["json-garbage", "json-not-utf8", "vocab-not-utf8", "vocab-empty", "settings-list", "lowercase-str",
        "pad-int", "modules-object", "pooling-missing"])
def test_broken_tokenizer_and_sentence_transformers_files(tmp_path, name, content, expected):
    folder = _copy(tmp_path)
    path = folder / name
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    assert _load_error(folder).startswith(f"{folder}/{expected}")


def test_a_vocabulary_without_the_unknown_word_token(tmp_path):
    """tokenizers would load it and fail at the first word it does not know."""
    folder = _copy(tmp_path)
    lines = [t for t in (folder / "vocab.txt").read_text().splitlines() if t != "[UNK]"]
    (folder / "vocab.txt").write_text("\n".join(lines) + "\n")
    assert "unknown-word token '[UNK]' is not in the vocabulary" in _load_error(folder)


def _unshare() -> list[str]:
    probe = ["unshare", "--user", "--map-user=1000", "--map-group=1000", "true"]
    if shutil.which("unshare") is None or subprocess.run(probe, capture_output=True).returncode != 0:
        pytest.skip("unshare --user is unavailable: permission cases need a non-root user (root reads anything)")
    return probe[:-1]


@pytest.mark.parametrize("target", ["", "config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"])
def test_unreadable_model_files_as_a_non_root_user(target):
    """chmod 000 read by uid 1000 in a user namespace: EACCES, named in one line (no traceback)."""
    prefix = _unshare()
    root = Path(tempfile.mkdtemp(prefix="edgekit-unreadable-"))  # pytest's tmp_path is root-only
    try:
        folder = root / "model"
        shutil.copytree(TINY_CLS, folder)
        for path in (root, folder, *folder.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        (folder / target).chmod(0)
        proc = subprocess.run([*prefix, sys.executable, "-m", "edgekit", "predict", str(folder), "hi"],
                              capture_output=True, text=True, cwd=REPO, timeout=300,
                              env={**os.environ, "PYTHONPATH": str(REPO), "HOME": str(root)})
    finally:
        shutil.rmtree(root)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert proc.stderr.strip().splitlines()[-1] == f"Error: {folder / target}: cannot read: Permission denied"


# --- Predictor ---

@pytest.fixture(scope="module")
def predictor():
    from edgekit.predict import Predictor

    return Predictor.load(TINY_CLS)


def test_a_str_is_one_text(predictor):
    [one] = predictor.predict("the movie was great")
    assert one.text == "the movie was great"
    assert [p.label for p in predictor.predict(("the movie was great", "bad"))] == \
        [one.label, predictor.predict(["bad"])[0].label]


@pytest.mark.parametrize("texts, expected", [(["ok", None], r"texts\[1\] is NoneType, expected str"),
                                              (b"bytes", "texts is bytes, expected str or an iterable of str"),
                                              (5, "not iterable")])
def test_texts_that_are_not_strings(predictor, texts, expected):
    with pytest.raises(TypeError, match=expected):
        predictor.predict(texts)


def test_batch_size_is_an_int_of_at_least_one(predictor):
    for bad in (0, -1):
        with pytest.raises(EdgekitError, match=f"batch_size must be at least 1, got {bad}"):
            predictor.predict(["hi"], batch_size=bad)
    for bad in ("2", 2.0, True):
        with pytest.raises(TypeError, match="batch_size must be an int"):
            predictor.predict(["hi"], batch_size=bad)
    assert len(predictor.predict(["a", "b", "c"], batch_size=2)) == 3


def test_max_length_is_an_int(predictor):
    from edgekit.predict import Predictor

    for bad in (2.5, "8", True):
        with pytest.raises(TypeError, match="max_length must be an int"):
            Predictor(predictor.pretrained, max_length=bad)


def test_predict_with_stdin_closed_says_no_text():
    proc = subprocess.run([sys.executable, "-m", "edgekit", "predict", str(TINY_CLS), "-"], capture_output=True,
                          text=True, cwd=REPO, timeout=300, preexec_fn=lambda: os.close(0))
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        "Error: no text given (pass TEXT arguments, or - to read one text per line from stdin)"]
