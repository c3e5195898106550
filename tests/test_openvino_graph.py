"""OpenVINO IR from edgekit's own ONNX graph: fp32 equals TensorFlow per task, the padding bias
is the one asked for, int8 keeps the pooling and head float."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edgekit.config import Format, Precision, QuantizeSection
from edgekit.config.formats import find
from edgekit.export.base import ExportJob
from test_export_tasks import SEQ, TASKS, _calibration, _inputs, _pretrained, _reference


def _job(pretrained, precision, folder, **kw) -> ExportJob:
    calibration = _calibration(pretrained.model.input_names) if precision.is_int8 else ()
    return ExportJob(row=find(Format.OPENVINO, precision), pretrained=pretrained, folder=folder, seq_len=SEQ,
                     static=False, calibration=calibration, threads=1, **kw)


def _max_diff(got: dict, want: dict, mask: np.ndarray, outputs) -> dict[str, float]:
    """Max |got - want| per output over the real positions (padding's per-token values are free)."""
    real = mask.astype(bool)
    return {o.name: float(np.abs((got[o.name][real] - want[o.name][real]) if o.per_token
                                 else got[o.name] - want[o.name]).max()) for o in outputs}


@pytest.mark.parametrize("task", TASKS)
def test_fp32_matches_tensorflow_within_1e_5(tmp_path, task):
    """Padded batches of two shapes; outputs of O(1) (``_pretrained``'s weights), so 1e-5 is
    float rounding, while the old tf2onnx route's bound was 1e-4."""
    from edgekit.export import openvino

    pretrained = _pretrained(task)
    result = openvino.export(_job(pretrained, Precision.FP32, tmp_path))
    assert result.details["fake_quantize"] == 0
    runner = openvino.load(result.files[0], threads=1)
    for lengths, seed in (([SEQ + 4, 7, 12, 3, 16], 1), ([5], 2)):
        inputs = _inputs(runner.input_names, lengths, max(lengths), seed=seed)
        want = _reference(pretrained, inputs)
        assert max(float(np.abs(v).max()) for v in want.values()) > 0.5  # outputs that are not all ~0
        diff = _max_diff(runner(inputs), want, inputs["attention_mask"], runner.outputs)
        assert max(diff.values()) <= 1e-5, (task, diff)


def test_padding_bias_is_the_recipes(tmp_path):
    """``quantize.mask_bias`` -1 (padding still attended to a little): the IR equals a TensorFlow
    encoder built with -1, not the default one; OpenVINO's conversion of the packed ``Attention``
    op drops this constant, so a graph that used it fails here."""
    from edgekit.export import openvino
    from edgekit.models.encoder import build_encoder

    pretrained = _pretrained("feature-extraction")
    job = _job(pretrained, Precision.FP32, tmp_path, quantize=QuantizeSection(mask_bias=-1.0))
    runner = openvino.load(openvino.export(job).files[0], threads=1)
    config = pretrained.config.replace(mask_bias=-1.0)
    model = build_encoder(config)
    model.set_weights(pretrained.model.get_weights())
    biased = dataclasses.replace(pretrained, config=config, model=model)
    inputs = _inputs(runner.input_names, [11, 4, 7], 11, seed=3)
    got = runner(inputs)["embedding"]
    assert np.abs(got - _reference(biased, inputs)["embedding"]).max() <= 1e-5
    assert np.abs(got - _reference(pretrained, inputs)["embedding"]).max() > 1e-2


@pytest.mark.parametrize("task", ["feature-extraction", "question-answering"])
def test_int8_leaves_pooling_and_head_float(tmp_path, task):
    """NNCF quantizes the encoder's GEMMs (per layer: Q, K, V, attention output, FFN in and out),
    but no FakeQuantize feeds the mean pooling or the task head."""
    import openvino as ov

    from edgekit.export import openvino
    from edgekit.export.onnx.graph import head_nodes

    pretrained = _pretrained(task)
    result = openvino.export(_job(pretrained, Precision.INT8_STATIC, tmp_path))
    model = ov.Core().read_model(result.files[0])
    quantized = {t.get_node().get_friendly_name() for op in model.get_ops() if op.get_type_name() == "FakeQuantize"
                 for t in op.output(0).get_target_inputs() if t.get_node().get_type_name() == "MatMul"}
    layers = pretrained.config.num_layers
    assert quantized == {f"layer_{i}_{g}" for i in range(layers)
                         for g in ("query", "key", "value", "attention_output", "intermediate", "output")}
    kept = {"feature-extraction": "masked_sum", "question-answering": "qa_outputs"}[task]
    assert kept in head_nodes(pretrained.config)
    assert kept in {op.get_friendly_name() for op in model.get_ops()}  # there, under this name, and float


def _weight_type(port):
    """Element type of the Constant behind a weight input, through NNCF's decompression (Convert,
    Subtract zero point, Multiply scale); None where the input is no constant (an activation)."""
    node = port.get_source_output().get_node()
    while node.get_type_name() in ("Convert", "Subtract", "Multiply"):
        node = node.input_value(0).get_node()
    return node.get_output_element_type(0).get_type_name() if node.get_type_name() == "Constant" else None


@pytest.mark.parametrize("task", TASKS)
def test_int8_weights_compress_the_encoder_and_keep_the_head_float(tmp_path, task):
    """Weight compression gives every encoder GEMM and the word-embedding table u8 weights, keeps
    the pooling and task-head MatMuls f32 (the classifier's by its own name, which the ONNX
    frontend keeps when the bias Add is not folded away) and leaves no FakeQuantize."""
    import openvino as ov

    from edgekit.export import openvino

    pretrained = _pretrained(task)
    result = openvino.export(_job(pretrained, Precision.INT8_WEIGHTS, tmp_path))
    assert result.details["fake_quantize"] == 0
    model = ov.Core().read_model(result.files[0])
    weights = {op.get_friendly_name(): _weight_type(op.input(1)) for op in model.get_ops()
               if op.get_type_name() == "MatMul"}
    layers = pretrained.config.num_layers
    gemms = {f"layer_{i}_{g}" for i in range(layers)
             for g in ("query", "key", "value", "attention_output", "intermediate", "output")}
    assert {n for n, t in weights.items() if t == "u8"} == gemms
    head = {n: t for n, t in weights.items() if n not in gemms}
    assert head and set(head.values()) <= {"f32", None}, head  # None: masked_sum, mask x tokens
    expected = {"text-classification": {"classifier"}, "feature-extraction": {"masked_sum"},
                "token-classification": {"classifier"}, "question-answering": {"qa_outputs"}}[task]
    assert set(head) == expected, head
    tables = {op.get_friendly_name(): _weight_type(op.input(0)) for op in model.get_ops()
              if op.get_type_name() == "Gather" and _weight_type(op.input(0)) is not None}
    assert "u8" in tables.values(), tables
