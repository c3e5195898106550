"""BERT-class family fixtures (scripts/make_family_fixtures.py: tiny random transformers models with
reference outputs): edgekit's port must reproduce transformers' hidden states and task heads, and
write back what transformers wrote.

ALBERT and MobileBERT have no converter yet: their folders are refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

FAMILIES = Path(__file__).parent / "fixtures" / "families"
CONVERTED = ("bert", "distilbert", "roberta", "xlm-roberta", "electra")
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
    scripts/make_family_fixtures.py --check)."""
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
              "num_hidden_layers", "type_vocab_size", "embedding_size", "layer_norm_eps", "activation", "hidden_act"}
    assert {k: ours.get(k) for k in shared & set(hf)} == {k: hf[k] for k in shared & set(hf)}
    again = load_pretrained(tmp_path / "out")
    ref = _reference(folder)
    np.testing.assert_array_equal(_outputs(again, ref)["last_hidden_state"].numpy(),
                                  _outputs(model, ref)["last_hidden_state"].numpy())


@pytest.mark.parametrize("family", ["albert", "mobilebert"])
def test_families_without_a_converter_are_refused_in_one_line(family):
    from edgekit.errors import EdgekitError
    from edgekit.models import load_pretrained

    with pytest.raises(EdgekitError) as err:
        load_pretrained(FAMILIES / family)
    message = str(err.value)
    assert "\n" not in message and f"model_type {family!r}" in message and "not converted yet" in message, message
