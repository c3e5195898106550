"""Shared paths and tiny models for edgekit's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
TINY_CLS = FIXTURES / "tiny-bert-cls"
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def reference(name: str) -> dict[str, np.ndarray]:
    """Inputs and transformers outputs written by scripts/make_reference_fixtures.py."""
    return dict(np.load(FIXTURES / "reference" / f"{name}.npz"))


def model_inputs(ref: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: ref[name].astype(np.int32) for name in INPUT_NAMES}


@pytest.fixture
def tiny_config():
    from edgekit.models import BertConfig

    return BertConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=4, intermediate_size=32,
                      max_position_embeddings=32, pooling="mean")


def _demo_export(name: str, builder: str):
    """A session fixture ``name``: ``tests/demo_exports.py``'s ``builder``, built once per run."""
    def build(tmp_path_factory):
        import demo_exports

        return getattr(demo_exports, builder)(tmp_path_factory)
    return pytest.fixture(scope="session", name=name)(build)


cls_export = _demo_export("cls_export", "classifier_export")
enc_export = _demo_export("enc_export", "encoder_export")
ner_exp = _demo_export("ner_exp", "ner_export")
qa_exp = _demo_export("qa_exp", "qa_export")
