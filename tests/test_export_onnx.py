"""ONNX export (edgekit.export.onnx) on tiny random encoders: every onnx row of FORMATS matches
the tf-keras model, dynamic and static shapes, the fused graph onnxruntime runs, int8 ops."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_CLS
from edgekit.config import Calibration, Format, Precision, QuantizeSection
from edgekit.config.formats import FORMATS, FormatRow, find
from edgekit.errors import EdgekitError

ROWS = [r for r in FORMATS if r.format is Format.ONNX]
VOCAB = 69  # tests/fixtures/tiny-bert-cls tokenizer
LABELS = ("a", "b", "c")


def _configs():
    from edgekit.models import BertConfig

    base = dict(vocab_size=VOCAB, hidden_size=16, num_layers=2, num_heads=4, intermediate_size=32,
                max_position_embeddings=32)
    return {
        "cls-classifier": BertConfig(**base, pooling="cls", num_labels=3, id2label=LABELS),
        "mean-normalize": BertConfig(**base, pooling="mean", normalize=True),
        "pooler": BertConfig(**base, pooling="pooler"),
        "no-token-types": BertConfig(**base, pooling="mean", type_vocab_size=0, num_labels=2, id2label=LABELS[:2]),
        # 3 heads of size 8 in a hidden size of 32: Q/K/V are 24 wide
        "head-pruned": BertConfig(**{**base, "hidden_size": 32, "num_heads": 3}, attention_head_size=8,
                                  pooling="cls", num_labels=3, id2label=LABELS),
    }


MODELS = ["cls-classifier", "mean-normalize", "pooler", "no-token-types", "head-pruned", "tiny-bert-cls"]


def _randomize(model, seed: int) -> None:
    """Weights large enough that outputs spread over O(1) (BERT's 0.02 init makes every output
    nearly the same, and any int8 error would hide under the tolerances)."""
    rng = np.random.default_rng(seed)
    values = []
    for w in model.weights:
        shape = tuple(w.shape)
        if "gamma" in w.name:
            values.append(1.0 + 0.1 * rng.standard_normal(shape))
        elif len(shape) == 1:
            values.append(0.1 * rng.standard_normal(shape))
        else:
            values.append(0.2 * rng.standard_normal(shape))
    model.set_weights([v.astype(np.float32) for v in values])


_PRETRAINED: dict = {}


def _pretrained(name: str):
    """Pretrained objects built once per test session (TF model building dominates the time)."""
    if name not in _PRETRAINED:
        from edgekit.models import TextTokenizer, load_pretrained
        from edgekit.models.encoder import build_encoder
        from edgekit.models.pretrained import Pretrained

        if name == "tiny-bert-cls":
            _PRETRAINED[name] = load_pretrained(TINY_CLS)
        else:
            config = _configs()[name]
            model = build_encoder(config)
            _randomize(model, seed=MODELS.index(name))
            _PRETRAINED[name] = Pretrained(config, model, TextTokenizer(TINY_CLS), Path(name))
    return _PRETRAINED[name]


def _inputs(pretrained, batch: int, seq: int, seed: int, pad: bool = True) -> dict[str, np.ndarray]:
    """Random int32 ids (1..vocab-1) with trailing padding (mask 0, id 0) in some rows."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, VOCAB, size=(batch, seq)).astype(np.int32)
    mask = np.ones_like(ids)
    if pad:
        for row, keep in zip(range(0, batch, 2), (seq // 2, seq - 2, 3)):
            mask[row, keep:] = 0
    ids[mask == 0] = 0
    inputs = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in pretrained.model.input_names:
        types = rng.integers(0, 2, size=ids.shape).astype(np.int32)
        inputs["token_type_ids"] = types * mask
    return inputs


def _reference(pretrained, inputs) -> dict[str, np.ndarray]:
    from edgekit.export.base import task_outputs

    names = pretrained.model.input_names
    out = pretrained.model({n: inputs[n] for n in names}, training=False)
    return {o.name: out[o.name].numpy() for o in task_outputs(pretrained)}


def _calibration(pretrained, n: int = 12) -> tuple[dict[str, np.ndarray], ...]:
    """[1, n_i] natural-length samples, like the texts an export job gets."""
    rng = np.random.default_rng(99)
    return tuple(_inputs(pretrained, 1, int(length), seed=100 + i, pad=False)
                 for i, length in enumerate(rng.integers(5, 20, size=n)))


def _export(pretrained, row: FormatRow, folder: Path, *, static: bool = False, seq_len: int = 24,
            batch_size: int = 1, quantize: QuantizeSection | None = None, calibrate: bool | None = None):
    """Export with the job an export loop would make (calibration inputs for calibrated rows,
    or as ``calibrate`` says)."""
    from edgekit.export.base import ExportJob
    from edgekit.export.onnx import export

    calibrate = row.calibrated if calibrate is None else calibrate
    job = ExportJob(row=row, pretrained=pretrained, folder=folder, seq_len=seq_len, static=static,
                    batch_size=batch_size, calibration=_calibration(pretrained) if calibrate else (),
                    quantize=quantize or QuantizeSection(), threads=1)
    result = export(job)
    assert result.files[0] == job.path and job.path.is_file()
    return result


def _assert_close(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray], row: FormatRow) -> None:
    """The same named outputs, each within the row's tolerance and (int8) well inside the
    spread of the outputs, so a quantized graph that lost the signal cannot pass on a loose
    absolute bound."""
    assert sorted(actual) == sorted(expected)
    for name, want in expected.items():
        got = actual[name]
        assert got.dtype == np.float32 and got.shape == want.shape
        err = np.abs(got - want).max()
        assert err <= row.tolerance, f"{row.key} {name}: max |diff| {err:.3g} > {row.tolerance}"
        assert err <= 0.1 * np.ptp(want), f"{row.key} {name}: max |diff| {err:.3g} vs output range {np.ptp(want):.3g}"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.key)
@pytest.mark.parametrize("name", MODELS)
def test_dynamic_export_matches_tf(tmp_path, name, row):
    from edgekit.export.onnx import load

    pretrained = _pretrained(name)
    result = _export(pretrained, row, tmp_path)
    runner = load(result.files[0], threads=1)
    assert runner.runtime.startswith("onnxruntime ")
    assert sorted(runner.input_names) == sorted(pretrained.model.input_names)
    from edgekit.export.base import task_outputs

    assert runner.outputs == task_outputs(pretrained)  # read back from the artifact's record
    # two batch sizes and sequence lengths through the same session
    for batch, seq, seed in ((3, 11, 0), (2, 17, 1)):
        inputs = _inputs(pretrained, batch, seq, seed)
        _assert_close(runner(inputs), _reference(pretrained, inputs), row)


# silu: onnxruntime fuses the graph's x * sigmoid(x) into QuickGelu (alpha 1)
@pytest.mark.parametrize("activation,op", [("gelu_new", "FastGelu"), ("relu", "Relu"), ("silu", "QuickGelu")])
def test_fp32_other_activations(tmp_path, activation, op):
    from edgekit.export.onnx import load
    from edgekit.models.encoder import build_encoder
    from edgekit.models.pretrained import Pretrained

    base = _pretrained("pooler")
    config = base.config.replace(hidden_act=activation)
    model = build_encoder(config)
    model.set_weights(base.model.get_weights())
    pretrained = Pretrained(config, model, base.tokenizer, Path(activation))
    row = find(Format.ONNX, Precision.FP32)
    result = _export(pretrained, row, tmp_path)
    assert result.details["runtime_ops"].get(op) == config.num_layers
    inputs = _inputs(pretrained, 3, 11, seed=6)
    _assert_close(load(result.files[0], threads=1)(inputs), _reference(pretrained, inputs), row)


def test_padding_is_masked(tmp_path):
    """A padded row gives the same output as the same text at its natural length."""
    from edgekit.export.onnx import load

    pretrained = _pretrained("mean-normalize")
    runner = load(_export(pretrained, find(Format.ONNX, Precision.FP32), tmp_path).files[0], threads=1)
    inputs = _inputs(pretrained, 3, 12, seed=5)
    padded = runner(inputs)["embedding"]
    for row in range(3):
        n = int(inputs["attention_mask"][row].sum())
        alone = runner({k: v[row:row + 1, :n] for k, v in inputs.items()})["embedding"]
        np.testing.assert_allclose(padded[row:row + 1], alone, atol=1e-5)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.key)
def test_static_export_pads_and_truncates(tmp_path, row):
    import onnx

    from edgekit.export.onnx import load

    pretrained = _pretrained("cls-classifier")
    result = _export(pretrained, row, tmp_path, static=True, seq_len=12, batch_size=2)
    model = onnx.load(str(result.files[0]))
    for value in [*model.graph.input, *model.graph.output]:
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]
        assert all(isinstance(d, int) and d > 0 for d in dims), (value.name, dims)
        assert dims[0] == 2
    assert {op for op in result.details["runtime_ops"]} & {"Shape", "ConstantOfShape", "Expand"} == set()

    runner = load(result.files[0], threads=1)
    short = _inputs(pretrained, 3, 9, seed=2)  # 3 rows: batch padded to 4; 9 tokens padded to 12
    _assert_close(runner(short), _reference(pretrained, short), row)
    long = _inputs(pretrained, 2, 15, seed=3, pad=False)  # truncated to the first 12 tokens
    clipped = {k: v[:, :12] for k, v in long.items()}
    _assert_close(runner(long), _reference(pretrained, clipped), row)


@pytest.mark.parametrize("name", ["mean-normalize", "head-pruned", "tiny-bert-cls"])
def test_fp32_graph_runs_fused(tmp_path, name):
    """onnxruntime runs one Attention + two SkipLayerNormalization + one BiasGelu per layer and
    no unfused softmax / erf / LayerNorm arithmetic."""
    pretrained = _pretrained(name)
    layers = pretrained.config.num_layers
    details = _export(pretrained, find(Format.ONNX, Precision.FP32), tmp_path).details
    ops = details["runtime_ops"]
    assert ops.get("Attention") == layers
    assert ops.get("SkipLayerNormalization") == 2 * layers
    assert ops.get("BiasGelu") == layers
    assert ops.get("EmbedLayerNormalization") == 1
    assert not {"Softmax", "Erf", "LayerNormalization", "ReduceMean", "Pow"} & set(ops)
    assert details["unfused_at_runtime"] == {}
    assert details["fusions"]["Attention"] == layers


def test_int8_dynamic_runs_integer_gemms(tmp_path):
    """Every encoder weight GEMM runs in int8: QAttention per layer, DynamicQuantizeMatMul for the
    attention output and both FFN GEMMs; only the mean-pooling MatMul (two activations) is float."""
    pretrained = _pretrained("mean-normalize")
    layers = pretrained.config.num_layers
    details = _export(pretrained, find(Format.ONNX, Precision.INT8_DYNAMIC), tmp_path).details
    assert details["quantized_ops"] == {"QAttention": layers, "DynamicQuantizeMatMul": 3 * layers}
    assert details["float_ops"].get("MatMul") == 1
    assert "MatMulInteger" not in details["runtime_ops"]  # fused, not the slow unfused form


def test_int8_static_quantizes_matmuls_and_keeps_residuals_float(tmp_path):
    import onnx

    pretrained = _pretrained("cls-classifier")
    layers = pretrained.config.num_layers
    result = _export(pretrained, find(Format.ONNX, Precision.INT8_STATIC), tmp_path)
    details = result.details
    # Q/K/V, attention output, FFN in and out; the classifier head stays float (MatMul + Add = Gemm)
    assert details["quantized_ops"] == {"MatMulIntegerToFloat": 4 * layers}
    assert details["float_ops"]["Gemm"] == 1 and "MatMul" not in details["float_ops"]
    assert {"MultiHeadAttention", "SkipLayerNormalization", "BiasGelu"} <= set(details["float_ops"])
    model = onnx.load(str(result.files[0]))
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    for node in model.graph.node:
        if node.op_type != "MatMul":
            assert not dequantized & set(node.input), f"{node.name} reads a rounded tensor"


def test_int8_static_keep_float_op_reads_float_input(tmp_path):
    import onnx

    pretrained = _pretrained("mean-normalize")
    q = QuantizeSection(keep_float_ops=("layer_1_output",))
    result = _export(pretrained, find(Format.ONNX, Precision.INT8_STATIC), tmp_path, quantize=q)
    assert result.details["quantized_ops"] == {"MatMulIntegerToFloat": 4 * pretrained.config.num_layers - 1}
    model = onnx.load(str(result.files[0]))
    [kept] = [n for n in model.graph.node if n.name == "layer_1_output"]
    assert kept.op_type == "MatMul" and kept.input[0] == "layer_1_activation"  # the float GELU output, unsmoothed
    assert "layer_0_output_smoothed" in {n.name for n in model.graph.node}


@pytest.mark.parametrize("method", list(Calibration))
def test_int8_static_calibration_methods(tmp_path, method):
    from edgekit.export.onnx import load

    pretrained = _pretrained("pooler")
    row = find(Format.ONNX, Precision.INT8_STATIC)
    result = _export(pretrained, row, tmp_path, quantize=QuantizeSection(calibration=method, per_channel=False))
    assert result.details["quantization"]["calibration"] == method.value
    assert result.details["quantization"]["per_channel"] is False
    inputs = _inputs(pretrained, 3, 11, seed=4)
    _assert_close(load(result.files[0], threads=1)(inputs), _reference(pretrained, inputs), row)


def test_int8_options(tmp_path):
    """keep_float_ops takes node names and op types; mask_bias reaches the attention ops."""
    pretrained = _pretrained("cls-classifier")
    row = find(Format.ONNX, Precision.INT8_DYNAMIC)
    q = QuantizeSection(keep_float_ops=("layer_0_intermediate",), mask_bias=-30.0)
    result = _export(pretrained, row, tmp_path, quantize=q)
    assert result.details["float_ops"]["MatMul"] == 1  # layer_0_intermediate
    assert result.details["quantized_ops"]["DynamicQuantizeMatMul"] == 3 * pretrained.config.num_layers - 1
    assert result.details["mask_bias"] == -30.0
    import onnx

    model = onnx.load(str(result.files[0]))
    biases = [a.f for n in model.graph.node if n.op_type == "QAttention" for a in n.attribute
              if a.name == "mask_filter_value"]
    assert biases == [-30.0] * pretrained.config.num_layers

    whole_type = _export(pretrained, row, tmp_path / "typed", quantize=QuantizeSection(keep_float_ops=("Attention",)))
    assert "QAttention" not in whole_type.details["runtime_ops"]
    assert whole_type.details["float_ops"]["Attention"] == pretrained.config.num_layers


def test_refusals(tmp_path):
    pretrained = _pretrained("cls-classifier")
    with pytest.raises(EdgekitError, match="keep_float_ops"):
        _export(pretrained, find(Format.ONNX, Precision.INT8_DYNAMIC), tmp_path,
                quantize=QuantizeSection(keep_float_ops=("FULLY_CONNECTED",)))
    from edgekit.export.base import ExportJob
    from edgekit.export.onnx import export

    with pytest.raises(EdgekitError, match="calibration"):
        export(ExportJob(row=find(Format.ONNX, Precision.INT8_STATIC), pretrained=pretrained, folder=tmp_path,
                         seq_len=16, static=False))


@pytest.mark.parametrize("kind", ["packed", "split"])
@pytest.mark.parametrize("name", ["cls-classifier", "head-pruned", "mean-normalize"])
def test_smoothing_keeps_fp32_outputs(name, kind):
    """x/s · s·W (and V/s for the attention output) leaves the float model's outputs unchanged."""
    import onnxruntime as ort

    from edgekit.export.onnx.graph import GraphOptions, build_model
    from edgekit.export.onnx.smoothing import smoothing_factors
    from edgekit.models.checkpoint import collect_weights

    pretrained = _pretrained(name)
    weights = collect_weights(pretrained.model, pretrained.config)
    plain = build_model(pretrained.config, weights, GraphOptions(attention=kind))
    factors = smoothing_factors(plain, _calibration(pretrained), alpha=0.75)
    assert len(factors) == 4 * pretrained.config.num_layers
    assert all(np.ptp(s) > 0 for s in factors.values())  # real per-channel factors, not all ones
    smoothed = build_model(pretrained.config, weights, GraphOptions(attention=kind, smoothing=factors))
    muls = [n.name for n in smoothed.graph.node if n.op_type == "Mul" and n.name.endswith("_smoothed")]
    assert len(muls) == 3 * pretrained.config.num_layers  # qkv, intermediate, output; attention output folded
    inputs = _inputs(pretrained, 3, 11, seed=7)
    session = ort.InferenceSession(smoothed.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {i.name: inputs[i.name] for i in session.get_inputs()}
    [name] = [o.name for o in session.get_outputs()]
    np.testing.assert_allclose(session.run(None, feed)[0], _reference(pretrained, inputs)[name], atol=2e-4)


def test_int8_dynamic_smoothquant_with_calibration(tmp_path):
    from edgekit.export.onnx import load

    pretrained = _pretrained("mean-normalize")
    row = find(Format.ONNX, Precision.INT8_DYNAMIC)
    plain = _export(pretrained, row, tmp_path / "plain")
    assert plain.details["smoothquant"]["applied"] is False
    smoothed = _export(pretrained, row, tmp_path / "smoothed", calibrate=True,
                       quantize=QuantizeSection(smoothquant_alpha=0.6))
    assert smoothed.details["smoothquant"] == {"applied": True, "alpha": 0.6, "calibration_samples": 12}
    # the smoothing Muls, plus one for the int8 word-embedding lookup's per-row scale (embedding.py)
    assert smoothed.details["float_ops"]["Mul"] == 3 * pretrained.config.num_layers + 1
    inputs = _inputs(pretrained, 3, 11, seed=8)
    _assert_close(load(smoothed.files[0], threads=1)(inputs), _reference(pretrained, inputs), row)


def test_import_loads_no_runtime():
    code = ("import sys, edgekit.export.onnx; "
            "print(sorted(m for m in ('onnx', 'onnxruntime', 'tensorflow', 'tf_keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
