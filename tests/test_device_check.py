"""Device profiles, recipes fitted to a device (or refused), and `edgekit check ARTIFACT --device`.

The Coral artifact is a real static batch-1 full-int8 .tflite of the tiny fixture model,
written by `edgekit export` from a recipe that names `device: coral-usb` and leaves shapes
and batch to the profile. Expected MAC counts are derived from the model's sizes
(S=16 tokens, H=32 hidden, I=64 FFN, L=2 layers).
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import TINY_CLS
from toy_data import toy_rows
from edgekit.cli import main
from edgekit.config import ConfigError, Format, Precision, ShapeMode, list_devices, load_device, load_recipe

S, H, I, L = 16, 32, 64, 2
DEVICE_BASE = """name: {name}
description: test device
arch: arm64
threads: 2
accepts:
  - {{format: tflite, precisions: [int8-full]}}
delegate: xnnpack
power: {{watts: 2, source: assumed estimate}}
"""


KEYS = ("; allowed keys: name, description, arch, accepts, threads, power, delegate, openvino_device, shapes, "
        "batch_size, max_seq_len, max_tensor_rank, memory_budget_mb, on_chip_memory_mb, compiler, notes")


def _device(tmp_path, extra: str, name="dev") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(DEVICE_BASE.format(name=name) + extra)
    return path


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(ConfigError) as err:
        fn(*args, **kwargs)
    return str(err.value)


def test_every_shipped_profile_has_the_issue_fields():
    for name in list_devices():
        p = load_device(name)
        assert p.accepts and p.threads >= 1 and p.max_seq_len >= 2 and p.memory_budget_mb > 0
        assert p.power.watts > 0 and p.power.source.strip()
        assert (Format.TFLITE not in {a.format for a in p.accepts}) or p.delegate  # every shipped one names it
        assert (Format.OPENVINO not in {a.format for a in p.accepts}) or p.openvino_device
    coral = load_device("coral-usb")
    assert (coral.delegate, coral.compiler, coral.on_chip_memory_mb) == ("libedgetpu.so.1", "edgetpu_compiler", 8.0)
    npu = load_device("intel-npu")
    assert (npu.openvino_device, npu.shapes, npu.accepted(Format.OPENVINO).precisions) == (
        "NPU", ShapeMode.STATIC, (Precision.FP16, Precision.INT8_STATIC))


@pytest.mark.parametrize("extra,expected", [
    ("on_chip_mb: 8\n", "on_chip_mb: unknown key (did you mean 'on_chip_memory_mb'?)" + KEYS),
    ("threads_: 2\n", "threads_: unknown key (did you mean 'threads'?)" + KEYS),
    ("memory_budget_mb: lots\n", "memory_budget_mb: expected an integer, got str 'lots'"),
    ("shapes: static\n", "batch_size: expected the fixed batch size of a device with static shapes"),
    ("compiler: vela\n", "compiler: expected one of edgetpu_compiler, got 'vela'"),
    ("max_tensor_rank: 0\n", "max_tensor_rank: expected 1..8, got 0"),
])
def test_bad_profile_fields_fail_in_one_line(tmp_path, extra, expected):
    path = _device(tmp_path, extra)
    assert _message(load_device, path) == f"{path}: {expected}"


# ---------------------------------------------------------------- recipes fitted to a device

RECIPE = """name: fit
task: text-classification
{device}model: {{source: {model}, max_length: 16}}
data: {{train: train.tsv, test: test.tsv, labels: [negative, neutral, positive]}}
quantize: {{calibration_samples: 32}}
export:
{export}evaluation: {{split: test, gate: warn}}
"""


def _recipe(folder: Path, export: str, device: str | None = "coral-usb", name="fit.yaml") -> Path:
    for split, count, seed in (("train", 64, 0), ("test", 32, 1)):
        lines = ["sentence\tlabel"] + [f"{t}\t{y}" for t, y in toy_rows(count, seed)]
        (folder / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    path = folder / name
    path.write_text(RECIPE.format(device=f"device: {device}\n" if device else "", model=TINY_CLS,
                                  export=textwrap.indent(textwrap.dedent(export), "  ")))
    return path


def test_unset_export_settings_come_from_the_profile(tmp_path):
    recipe = load_recipe(_recipe(tmp_path, "targets: [{format: tflite, precision: int8-full}]\n"))
    assert recipe.device == "coral-usb"
    # seq_len: coral's 128 tokens, cut to the tiny model's 64 positions (longer inputs would index past them)
    assert (recipe.export.shapes, recipe.export.batch_size, recipe.export.seq_len) == (ShapeMode.STATIC, 1, 64)
    npu = load_recipe(_recipe(tmp_path, "seq_len: 64\ntargets: [{format: openvino, precision: fp16}]\n", None),
                      device="intel-npu")
    assert (npu.device, npu.export.shapes, npu.export.seq_len) == ("intel-npu", ShapeMode.STATIC, 64)
    rpi = load_recipe(_recipe(tmp_path, "targets: [{format: onnx}]\n", "rpi5"))
    assert (rpi.export.shapes, rpi.export.batch_size) == (ShapeMode.DYNAMIC, 1)  # dynamic device: left as is


@pytest.mark.parametrize("export,device,expected", [
    ("targets: [{format: tflite, precision: fp32}]\n", "coral-usb",
     "export.targets[0]: device coral-usb cannot take tflite:fp32; it accepts tflite int8-full/int8-qat"),
    ("targets: [{format: tflite, precision: int8-full}, {format: onnx}]\n", "coral-usb",
     "export.targets[1]: device coral-usb cannot take onnx:fp32; it accepts tflite int8-full/int8-qat"),
    ("shapes: dynamic\ntargets: [{format: tflite, precision: int8-full}]\n", "coral-usb",
     "export.shapes: device coral-usb needs static shapes (fixed [batch, seq_len] inputs), got 'dynamic'"),
    ("targets: [{format: tflite, precision: int8-full, shapes: dynamic}]\n", "coral-usb",
     "export.targets[0].shapes: device coral-usb needs static shapes (fixed [batch, seq_len] inputs), got 'dynamic'"),
    ("batch_size: 4\ntargets: [{format: tflite, precision: int8-full}]\n", "coral-usb",
     "export.batch_size: device coral-usb needs batch size 1 (tensors of at most 3 dimensions), got 4"),
    ("seq_len: 256\ntargets: [{format: tflite, precision: int8-full}]\n", "coral-usb",
     "export.seq_len: device coral-usb takes at most 128 tokens (max_seq_len), got 256"),
    ("targets: [{format: openvino, precision: fp32}]\n", "intel-npu",
     "export.targets[0]: device intel-npu cannot take openvino:fp32; it accepts openvino fp16/int8-static"),
])
def test_what_the_device_cannot_take_is_refused(tmp_path, export, device, expected):
    path = _recipe(tmp_path, export, device)
    assert _message(load_recipe, path) == f"{path}: {expected}"


def test_export_and_check_refuse_on_the_command_line(tmp_path):
    path = _recipe(tmp_path, "targets: [{format: tflite, precision: fp32}]\n", device=None)
    result = CliRunner().invoke(main, ["export", str(path), "--device", "coral-usb", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1 and not (tmp_path / "o").exists()
    assert result.output.strip() == (f"Error: {path}: export.targets[0]: device coral-usb cannot take tflite:fp32; "
                                     f"it accepts tflite int8-full/int8-qat")
    unknown = CliRunner().invoke(main, ["check", str(path), "--device", "coral"])
    assert unknown.exit_code == 1 and unknown.output.startswith("Error: --device: unknown device 'coral' (did you mean")
    ok = _recipe(tmp_path, "targets: [{format: tflite, precision: int8-full}]\n", device=None, name="ok.yaml")
    fitted = CliRunner().invoke(main, ["check", str(ok), "--device", "coral-usb"])
    assert fitted.exit_code == 0, fitted.output
    assert "export   tflite:int8-full (seq_len 64, static shapes)" in fitted.output  # the model's 64 positions
    assert "device   coral-usb" in fitted.output


# ---------------------------------------------------------------- artifacts checked on a device

@pytest.fixture(scope="module")
def coral_export(tmp_path_factory):
    """`edgekit export` of a recipe naming coral-usb: a static [1, 16] full-int8 .tflite."""
    folder = tmp_path_factory.mktemp("coral")
    path = _recipe(folder, "seq_len: 16\ntargets: [{format: tflite, precision: int8-full}]\n")
    out = folder / "out"
    result = CliRunner().invoke(main, ["export", str(path), "--model", str(TINY_CLS), "--out", str(out),
                                       "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def float_exports(tmp_path_factory):
    """fp32 .tflite artifacts of the tiny model: dynamic, and static with batch 2."""
    from edgekit.config.formats import find
    from edgekit.export import tflite
    from edgekit.export.base import ExportJob
    from edgekit.models import load_pretrained

    pretrained = load_pretrained(TINY_CLS)
    out = {}
    for key, static, batch in (("dynamic", False, 1), ("batch2", True, 2)):
        folder = tmp_path_factory.mktemp(key)
        job = ExportJob(row=find(Format.TFLITE, Precision.FP32), pretrained=pretrained, folder=folder, seq_len=S,
                        static=static, batch_size=batch)
        out[key] = tflite.export(job).files[0]
    return out


def _check(path, device):
    result = CliRunner().invoke(main, ["check", str(path), "--device", device])
    verdicts = {}
    for line in result.output.splitlines():
        match = re.match(r"^(pass|FAIL|warn|info|n/a|not present)\s+(.{13}) (.*)$", line)
        if match:
            verdicts.setdefault(match.group(2).strip(), []).append((match.group(1), match.group(3)))
    return result, verdicts


def test_coral_export_is_static_batch1_int8_and_its_partition_is_predicted(coral_export):
    from edgekit.check import check_artifact

    manifest = json.loads((coral_export / "edgekit.json").read_text())
    row = manifest["artifacts"][0]
    assert manifest["device"] == "coral-usb" and row["shapes"] == "static" and row["details"]["shape"] == [1, S]
    report = check_artifact(coral_export / "tflite-int8-full.tflite", load_device("coral-usb"))
    status = {v.rule: v.status for v in report.verdicts}
    assert [status[r] for r in ("format", "precision", "shapes", "tensor rank", "memory", "on-chip")] == ["pass"] * 6
    assert status["op support"] == "FAIL" and not report.ok
    part = report.partition
    # the padding-bias lookup gather([mask_bias, 0], attention_mask) is the graph's first op
    assert (part.first.index, part.first.name, part.mapped_ops, part.tpu_macs) == (0, "GATHER", 0, 0)
    assert part.reason == "a table lookup (GATHER from a [2] table) is not in the supported-operation table"
    assert set(part.unsupported) == {"GATHER", "BATCH_MATMUL", "SOFTMAX", "GELU"}
    from edgekit.check.tflite_graph import read_graph

    graph = read_graph(coral_export / "tflite-int8-full.tflite")
    attention = sum(op.macs for op in graph.ops if op.name == "BATCH_MATMUL")
    assert attention == L * 2 * S * S * H  # scores and context
    dense = sum(op.macs for op in graph.ops if op.name == "FULLY_CONNECTED" and op.outputs[0].shape[0] == S
                and op.outputs[0].shape[-1] in (H, I))
    assert dense == L * (4 * S * H * H + 2 * S * H * I)  # Q, K, V, O and the FFN
    # + LayerNorm statistics as FULLY_CONNECTED (5 norms x mean/variance, 2 columns each),
    # the pooler (H x H on [CLS]) and the 3-label classifier
    assert part.total_macs == attention + dense + 5 * 2 * S * H * 2 + H * H + H * 3 == 306_272


def test_edgetpu_build_moves_the_embedding_out_bit_exactly(coral_export, tmp_path):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgekit.check import edgetpu
    from edgekit.check.edgetpu_build import mappable_share, split_embedding
    from edgekit.check.tflite_graph import read_graph

    data = (coral_export / "tflite-int8-full.tflite").read_bytes()
    split = split_embedding(data)
    resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES

    def run(model, feed):
        interp = Interpreter(model_content=model, experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
        for d in interp.get_input_details():
            interp.set_tensor(d["index"], feed[d["name"]])
        interp.invoke()
        return {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}

    rng = np.random.default_rng(0)
    for length in (4, 11, S):
        ids, mask = np.zeros((1, S), np.int32), np.zeros((1, S), np.int32)
        ids[0, :length], mask[0, :length] = rng.integers(5, 69, length), 1
        feed = {"serving_default_input_ids:0": ids, "serving_default_attention_mask:0": mask,
                "serving_default_token_type_ids:0": np.zeros_like(ids)}
        want = list(run(data, feed).values())[0]
        got = list(run(split.body, run(split.head, feed)).values())[0]
        np.testing.assert_array_equal(got, want)
    body = edgetpu.predict(read_graph(split.body))
    assert body.first.name == "BATCH_MATMUL" and "two activations" in body.reason
    # on the TPU: Q, K, V of layer 0 and the embedding LayerNorm's two statistics FCs
    assert body.tpu_macs == 3 * S * H * H + 2 * S * H * 2 == 51_200
    assert round(body.mac_share, 4) == round(51_200 / 306_272, 4) == 0.1672
    assert round(mappable_share(read_graph(data)), 4) == round((306_272 - L * 2 * S * S * H) / 306_272, 4)
    result = CliRunner().invoke(main, ["check", str(coral_export / "tflite-int8-full.tflite"), "--device",
                                       "coral-usb", "--edgetpu-build", str(tmp_path / "b")])
    assert result.exit_code == 1 and (tmp_path / "b" / "body.tflite").read_bytes() == split.body
    assert "16.7% of MACs on the TPU (predicted); first unmapped op #20 BATCH_MATMUL" in result.output


def test_check_lines_and_exit_status(coral_export, float_exports):
    result, v = _check(coral_export / "tflite-int8-full.tflite", "coral-usb")
    assert result.exit_code == 1
    assert v["op support"][0][1].startswith("first unmapped op: #0 GATHER")
    assert v["tpu share"] == [("warn", f"0/{v['tpu share'][0][1].split('/')[1].split()[0]} ops and 0.0% of 0.3 M MACs "
                                       "would run on the Edge TPU (predicted)")]
    assert v["compiler"][0][0] == "info" and "not on PATH" in v["compiler"][0][1]
    assert result.output.strip().splitlines()[-2] == "verdict  not ready for coral-usb: op support failed"

    _, v = _check(float_exports["batch2"], "coral-usb")
    assert v["precision"][0] == ("FAIL", "fp32 (from the graph) is not accepted; coral-usb takes tflite int8-full/int8-qat")
    assert v["shapes"][0] == ("FAIL", "batch 2; coral-usb needs batch 1")
    assert v["tensor rank"][0][0] == "FAIL" and re.search(r"outside the 3 innermost, e\.g\. \S+ \[2, ", v["tensor rank"][0][1])
    _, v = _check(float_exports["dynamic"], "coral-usb")
    assert v["shapes"][0][0] == "FAIL" and "dynamic inputs (attention_mask [?, ?]" in v["shapes"][0][1]

    result, v = _check(float_exports["dynamic"], "x86-cpu")
    assert result.exit_code == 0, result.output
    assert v["op support"] == [("pass", v["op support"][0][1])] and "ai-edge-litert" in v["op support"][0][1]
    assert result.output.strip().splitlines()[-1] == "verdict  ready for x86-cpu"
    _, v = _check(float_exports["dynamic"], "intel-npu")
    assert v["format"][0] == ("FAIL", "intel-npu does not run tflite; it accepts openvino fp16/int8-static")
    missing = CliRunner().invoke(main, ["check", str(float_exports["dynamic"])])
    assert missing.exit_code == 2 and "--device: expected a device profile" in missing.output


def test_intel_npu_checks_static_shapes_and_says_when_the_npu_is_absent(tmp_path):
    import openvino as ov

    from edgekit.config.formats import find
    from edgekit.export import openvino as backend
    from edgekit.export.base import ExportJob
    from edgekit.models import load_pretrained

    job = ExportJob(row=find(Format.OPENVINO, Precision.FP16), pretrained=load_pretrained(TINY_CLS),
                    folder=tmp_path / "dyn", seq_len=S, static=False)
    dynamic = backend.export(job).files[0]
    _, v = _check(dynamic, "intel-npu")
    assert v["precision"][0][0] == "pass" and v["shapes"][0][0] == "FAIL"
    model = ov.Core().read_model(dynamic)
    model.reshape({p.get_any_name(): [1, S] for p in model.inputs})
    static = tmp_path / "static" / "openvino-fp16.xml"
    static.parent.mkdir()
    ov.save_model(model, static)  # compress_to_fp16 by default: still fp16 weights
    result, v = _check(static, "intel-npu")
    assert v["shapes"][0][0] == "pass" and v["precision"][0] == ("pass", "fp16 (from the graph) is accepted for openvino")
    if "NPU" in ov.Core().available_devices:
        assert v["op support"][0][0] in ("pass", "FAIL")
    else:
        assert v["op support"][0] == ("not present", "NPU is not present on this host (OpenVINO sees "
                                      f"{', '.join(ov.Core().available_devices)}); not compiled")
        assert result.exit_code == 0


# A compiler report written by hand in the format edgetpu_compiler prints with -s (coral.ai/docs/
# edgetpu/compiler/): edgetpu_compiler only ships for x86-64 Debian with Coral's apt repository and
# is not installed here, so this is NOT a captured run. It maps the body's first 20 ops except
# one RESHAPE, to show a disagreement.
COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 215 ms.

Input model: body.tflite
Input size: 0.04MiB
Output model: body_edgetpu.tflite
Output size: 0.06MiB
On-chip memory used for caching model parameters: 4.50KiB
On-chip memory remaining for caching model parameters: 7.98MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 102
Operation log: body_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will \
instead run on the CPU, which is slower. If possible, consider updating your model to use only operations supported \
by the Edge TPU. For details, visit g.co/coral/model-reqs.
Number of operations that will run on Edge TPU: 19
Number of operations that will run on CPU: 83

Operator                       Count      Status

FULLY_CONNECTED                5          Mapped to Edge TPU
FULLY_CONNECTED                19         More than one subgraph is not supported
SUM                            2          Mapped to Edge TPU
SUM                            8          More than one subgraph is not supported
MUL                            4          Mapped to Edge TPU
MUL                            16         More than one subgraph is not supported
SUB                            1          Mapped to Edge TPU
SUB                            4          More than one subgraph is not supported
ADD                            1          Mapped to Edge TPU
ADD                            10         More than one subgraph is not supported
RSQRT                          1          Mapped to Edge TPU
RSQRT                          4          More than one subgraph is not supported
RESHAPE                        2          Mapped to Edge TPU
RESHAPE                        1          Operation is otherwise supported, but not mapped due to some unspecified limitation
RESHAPE                        6          More than one subgraph is not supported
TRANSPOSE                      3          Mapped to Edge TPU
TRANSPOSE                      5          More than one subgraph is not supported
BATCH_MATMUL                   4          Operation not supported
SOFTMAX                        2          More than one subgraph is not supported
GELU                           2          Operation not supported
STRIDED_SLICE                  1          More than one subgraph is not supported
TANH                           1          More than one subgraph is not supported
Compilation child process completed within timeout period.
Compilation succeeded!
"""


def test_compiler_log_is_parsed_and_compared_with_the_prediction(coral_export):
    from edgekit.check import edgetpu
    from edgekit.check.edgetpu_build import split_embedding
    from edgekit.check.tflite_graph import read_graph

    log = edgetpu.parse_compiler_log(COMPILER_LOG)
    assert (log.version, log.tpu_ops, log.cpu_ops, len(log.rows)) == ("16.0.384591198", 19, 83, 22)
    assert sum(count for _, count, _ in log.rows) == 102
    assert log.rows[13] == ("RESHAPE", 1, "Operation is otherwise supported, but not mapped due to some "
                                         "unspecified limitation")
    assert log.mapped_by_type == {"FULLY_CONNECTED": 5, "SUM": 2, "MUL": 4, "SUB": 1, "ADD": 1, "RSQRT": 1,
                                  "RESHAPE": 2, "TRANSPOSE": 3}
    body = edgetpu.predict(read_graph(split_embedding((coral_export / "tflite-int8-full.tflite").read_bytes()).body))
    assert (body.ops, body.mapped_ops, body.mapped_by_type["RESHAPE"]) == (102, 20, 3)
    assert edgetpu.disagreements(body, log) == ["RESHAPE: predicted 3 on the TPU, compiler 2"]
