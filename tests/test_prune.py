"""Structured pruning (heads + FFN neurons cut out) and tfmot magnitude pruning, on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import TINY_CLS, model_inputs, reference
from edgekit.models import load_pretrained
from edgekit.train import prune as P

# tiny-bert-cls: H = 32, 2 layers, 4 heads of 8, intermediate 64, 3 labels.
H, LAYERS, HEADS, D, FFN = 32, 2, 4, 8, 64


@pytest.fixture(scope="module")
def tiny():
    return load_pretrained(TINY_CLS)  # never modified: tests that edit weights load their own


@pytest.fixture(scope="module")
def inputs():
    return model_inputs(reference("tiny_bert_cls"))


def _random_batches(count=3, size=6, length=10, seed=0, labels=True):
    rng = np.random.default_rng(seed)
    batches = []
    for _ in range(count):
        ids = rng.integers(5, 69, size=(size, length)).astype(np.int32)
        ids[:, 0] = 2
        mask = np.ones_like(ids)
        mask[: size // 2, length - 4:] = 0
        ids[mask == 0] = 0
        batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        batches.append((batch, rng.integers(0, 3, size).astype(np.int32) if labels else None))
    return batches


def _outputs(model, inputs):
    out = model(inputs, training=False)
    return {k: out[k].numpy() for k in ("last_hidden_state", "pooled", "logits") if k in out}


def _kill(model, heads: dict[int, int], neurons: dict[int, list[int]]):
    """Zero a head's attention-output rows and FFN neurons' output rows: they contribute nothing."""
    for layer, head in heads.items():
        dense = model.get_layer(f"layer_{layer}_attention_output")
        kernel, bias = dense.get_weights()
        kernel[head * D:(head + 1) * D] = 0
        dense.set_weights([kernel, bias])
    for layer, rows in neurons.items():
        dense = model.get_layer(f"layer_{layer}_output")
        kernel, bias = dense.get_weights()
        kernel[rows] = 0
        dense.set_weights([kernel, bias])


def test_pruning_removes_the_expected_parameters_and_shapes_match_config(tiny):
    before = tiny.model.count_params()
    small = P.prune_structured(tiny, _random_batches(), head_sparsity=0.25, ffn_sparsity=0.25)
    heads_out, neurons_out = 1, 16  # round(0.25 * 4), round(0.25 * 64) per layer
    # Per removed head: q, k, v lose D columns + D biases each, attention_output loses D rows.
    # Per removed neuron: an intermediate column + bias, an output row.
    expected = LAYERS * (heads_out * D * (4 * H + 3) + neurons_out * (2 * H + 1))
    assert before - small.model.count_params() == expected == 4176
    assert tiny.model.count_params() == before  # the input is untouched
    c = small.config
    assert (c.num_heads, c.head_size, c.intermediate_size, c.hidden_size) == (3, 8, 48, 32)
    assert len(c.pruned_heads) == LAYERS and all(len(h) == 1 for h in c.pruned_heads)
    for i in range(LAYERS):
        for name in ("query", "key", "value"):
            assert small.model.get_layer(f"layer_{i}_{name}").kernel.shape == (H, c.all_head_size)
        assert small.model.get_layer(f"layer_{i}_attention_output").kernel.shape == (c.all_head_size, H)
        assert small.model.get_layer(f"layer_{i}_intermediate").kernel.shape == (H, c.intermediate_size)
        assert small.model.get_layer(f"layer_{i}_output").kernel.shape == (c.intermediate_size, H)
    assert small.source == tiny.source and small.tokenizer is tiny.tokenizer


def test_sparsity_zero_is_an_identical_copy(tiny, inputs):
    same = P.prune_structured(tiny, [], head_sparsity=0.0, ffn_sparsity=0.0)
    assert same.config == tiny.config and same.model is not tiny.model
    for name, value in _outputs(tiny.model, inputs).items():
        np.testing.assert_array_equal(_outputs(same.model, inputs)[name], value)


def test_cutting_dead_heads_and_neurons_changes_nothing(inputs):
    """Heads / neurons that contribute nothing have zero importance, rank lowest and are the
    ones cut; outputs stay the same, which checks every slice."""
    pre = load_pretrained(TINY_CLS)
    dead_heads = {0: 2, 1: 0}
    dead_neurons = {0: list(range(0, 64, 4)), 1: list(range(40, 56))}
    _kill(pre.model, dead_heads, dead_neurons)
    batches = _random_batches()
    heads = P.head_importance(pre.model, pre.config, batches)
    neurons = P.ffn_importance(pre.model, pre.config, batches)
    assert heads.shape == (LAYERS, HEADS) and neurons.shape == (LAYERS, FFN)
    for layer, head in dead_heads.items():
        assert heads[layer, head] == 0 and np.argmin(heads[layer]) == head
        assert np.delete(heads[layer], head).min() > 0
        assert (neurons[layer, dead_neurons[layer]] == 0).all()
        assert np.delete(neurons[layer], dead_neurons[layer]).min() > 0

    small = P.prune_structured(pre, batches, head_sparsity=0.25, ffn_sparsity=0.25)
    assert small.config.pruned_heads == ((2,), (0,))
    before, after = _outputs(pre.model, inputs), _outputs(small.model, inputs)
    for name in before:
        np.testing.assert_allclose(after[name], before[name], atol=1e-5, err_msg=name)


def test_ffn_pruning_by_importance_keeps_logits_close(tiny, inputs):
    """25% of FFN neurons out, ranked on the model's own predictions (no labels) for the four
    reference sentences. Measured: max |Δ logit| 0.167 (logits up to 1.10); cutting random
    neurons instead moves them 0.58–1.23 (5 draws)."""
    batches = [(inputs, None)]
    reference_logits = _outputs(tiny.model, inputs)["logits"]
    small = P.prune_structured(tiny, batches, head_sparsity=0.0, ffn_sparsity=0.25)
    assert small.config.intermediate_size == 48 and small.config.num_heads == 4
    change = np.abs(_outputs(small.model, inputs)["logits"] - reference_logits).max()
    assert change < 0.25

    random_changes = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        keep = [np.sort(rng.permutation(FFN)[:48]) for _ in range(LAYERS)]
        pre = load_pretrained(TINY_CLS)
        _kill(pre.model, {}, {i: sorted(set(range(FFN)) - set(keep[i].tolist())) for i in range(LAYERS)})
        random_changes.append(np.abs(_outputs(pre.model, inputs)["logits"] - reference_logits).max())
    assert change < min(random_changes) / 2


def test_importance_without_labels_on_a_normalized_encoder(tiny_config):
    """An encoder is scored by ½‖pooled‖² before L2 normalisation (after it, the gradient is 0)."""
    from edgekit.models.encoder import build_encoder

    config = tiny_config.replace(normalize=True)
    model = build_encoder(config)
    batches = _random_batches(count=2, labels=False)
    for batch, _ in batches:
        batch["input_ids"] %= 50
    heads = P.head_importance(model, config, batches)
    neurons = P.ffn_importance(model, config, batches)
    assert heads.shape == (2, 4) and neurons.shape == (2, 32)
    assert (heads > 0).all() and (neurons > 0).mean() > 0.9


def test_pruned_model_saves_in_hf_layout_and_reloads_identically(tiny, inputs, tmp_path):
    small = P.prune_structured(tiny, _random_batches(), head_sparsity=0.5, ffn_sparsity=0.25)
    folder = small.save(tmp_path / "pruned")
    hf = json.loads((folder / "config.json").read_text())
    assert hf["num_attention_heads"] == 4 and hf["intermediate_size"] == 48
    assert hf["pruned_heads"] == {str(i): list(h) for i, h in enumerate(small.config.pruned_heads)}
    assert all(len(h) == 2 for h in hf["pruned_heads"].values())
    tensors = load_file(str(folder / "model.safetensors"))
    assert tensors["bert.encoder.layer.0.attention.self.query.weight"].shape == (16, 32)
    assert tensors["bert.encoder.layer.1.attention.output.dense.weight"].shape == (32, 16)
    again = load_pretrained(folder)
    assert again.config == small.config
    expected = _outputs(small.model, inputs)
    for name, value in _outputs(again.model, inputs).items():
        np.testing.assert_array_equal(value, expected[name])


def test_padded_save_writes_full_heads_with_zeros(tiny, inputs, tmp_path):
    """For transformers 5 (no head pruning): removed heads come back as zero blocks."""
    small = P.prune_structured(tiny, _random_batches(), head_sparsity=0.25, ffn_sparsity=0.0)
    folder = small.save(tmp_path / "padded", pad_pruned_heads=True)
    hf = json.loads((folder / "config.json").read_text())
    assert "pruned_heads" not in hf and hf["num_attention_heads"] == 4
    tensors = load_file(str(folder / "model.safetensors"))
    for i, (removed,) in enumerate(small.config.pruned_heads):
        query = tensors[f"bert.encoder.layer.{i}.attention.self.query.weight"]
        output = tensors[f"bert.encoder.layer.{i}.attention.output.dense.weight"]
        assert query.shape == (32, 32) and output.shape == (32, 32)
        block = slice(removed * D, (removed + 1) * D)
        assert not query[block].any() and not output[:, block].any() and query.any(axis=1).sum() == 24
    again = load_pretrained(folder)
    assert again.config.num_heads == 4 and not again.config.pruned_heads
    expected = _outputs(small.model, inputs)
    for name, value in _outputs(again.model, inputs).items():
        np.testing.assert_allclose(value, expected[name], atol=1e-5, err_msg=name)


def test_pruning_twice_records_original_head_numbers(inputs, tmp_path):
    pre = load_pretrained(TINY_CLS)
    _kill(pre.model, {0: 1, 1: 1}, {})
    once = P.prune_structured(pre, _random_batches(), head_sparsity=0.25, ffn_sparsity=0.0)
    assert once.config.pruned_heads == ((1,), (1,))
    # Now heads 0, 2, 3 remain; current head 2 is original head 3.
    _kill(once.model, {0: 2, 1: 2}, {})
    twice = P.prune_structured(once, _random_batches(), head_sparsity=0.34, ffn_sparsity=0.0)
    assert twice.config.num_heads == 2 and twice.config.pruned_heads == ((1, 3), (1, 3))
    again = load_pretrained(twice.save(tmp_path / "twice"))
    np.testing.assert_array_equal(_outputs(again.model, inputs)["logits"], _outputs(twice.model, inputs)["logits"])


def test_sparsity_is_validated(tiny):
    with pytest.raises(ValueError, match="head_sparsity must be in"):
        P.prune_structured(tiny, [], head_sparsity=1.5, ffn_sparsity=0.0)
    with pytest.raises(ValueError, match="target_sparsity must be in"):
        P.pruning_schedule(1.0, 10)


@pytest.mark.parametrize("steps", [1, 7, 12, 40, 1000])
def test_schedule_reaches_its_target_inside_the_run(steps):
    """Mask updates happen at multiples of frequency up to end_step; the last one is the target."""
    schedule = P.pruning_schedule(0.5, steps)
    assert 1 <= schedule.end_step <= steps and schedule.end_step % schedule.frequency == 0
    update, sparsity = schedule(schedule.end_step)
    assert bool(update) and float(sparsity) == pytest.approx(0.5)


def _per_example_cross_entropy(model):
    """The loss factory convention of edgekit.train.loop (as finetune.task_loss)."""
    import tensorflow as tf

    names = tuple(model.input_names)

    def loss_fn(features, training):
        logits = model({n: features[n] for n in names}, training=training)["logits"]
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=features["labels"], logits=logits), None

    return loss_fn


def test_magnitude_pruning_reaches_target_sparsity(tiny, inputs):
    pruned = P.magnitude_prune(tiny.model, _random_batches(count=4), target_sparsity=0.5, steps=12,
                               learning_rate=1e-3, loss_fn=_per_example_cross_entropy)
    assert abs(P.dense_kernel_sparsity(pruned) - 0.5) <= 0.02
    for layer in ("layer_0_query", "layer_1_intermediate", "layer_1_output", "pooler"):
        kernel = pruned.get_layer(layer).kernel.numpy()
        assert abs((kernel == 0).mean() - 0.5) <= 0.02, layer
    assert (pruned.get_layer("classifier").kernel.numpy() != 0).all()  # the head stays dense
    assert P.dense_kernel_sparsity(tiny.model) == 0.0  # the input model is untouched
    # Same layer names and outputs: the stripped model saves through the usual weight layout.
    assert {w.name for w in pruned.weights} == {w.name for w in tiny.model.weights}
    assert set(pruned(inputs)) == {"last_hidden_state", "pooled", "logits"}
