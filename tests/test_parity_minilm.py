"""The real all-MiniLM-L6-v2 against transformers' BertModel (fixture from
scripts/make_reference_fixtures.py): max |diff| <= 1e-4 on real tokens."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import model_inputs, reference
from edgekit.models import load_pretrained

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm():
    return load_pretrained("minilm-l6")


def test_config_from_sentence_transformers_folder(minilm):
    c = minilm.config
    assert (c.num_layers, c.hidden_size, c.num_heads, c.vocab_size) == (6, 384, 12, 30522)
    assert (c.pooling, c.normalize, c.num_labels) == ("mean", True, 0)


def test_tokenizer_matches_transformers(minilm):
    ref = reference("minilm_l6")
    got = minilm.tokenizer.encode(list(ref["texts"]), max_length=128)
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[name], ref[name])


def test_hidden_states_and_sentence_embeddings_match_transformers(minilm):
    ref = reference("minilm_l6")
    out = minilm.model(model_inputs(ref), training=False)
    real = ref["attention_mask"].astype(bool)
    hidden_diff = np.abs(out["last_hidden_state"].numpy() - ref["last_hidden_state"])[real].max()
    assert hidden_diff <= 1e-4
    assert np.abs(out["pooled"].numpy() - ref["sentence_embedding"]).max() <= 1e-4
