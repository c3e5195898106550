"""TFLite export on tiny random encoders: every tflite row of FORMATS, run with ai-edge-litert.

Each artifact is compared with the fp32 tf-keras model on padded random inputs within its
row's tolerance; static exports must have no shape ops; the int8 graphs' op/dtype listing
must say integer-only (and must notice a float op when one is kept); metadata must read back.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, TINY_CLS
from edgekit.config import QuantizeSection, TrainSchedule
from edgekit.config.enums import Format, Precision
from edgekit.config.formats import FORMATS, find
from edgekit.data import TextDataset
from edgekit.export.base import ExportJob, task_outputs

ROWS = [r for r in FORMATS if r.format is Format.TFLITE]
SEQ = 16
VOCAB = 69  # the tiny fixture's vocabulary (its tokenizer serves every tiny model here)


def _pretrained(config, seed):
    from edgekit.models import Pretrained, TextTokenizer
    from edgekit.models.encoder import build_encoder

    import tensorflow as tf

    tf.random.set_seed(seed)
    model = build_encoder(config)
    return Pretrained(config=config, model=model, tokenizer=TextTokenizer(TINY_CLS), source=Path(f"tiny-{seed}"))


def _with_outliers(pretrained, channel=5, factor=25.0):
    """Make the residual stream look like BERT's: one channel much larger in every LayerNorm."""
    for layer in pretrained.model.layers:
        if "layer_norm" in layer.name:
            gamma, beta = layer.get_weights()
            gamma[channel] *= factor
            beta[channel] += factor / 5
            layer.set_weights([gamma, beta])
    return pretrained


@pytest.fixture(scope="module")
def models():
    from edgekit.models import BertConfig, load_pretrained

    base = dict(vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                max_position_embeddings=32)
    return {
        "cls3": _with_outliers(_pretrained(BertConfig(**base, pooling="cls", num_labels=3,
                                                      id2label=("neg", "mid", "pos")), 1)),
        "mean-normalize": _with_outliers(_pretrained(BertConfig(**base, pooling="mean", normalize=True), 2)),
        "no-token-types": _pretrained(BertConfig(**base, type_vocab_size=0, pooling="pooler", num_labels=2,
                                                 id2label=("no", "yes")), 3),
        "fixture": load_pretrained(TINY_CLS),
    }


def _inputs(names, rows=5, seq=12, seed=0, lengths=None):
    """Random ids with [CLS]=2 / [SEP]=3, rows of different lengths, zero padding."""
    rng = np.random.default_rng(seed)
    lengths = lengths or [int(n) for n in rng.integers(3, seq + 1, rows)]
    lengths[0] = seq  # one full row: the runner's trimming keeps every column
    ids = np.zeros((len(lengths), seq), np.int32)
    mask = np.zeros_like(ids)
    for r, n in enumerate(lengths):
        ids[r, :n] = rng.integers(5, VOCAB, n)
        ids[r, 0], ids[r, n - 1] = 2, 3
        mask[r, :n] = 1
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    return {n: out[n] for n in names}


def _calibration(names, count=48, seed=1):
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        n = int(rng.integers(4, 14))
        batch = _inputs(names, seq=n, seed=int(rng.integers(1 << 30)), lengths=[n])
        samples.append(batch)
    return tuple(samples)


def _reference(pretrained, inputs):
    """The fp32 model's one task output ([B, labels] or [B, H]) of these sentence models."""
    [output] = task_outputs(pretrained)
    return pretrained.model(inputs, training=False)[output.name].numpy()


def _run(runner, inputs):
    """The runner's one output (every model here has one)."""
    [value] = runner(inputs).values()
    return value


TOY = TextDataset(texts=("the movie was great", "bad film", "good !", "terrible , the cafe .") * 4,
                  labels=np.array([1, 0, 1, 0] * 4), label_names=("neg", "pos"), source="toy")


def _job(row, pretrained, folder, static=False, batch_size=1, quantize=None, seq_len=SEQ):
    labels = pretrained.config.id2label or ("neg", "pos")
    train = TextDataset(texts=TOY.texts, labels=np.minimum(TOY.labels, len(labels) - 1), label_names=labels,
                        source="toy")
    quantize = quantize or QuantizeSection(qat=TrainSchedule(epochs=1.0, batch_size=4, learning_rate=1e-6))
    return ExportJob(row=row, pretrained=pretrained, folder=folder, seq_len=seq_len, static=static,
                     batch_size=batch_size, calibration=_calibration(pretrained.model.input_names),
                     quantize=quantize, train=train)


_EXPORTS: dict = {}


def _export(models, tmp_path_factory, model, precision, static=False, batch_size=1, quantize=None):
    """Export once per (model, precision, shape) in this module; (result, runner, job)."""
    from edgekit.export import tflite

    key = (model, precision, static, batch_size, quantize)
    if key not in _EXPORTS:
        row = find(Format.TFLITE, Precision(precision))
        folder = tmp_path_factory.mktemp(f"{model}-{precision}-{'static' if static else 'dynamic'}")
        job = _job(row, models[model], folder, static, batch_size, quantize)
        result = tflite.export(job)
        _EXPORTS[key] = (result, tflite.load(result.files[0], 1), job)
    return _EXPORTS[key]


CASES = [(m, r.precision.value) for m in ("cls3", "fixture") for r in ROWS] + [
    (m, p) for m in ("mean-normalize", "no-token-types") for p in ("fp32", "fp16", "int8-dynamic", "int8-full")]


@pytest.mark.parametrize("model,precision", CASES)
def test_dynamic_export_matches_tensorflow(models, tmp_path_factory, model, precision):
    result, runner, job = _export(models, tmp_path_factory, model, precision)
    pretrained = models[model]
    names = tuple(pretrained.model.input_names)
    assert result.files == [job.path] and job.path.name == f"tflite-{precision}.tflite"
    json.dumps(result.details)  # goes into manifests as is
    assert set(runner.input_names) == set(names)
    assert runner.output_names == job.output_names and runner.outputs == job.outputs
    assert runner.runtime.startswith("ai-edge-litert ")
    inputs = _inputs(names, rows=6, seq=12, seed=7)
    got = _run(runner, inputs)
    want = _reference(pretrained, inputs)
    assert got.shape == want.shape and got.dtype == np.float32
    assert np.abs(got - want).max() <= job.row.tolerance
    if precision in ("int8-full", "int8-qat"):
        assert result.details["integer_only"], result.details["float_ops"]


def test_fp16_has_float16_weights_and_dynamic_int8_weights(models, tmp_path_factory):
    fp16 = _export(models, tmp_path_factory, "cls3", "fp16")[0].details
    dyn = _export(models, tmp_path_factory, "cls3", "int8-dynamic")[0].details
    fp32 = _export(models, tmp_path_factory, "cls3", "fp32")[0].details
    assert fp16["weight_dtypes"].get("float16", 0) >= 10 and fp16["ops"]["DEQUANTIZE"] >= 10
    assert dyn["weight_dtypes"].get("int8", 0) >= 13  # every FULLY_CONNECTED kernel
    # activations stay float; the one int8 activation is the word-embedding GATHER before its DEQUANTIZE
    assert dyn["activation_dtypes"].get("int8", 0) <= 1 and dyn["activation_dtypes"]["float32"] > 100
    assert set(fp32["weight_dtypes"]) == {"float32", "int32"}
    assert fp16["bytes"] < 0.8 * fp32["bytes"] and dyn["bytes"] < 0.6 * fp32["bytes"]


def test_int8_full_listing_says_which_tensors_are_int8(models, tmp_path_factory):
    details = _export(models, tmp_path_factory, "cls3", "int8-full")[0].details
    assert details["integer_only"] and details["float_ops"] == {}
    assert set(details["activation_dtypes"]) <= {"int8", "int32"} and details["activation_dtypes"]["int8"] > 50
    assert details["weight_dtypes"]["int8"] >= 13  # every FULLY_CONNECTED kernel
    assert details["inputs"] == {"attention_mask": "int32", "input_ids": "int32", "token_type_ids": "int32"}
    assert details["outputs"] == {"logits": "int8"}
    assert {"FULLY_CONNECTED", "BATCH_MATMUL", "SOFTMAX", "RSQRT"} <= set(details["ops"])
    assert details["int8"]["mask_bias"] == -30.0  # the model's -10000 is replaced by a bounded bias
    assert any("residual rescale" in t for t in details["transforms"])


def test_kept_float_op_is_reported(models, tmp_path_factory):
    """keep_float_ops leaves RSQRT in float: the listing must notice (so integer_only can fail)."""
    quantize = QuantizeSection(keep_float_ops=("RSQRT",))
    result, runner, job = _export(models, tmp_path_factory, "cls3", "int8-full", quantize=quantize)
    details = result.details
    assert not details["integer_only"]
    assert details["float_ops"].get("RSQRT", 0) == details["ops"]["RSQRT"] >= 5  # every LayerNorm's
    assert details["ops"]["DEQUANTIZE"] >= 5 and details["ops"]["QUANTIZE"] >= 5
    inputs = _inputs(job.input_names, seed=3)
    assert np.abs(_run(runner, inputs) - _reference(models["cls3"], inputs)).max() <= job.row.tolerance


@pytest.mark.parametrize("precision", ["fp32", "int8-full", "int8-qat"])
def test_static_export_has_no_shape_ops_and_matches_after_padding(models, tmp_path_factory, precision):
    result, runner, job = _export(models, tmp_path_factory, "cls3", precision, static=True, batch_size=2)
    details = result.details
    assert details["shape"] == [2, SEQ] and details["static"]
    assert details["shape_ops"] == 0 and not {"SHAPE", "PACK", "REDUCE_PROD"} & set(details["ops"])
    assert runner.static_shape == (2, SEQ)
    dynamic = _export(models, tmp_path_factory, "cls3", "fp32")[0].details
    assert dynamic["shape_ops"] > 0  # the dynamic graph does have them: the check above can fail
    pretrained = models["cls3"]
    inputs = _inputs(job.input_names, rows=3, seq=9, seed=11)  # shorter than SEQ, odd batch
    got = _run(runner, inputs)
    assert got.shape == (3, 3)
    assert np.abs(got - _reference(pretrained, inputs)).max() <= job.row.tolerance
    if precision != "fp32":
        assert details["integer_only"]


def test_static_runner_truncates_long_inputs(models, tmp_path_factory):
    result, runner, job = _export(models, tmp_path_factory, "cls3", "fp32", static=True, batch_size=2)
    long = _inputs(job.input_names, rows=2, seq=SEQ + 6, seed=5)
    cut = {k: v[:, :SEQ] for k, v in long.items()}
    np.testing.assert_allclose(_run(runner, long), _reference(models["cls3"], cut), atol=1e-4)


def test_int8_padding_stays_masked_after_unpadded_calibration(models, tmp_path_factory):
    """Calibration inputs are never padded, yet padding must not leak into real tokens."""
    result, runner, job = _export(models, tmp_path_factory, "fixture", "int8-full")
    model = models["fixture"]  # trained-scale weights (init 0.2): attending to padding shifts its logits
    inputs = _inputs(job.input_names, rows=2, seq=14, seed=9, lengths=[14, 5])
    unmasked = {**inputs, "attention_mask": np.ones_like(inputs["attention_mask"])}
    leak = np.abs(_reference(model, unmasked)[1] - _reference(model, inputs)[1]).max()
    alone = _run(runner, {k: v[1:, :5] for k, v in inputs.items()})
    padded = _run(runner, inputs)[1:]
    assert np.abs(padded - alone).max() < 0.05 < leak / 3


def test_metadata_reads_back(models, tmp_path_factory):
    from edgekit.export.tflite.metadata import input_order, read_metadata

    result, _, job = _export(models, tmp_path_factory, "fixture", "int8-full")
    info = read_metadata(job.path)
    order = input_order(job.path.read_bytes())
    roles = {"input_ids": "ids", "attention_mask": "mask", "token_type_ids": "segment_ids"}
    assert [name for name, _ in info.inputs] == [roles[n] for n in order]
    assert [n for n, _ in info.outputs] == ["logits"] and info.label_file == "labels.txt"
    assert info.vocab_file == "vocab.txt"
    assert info.min_parser_version == "1.1.0" and info.version == "tflite-int8-full"
    assert info.files["labels.txt"].decode().splitlines() == ["negative", "neutral", "positive"]
    assert info.files["vocab.txt"] == (TINY_CLS / "vocab.txt").read_bytes()
    assert zipfile.is_zipfile(job.path)
    assert result.details["metadata"] == {"inputs": ["mask", "ids", "segment_ids"], "outputs": ["logits"],
                                          "files": ["labels.txt", "vocab.txt"]}

    encoder = _export(models, tmp_path_factory, "mean-normalize", "fp32")[2]
    info = read_metadata(encoder.path)
    assert info.outputs == [("embedding", "L2-normalised mean-pooled sentence embedding, 32 values.")]
    assert info.label_file is None and set(info.files) == {"vocab.txt"}
    no_types = _export(models, tmp_path_factory, "no-token-types", "fp32")[2]
    assert sorted(name for name, _ in read_metadata(no_types.path).inputs) == ["ids", "mask"]


def test_metadata_absent_is_none(tmp_path):
    from edgekit.export.tflite.metadata import read_metadata

    path = tmp_path / "bare.tflite"
    path.write_bytes(_bare_model())
    assert read_metadata(path) is None


def _bare_model() -> bytes:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 2], tf.float32)])
    def double(x):
        return {"y": x * 2.0}

    module = tf.Module()
    module.double = double
    return tf.lite.TFLiteConverter.from_concrete_functions([double.get_concrete_function()], module).convert()


def test_transforms_keep_fp32_outputs_and_flatten_the_residual_stream(models):
    from edgekit.export.tflite import transforms as T
    from edgekit.export.tflite.graph import EncoderGraph, from_keras

    import tensorflow as tf

    for name in ("cls3", "mean-normalize", "no-token-types"):
        pretrained = models[name]
        names = tuple(pretrained.model.input_names)
        inputs = _inputs(names, rows=4, seq=10, seed=2)
        want = _reference(pretrained, inputs)
        w = from_keras(pretrained.model, pretrained.config)
        samples = list(_calibration(names, count=16))
        stats = T.activation_stats(w, samples, mask_bias=-30.0)
        moved = T.rescale_residual(w, stats)
        moved = T.split_first_token(moved, stats, ratio=0.5)  # below 1: always (tiny models have no [CLS] outlier)
        moved = T.group_ffn_neurons(moved, stats, ratio=1.2)
        assert moved.split_first and all(len(b.ffn_groups) > 1 for b in moved.blocks)
        moved = T.equalize_qk(moved, stats)
        moved = T.equalize_value(moved, stats)
        moved = T.smooth_norm_outputs(moved, T.activation_stats(moved, samples, mask_bias=-30.0), 0.5)
        for weights in (w, moved):
            [got] = EncoderGraph(weights, mask_bias=-30.0)({k: tf.constant(v) for k, v in inputs.items()}).values()
            np.testing.assert_allclose(got.numpy(), want, atol=2e-5)
        if name != "no-token-types":  # the ones given an outlier channel
            after = T.activation_stats(moved, samples, mask_bias=-30.0)
            before = stats["norm1_in"].max() / np.median(stats["norm1_in"])
            assert before > 10 and after["norm1_in"].max() / np.median(after["norm1_in"]) < 2


@pytest.mark.parametrize("static", [False, True])
def test_cls_apart_and_grouped_ffn_int8_graph(models, tmp_path, static):
    """[CLS] in tensors of its own and FFN neuron groups (forced here): still one set of
    weights in the file, integer-only, no shape ops when static, outputs within tolerance."""
    from edgekit.export.tflite import int8 as I
    from edgekit.export.tflite import transforms as T
    from edgekit.export.tflite.graph import from_keras
    from edgekit.export.tflite.inspect import op_listing
    from edgekit.export.tflite.runner import LiteRTRunner

    pretrained = models["fixture"]
    names = tuple(pretrained.model.input_names)
    samples = I.calibration_batches(_calibration(names), static=static, batch_size=2, seq_len=SEQ)
    options = I.Int8Options()
    sizes = {}
    for split in (False, True):
        w = from_keras(pretrained.model, pretrained.config)
        if split:
            stats = T.activation_stats(w, list(_calibration(names)), mask_bias=-30.0)
            w = T.group_ffn_neurons(T.split_first_token(w, stats, ratio=0.5), stats, ratio=1.2)
        concrete, module = I.float_graph_model(pretrained, w, options, static=static, batch_size=2, seq_len=SEQ)
        path = tmp_path / f"split-{split}.tflite"
        path.write_bytes(I.quantize_graph(concrete, module, samples, options))
        sizes[split] = _int8_constant_bytes(path.read_bytes())
    listing = op_listing(path)
    assert listing["integer_only"] and (listing["shape_ops"] == 0) == static
    # one per query part and layer, except the last layer's other-token queries: a pooler on
    # [CLS] never reads them, and the converter drops dead ops
    assert listing["ops"]["SOFTMAX"] == 2 * pretrained.config.num_layers - 1
    assert sizes[True] == sizes[False] > 15_000  # the same int8 weights, stored once
    inputs = _inputs(names, rows=4, seq=12, seed=13)
    got = LiteRTRunner(path)(inputs)["logits"]
    assert np.abs(got - _reference(pretrained, inputs)).max() <= find(Format.TFLITE, Precision.INT8_FULL).tolerance


def test_int8_graph_weights_as_variables_quantize_like_constants(models, tmp_path, monkeypatch):
    """Tables and kernels enter the int8 graph as tf.Variables (a graph embedding ~90 MB of
    constants is copied at every conversion step); frozen, they give the same int8 model."""
    from edgekit.export.tflite import graph
    from edgekit.export.tflite import int8 as I
    from edgekit.export.tflite.graph import from_keras
    from edgekit.export.tflite.runner import LiteRTRunner

    pretrained = models["cls3"]
    names = tuple(pretrained.model.input_names)
    samples = I.calibration_batches(_calibration(names), static=False, batch_size=1, seq_len=SEQ)
    options = I.Int8Options()
    w = from_keras(pretrained.model, pretrained.config)
    inputs = _inputs(names, rows=4, seq=12, seed=13)
    logits = {}
    for size in (1, 1 << 62):  # every table and kernel a variable; none (the tiny model's default)
        monkeypatch.setattr(graph, "VARIABLE_SIZE", size)
        concrete, module = I.float_graph_model(pretrained, w, options, static=False, batch_size=1, seq_len=SEQ)
        assert len(module.tracked) == (3 + 6 * 2 + 1 if size == 1 else 0)  # 3 tables, 6 kernels a layer, head
        path = tmp_path / f"variables-{size == 1}.tflite"
        path.write_bytes(I.quantize_graph(concrete, module, samples, options))
        logits[size] = LiteRTRunner(path)(inputs)["logits"]
    np.testing.assert_array_equal(logits[1], logits[1 << 62])


def _int8_constant_bytes(model: bytes) -> int:
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    tensors = [g.Tensors(i) for i in range(g.TensorsLength())]
    return sum(m.Buffers(t.Buffer()).DataLength() for t in tensors if t.Type() == fb.TensorType.INT8)


def test_percentile_range_clips_outliers_that_minmax_keeps():
    from edgekit.export.tflite.calibrate import TensorStats

    rng = np.random.default_rng(0)
    s = TensorStats()
    for _ in range(20):
        s.add(rng.normal(size=5000).astype(np.float32), rng)
    s.add(np.array([80.0], np.float32), rng)
    assert s.high == 80.0 and s.count == 100_001
    assert 3.0 < s.quantile(1 - 1e-4) < 5.0  # exact from the kept tail
    assert abs(s.quantile(0.5)) < 0.05  # from the reservoir


def test_qat_copies_weights_by_name(models):
    from edgekit.export.tflite.qat import quantize_aware_model

    pretrained = models["fixture"]
    qat = quantize_aware_model(pretrained, mask_bias=-30.0)
    source = {v.name: v.numpy() for v in pretrained.model.weights}
    copied = {v.name: v.numpy() for v in qat.weights if v.name in source}
    assert set(copied) == set(source)  # every weight, embeddings and LayerNorms included
    for name, value in copied.items():
        np.testing.assert_array_equal(value, source[name])
    assert sum(name.endswith("kernel:0") for name in copied) == 14
    assert any(v.name.endswith("kernel_min:0") for v in qat.weights)  # fake-quant was applied


def test_importing_the_backend_does_not_import_tensorflow():
    code = "import sys, edgekit.export.tflite; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0
