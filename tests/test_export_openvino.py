"""OpenVINO IR export of tiny encoders: outputs match TensorFlow per precision, shapes, sizes."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TINY_CLS
from edgekit.config import Format, Precision
from edgekit.config.formats import FORMATS, find

ROWS = [r for r in FORMATS if r.format is Format.OPENVINO]


def _padded_inputs(names, batch=3, seq=9, vocab=60, seed=0):
    rng = np.random.default_rng(seed)
    inputs = {"input_ids": rng.integers(5, vocab, (batch, seq)).astype(np.int32),
              "attention_mask": np.ones((batch, seq), np.int32),
              "token_type_ids": np.zeros((batch, seq), np.int32)}
    for row, length in ((1, 6), (2, 3)):  # padded rows, where the batch has them
        if row < batch:
            inputs["attention_mask"][row, length:] = 0
    return {n: inputs[n] for n in names}


@pytest.fixture(scope="module")
def models():
    from edgekit.models import BertConfig, load_pretrained
    from edgekit.models.encoder import build_encoder
    from edgekit.models.pretrained import Pretrained

    classifier = load_pretrained(TINY_CLS)
    config = BertConfig(vocab_size=69, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=48,
                        max_position_embeddings=64, type_vocab_size=0, pooling="mean", normalize=True)
    encoder = Pretrained(config, build_encoder(config), classifier.tokenizer, TINY_CLS)
    return {"classifier": classifier, "encoder": encoder}


def _job(pretrained, row, folder, **kw):
    from edgekit.export.base import ExportJob

    lengths = np.random.default_rng(0).integers(3, 14, 48)  # calibration needs a real sample, not a handful
    calibration = tuple(_padded_inputs(pretrained.model.input_names, batch=1, seq=int(n), seed=i)
                        for i, n in enumerate(lengths))
    return ExportJob(row=row, pretrained=pretrained, folder=folder, seq_len=16, static=False,
                     calibration=calibration, **kw)


def _reference(pretrained, inputs) -> dict[str, np.ndarray]:
    from edgekit.export.base import task_outputs

    out = pretrained.model(inputs, training=False)
    return {o.name: out[o.name].numpy() for o in task_outputs(pretrained)}


@pytest.mark.parametrize("kind", ["classifier", "encoder"])
@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.key)
def test_openvino_matches_tensorflow(models, kind, row, tmp_path):
    from edgekit.export import openvino

    pretrained = models[kind]
    result = openvino.export(_job(pretrained, row, tmp_path))
    assert result.files[0] == tmp_path / f"{row.key}.xml" and all(f.is_file() for f in result.files)
    runner = openvino.load(result.files[0], threads=1)
    assert set(runner.input_names) == set(pretrained.model.input_names)
    [output] = runner.outputs  # the name survives OpenVINO's ONNX frontend and NNCF
    assert output.name == ("logits" if kind == "classifier" else "embedding") and not output.per_token
    for seq, batch in ((9, 3), (13, 1)):  # dynamic: other lengths and batch sizes
        inputs = _padded_inputs(pretrained.model.input_names, batch=batch, seq=seq, seed=seq)
        got, want = runner(inputs)[output.name], _reference(pretrained, inputs)[output.name]
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= row.tolerance, (row.key, np.abs(got - want).max())
    if row.precision is Precision.INT8_STATIC:
        assert result.details["fake_quantize"] > 0  # really quantized, not left float
    if row.precision is Precision.INT8_WEIGHTS:
        assert result.details["fake_quantize"] == 0  # activations stay float


def test_fp16_weights_are_half_the_size(models, tmp_path):
    from edgekit.export import openvino

    sizes = {}
    for precision in (Precision.FP32, Precision.FP16):
        row = find(Format.OPENVINO, precision)
        sizes[precision] = openvino.export(_job(models["classifier"], row, tmp_path)).files[1].stat().st_size
    assert 0.45 <= sizes[Precision.FP16] / sizes[Precision.FP32] <= 0.55, sizes


def test_int8_weights_are_about_a_quarter_of_fp32(models, tmp_path):
    """An encoder whose weights are its GEMMs (hidden 128, FFN 512, 69-token vocabulary): u8
    weights plus per-row scale and zero point, the float pooling, biases and LayerNorms."""
    from edgekit.export import openvino
    from edgekit.models import BertConfig
    from edgekit.models.encoder import build_encoder
    from edgekit.models.pretrained import Pretrained

    config = BertConfig(vocab_size=69, hidden_size=128, num_layers=2, num_heads=4, intermediate_size=512,
                        max_position_embeddings=64, type_vocab_size=0, pooling="mean", normalize=True)
    wide = Pretrained(config, build_encoder(config), models["classifier"].tokenizer, TINY_CLS)
    sizes, results = {}, {}
    for precision in (Precision.FP32, Precision.INT8_WEIGHTS):
        results[precision] = openvino.export(_job(wide, find(Format.OPENVINO, precision), tmp_path))
        sizes[precision] = results[precision].files[1].stat().st_size
    assert 0.25 <= sizes[Precision.INT8_WEIGHTS] / sizes[Precision.FP32] <= 0.3, sizes
    runner = openvino.load(results[Precision.INT8_WEIGHTS].files[0], threads=1)
    inputs = _padded_inputs(wide.model.input_names)
    diff = np.abs(runner(inputs)["embedding"] - _reference(wide, inputs)["embedding"]).max()
    assert 1e-5 < diff <= find(Format.OPENVINO, Precision.INT8_WEIGHTS).tolerance  # rounded, not left float


def test_check_reads_each_precision_from_the_ir(models, tmp_path):
    """No edgekit.json beside the files: ``edgekit check`` tells the four apart by the graph alone
    (int8-weights' f16 scales must not read as fp16); the CPU profiles take int8-weights, the NPU
    profile does not (NNCF's asymmetric int8 weights are not validated on the NPU plugin)."""
    from edgekit.check import check_artifact, identify
    from edgekit.config import load_device
    from edgekit.export import openvino

    for row in ROWS:
        path = openvino.export(_job(models["classifier"], row, tmp_path / row.key)).files[0]
        info = identify(path)
        assert (info.precision, info.precision_source, info.verified) == (row.precision, "graph", None), row.key
    path = tmp_path / "openvino-int8-weights" / "openvino-int8-weights.xml"
    verdicts = {d: {v.rule: v for v in check_artifact(path, load_device(d)).verdicts}["precision"]
                for d in ("x86-cpu", "rpi5", "intel-npu")}
    assert verdicts["x86-cpu"].message == "int8-weights (from the graph) is accepted for openvino"
    assert verdicts["rpi5"].status == "pass" and verdicts["intel-npu"].status == "FAIL"


def test_static_export_has_fixed_shapes_and_pads_inputs(models, tmp_path):
    from edgekit.export import openvino

    pretrained = models["classifier"]
    job = _job(pretrained, find(Format.OPENVINO, Precision.FP32), tmp_path)
    job = type(job)(**{**job.__dict__, "static": True, "seq_len": 16})
    runner = openvino.load(openvino.export(job).files[0], threads=1)
    assert runner.static_shape == (1, 16)
    inputs = _padded_inputs(pretrained.model.input_names, batch=3, seq=9)
    np.testing.assert_allclose(runner(inputs)["logits"], _reference(pretrained, inputs)["logits"], atol=1e-4)


def test_missing_device_is_a_plain_error(models, tmp_path):
    from edgekit.errors import EdgekitError
    from edgekit.export import openvino

    path = openvino.export(_job(models["classifier"], find(Format.OPENVINO, Precision.FP32), tmp_path)).files[0]
    with pytest.raises(EdgekitError, match="^OpenVINO device 'NPU' is not present here"):
        openvino.load(path, threads=1, device="NPU")
