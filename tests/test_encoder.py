"""The tf-keras encoder on tiny random configs: shapes, masking, pooling, graph ops."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.models.encoder import build_encoder

IDS = np.array([[2, 7, 9, 11, 3, 0, 0], [2, 5, 6, 8, 12, 13, 3]], dtype=np.int32)
MASK = (IDS != 0).astype(np.int32)


def _run(model, ids=IDS, mask=MASK):
    inputs = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in model.input_names:
        inputs["token_type_ids"] = np.zeros_like(ids)
    return {k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in model(inputs, training=False).items()}


@pytest.mark.parametrize("pooling", ["cls", "mean", "pooler"])
def test_output_shapes_per_pooling(tiny_config, pooling):
    config = tiny_config.replace(pooling=pooling, num_labels=3, id2label=("a", "b", "c"), task="text-classification")
    out = _run(build_encoder(config))
    assert out["last_hidden_state"].shape == (2, 7, 16)
    assert out["pooled"].shape == (2, 16)
    assert out["logits"].shape == (2, 3)


def test_padding_does_not_change_real_tokens(tiny_config):
    """A text padded with 3 extra [PAD] tokens gets the same hidden states and mean vector."""
    model = build_encoder(tiny_config)
    short = _run(model, IDS[:1, :5], MASK[:1, :5])
    padded = _run(model, IDS[:1], MASK[:1])
    np.testing.assert_allclose(padded["last_hidden_state"][:, :5], short["last_hidden_state"], atol=1e-5)
    np.testing.assert_allclose(padded["pooled"], short["pooled"], atol=1e-5)


def test_bounded_mask_bias_keeps_float_outputs(tiny_config):
    """-30 (int8-friendly) and -10000 give the same float outputs on real tokens."""
    wide = build_encoder(tiny_config)
    narrow = build_encoder(tiny_config.replace(mask_bias=-30.0))
    narrow.set_weights(wide.get_weights())
    a, b = _run(wide), _run(narrow)
    assert np.abs(a["pooled"] - b["pooled"]).max() < 1e-5


def test_normalize_gives_unit_vectors(tiny_config):
    out = _run(build_encoder(tiny_config.replace(normalize=True)))
    np.testing.assert_allclose(np.linalg.norm(out["pooled"], axis=1), 1.0, atol=1e-5)


def test_no_token_types_means_no_input(tiny_config):
    model = build_encoder(tiny_config.replace(type_vocab_size=0))
    assert sorted(model.input_names) == ["attention_mask", "input_ids"]
    assert _run(model)["pooled"].shape == (2, 16)


def test_hidden_states_and_attentions_for_distillation(tiny_config):
    out = _run(build_encoder(tiny_config, output_hidden_states=True, output_attentions=True))
    assert len(out["hidden_states"]) == 3 and len(out["attentions"]) == 2
    probs = out["attentions"][0].numpy()
    assert probs.shape == (2, 4, 7, 7)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    assert probs[0, :, :, 5:].max() < 1e-6  # padding gets no attention


def test_gelu_is_erf_form_without_erfc(tiny_config):
    """Keras' exact GELU lowers to Erfc, which tf2onnx 1.17 cannot convert."""
    import tensorflow as tf

    from edgekit.models.layers import HiddenActivation

    x = tf.linspace(-6.0, 6.0, 101)
    np.testing.assert_allclose(HiddenActivation("gelu")(x), tf.nn.gelu(x, approximate=False), atol=1e-6)
    model = build_encoder(tiny_config)
    spec = {n: tf.TensorSpec([1, 7], tf.int32, name=n) for n in model.input_names}
    graph = tf.function(lambda inputs: model(inputs)).get_concrete_function(spec).graph
    ops = {op.type for op in graph.get_operations()}
    assert "Erf" in ops and "Erfc" not in ops


def test_bad_head_split_is_a_load_error():
    from edgekit.errors import ModelLoadError
    from edgekit.models import BertConfig

    with pytest.raises(ModelLoadError, match="not divisible"):
        BertConfig(vocab_size=10, hidden_size=30, num_layers=1, num_heads=4, intermediate_size=8)


def test_pruned_heads_round_trip_through_hf_config(tiny_config):
    """HF's own representation: original num_attention_heads plus removed heads per layer."""
    from edgekit.models import BertConfig

    pruned = tiny_config.replace(num_heads=3, attention_head_size=4, pruned_heads=((0,), (2,)))
    assert (pruned.head_size, pruned.all_head_size, pruned.original_num_heads) == (4, 12, 4)
    hf = pruned.to_hf()
    assert hf["num_attention_heads"] == 4 and hf["pruned_heads"] == {"0": [0], "1": [2]}
    assert "attention_head_size" not in hf
    assert BertConfig.from_hf(hf) == pruned
    # Without explicit indices the highest-numbered heads count as removed.
    assert tiny_config.replace(num_heads=2, attention_head_size=4).pruned_heads == ((2, 3), (2, 3))
    # The default head size said explicitly is the unpruned config.
    assert tiny_config.replace(attention_head_size=4) == tiny_config
    assert "pruned_heads" not in tiny_config.to_hf()


def test_non_uniform_pruned_heads_are_refused(tiny_config):
    from edgekit.errors import ModelLoadError
    from edgekit.models import BertConfig

    hf = {**tiny_config.to_hf(), "pruned_heads": {"0": [1, 3], "1": [0]}}
    with pytest.raises(ModelLoadError, match=r"per-layer head counts differ \(\[2, 3\] heads left\)"):
        BertConfig.from_hf(hf)
    with pytest.raises(ModelLoadError, match="names layer 5 of a 2-layer model"):
        BertConfig.from_hf({**tiny_config.to_hf(), "pruned_heads": {"5": [0]}})


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"num_heads": 3, "attention_head_size": 5}, "hidden_size 16 must be a multiple of the head size"),
        ({"num_heads": 5, "attention_head_size": 4}, "hold at least num_attention_heads"),
        ({"num_heads": 3, "attention_head_size": 4, "pruned_heads": ((0,),)}, "lists 1 layers for a 2-layer"),
        ({"num_heads": 3, "attention_head_size": 4, "pruned_heads": ((0,), (4,))}, "pruned_heads of layer 1 is"),
        ({"pruned_heads": ((0,), (1,))}, "pruned_heads needs attention_head_size"),
    ],
)
def test_bad_pruned_attention_is_a_load_error(tiny_config, changes, expected):
    from edgekit.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match=expected):
        tiny_config.replace(**changes)


def test_narrow_attention_shapes(tiny_config):
    """3 heads of size 4 in a 16-wide model: q/k/v are 12 wide, attention output maps back to 16."""
    config = tiny_config.replace(num_heads=3, attention_head_size=4)
    model = build_encoder(config, output_attentions=True)
    assert model.get_layer("layer_0_query").kernel.shape == (16, 12)
    assert model.get_layer("layer_1_value").bias.shape == (12,)
    assert model.get_layer("layer_0_attention_output").kernel.shape == (12, 16)
    out = _run(model)
    assert out["last_hidden_state"].shape == (2, 7, 16)
    assert out["attentions"][1].numpy().shape == (2, 3, 7, 7)
