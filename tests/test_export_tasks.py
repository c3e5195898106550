"""Every export backend with every task's named outputs, on tiny random encoders.

For text classification, feature extraction, token classification and question answering,
each format writes fp32 and int8 artifacts (dynamic shapes) and a static-shape one. Each is
checked against the fp32 tf-keras model: its outputs are the task's ``Output``s (names, per
token or not, width, shapes), the numbers agree (float: max |diff| < 1e-4; int8: correlation
and argmax agreement that a head reading the wrong rows or columns fails), padding stays
masked (a padded row's real positions equal the row run alone), and a static artifact's
runner hands per-token outputs back at the caller's sequence length.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_CLS
from edgekit import tasks
from edgekit.config import Format, Precision, QuantizeSection, TrainSchedule
from edgekit.config.formats import find
from edgekit.export.base import ExportJob, run_static, task_outputs

VOCAB = 69  # tests/fixtures/tiny-bert-cls tokenizer
SEQ = 12  # static exports: [2, SEQ]
TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")
CONFIGS = {
    "text-classification": dict(task="text-classification", pooling="cls", num_labels=3, id2label=("neg", "mid", "pos")),
    "feature-extraction": dict(pooling="mean", normalize=True),
    # first-token pooling: a head over the tokens must not take the [CLS]-only shortcuts
    "token-classification": dict(task="token-classification", pooling="cls", num_labels=len(TAGS), id2label=TAGS),
    "question-answering": dict(task="question-answering", pooling="cls"),
}
TASKS = tuple(CONFIGS)
BACKENDS = {Format.TFLITE: "edgekit.export.tflite", Format.ONNX: "edgekit.export.onnx",
            Format.OPENVINO: "edgekit.export.openvino"}
INT8 = {Format.TFLITE: ("int8-full",), Format.ONNX: ("int8-dynamic", "int8-static"), Format.OPENVINO: ("int8-static", "int8-weights")}
DYNAMIC = [(t, f, p) for t in TASKS for f in BACKENDS for p in ("fp32",) + INT8[f]]
STATIC = [(t, f, p) for t in TASKS for f in BACKENDS for p in ("fp32",)] + [(t, Format.TFLITE, "int8-full")
                                                                            for t in TASKS]


def _ids(value) -> str:
    return getattr(value, "value", value)


_MODELS: dict = {}


def _pretrained(task: str):
    """A tiny encoder of ``task`` with weights large enough that outputs spread over O(1)
    (BERT's 0.02 init makes every output nearly equal, hiding any error under the bounds)."""
    if task not in _MODELS:
        from edgekit.models import BertConfig, Pretrained, TextTokenizer
        from edgekit.models.encoder import build_encoder

        config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                            max_position_embeddings=32, hidden_dropout=0.0, attention_dropout=0.0, **CONFIGS[task])
        model = build_encoder(config)
        rng = np.random.default_rng(TASKS.index(task))
        values = []
        for w in model.weights:
            if "gamma" in w.name:
                values.append(1.0 + 0.1 * rng.standard_normal(w.shape))
            else:
                values.append((0.1 if len(w.shape) == 1 else 0.15) * rng.standard_normal(w.shape))
        model.set_weights([v.astype(np.float32) for v in values])
        _MODELS[task] = Pretrained(config, model, TextTokenizer(TINY_CLS), Path(f"tiny-{task}"))
    return _MODELS[task]


def _inputs(names, lengths, seq, seed):
    """[CLS] ids [SEP] rows of the given lengths, zero padded to ``seq``; token types 0 for the
    first half of each row and 1 after it (a question/context pair), 0 on padding."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), seq), np.int32)
    mask, types = np.zeros_like(ids), np.zeros_like(ids)
    for r, n in enumerate(lengths):
        ids[r, :n] = rng.integers(5, VOCAB, n)
        ids[r, 0], ids[r, n - 1] = 2, 3
        mask[r, :n] = 1
        types[r, n // 2:n] = 1
    out = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {n: out[n] for n in names}


def _calibration(names, count=32):
    rng = np.random.default_rng(7)
    return tuple(_inputs(names, [n], n, seed=100 + i) for i, n in enumerate(rng.integers(4, SEQ + 1, count)))


def _reference(pretrained, inputs) -> dict[str, np.ndarray]:
    out = pretrained.model(inputs, training=False)
    return {o.name: out[o.name].numpy() for o in task_outputs(pretrained)}


_EXPORTS: dict = {}


def _export(task, fmt, precision, static, tmp_path_factory):
    """(runner, job), exported once per case in this module."""
    key = (task, fmt, precision, static)
    if key not in _EXPORTS:
        pretrained = _pretrained(task)
        folder = tmp_path_factory.mktemp(f"{task}-{fmt.value}-{precision}-{'static' if static else 'dynamic'}")
        row = find(fmt, Precision(precision))
        job = ExportJob(row=row, pretrained=pretrained, folder=folder, seq_len=SEQ, static=static,
                        batch_size=2 if static else 1,
                        calibration=_calibration(pretrained.model.input_names) if row.precision.is_int8 else (),
                        threads=1)
        backend = importlib.import_module(BACKENDS[fmt])
        result = backend.export(job)
        _EXPORTS[key] = (backend.load(result.files[0], 1), job)
    return _EXPORTS[key]


def _shape(output, rows, seq) -> tuple:
    return (rows, *([seq] if output.per_token else []), *([output.width] if output.width is not None else []))


def _agree(got: dict, want: dict, mask: np.ndarray, outputs, int8: bool) -> None:
    """Real positions only (padding's per-token values are free): float within 1e-4; int8
    correlated (r > 0.99) with the same argmax at >= 75% of the positions (rows), and for
    [B, S] scores (QA) every row's fp32 best position among the int8 top 3."""
    real = mask.astype(bool)
    for o in outputs:
        a, b = got[o.name], want[o.name]
        assert a.dtype == np.float32 and a.shape == b.shape, (o.name, a.shape, b.shape)
        if o.per_token:
            a, b = a[real], b[real]  # [T, width] or [T]
        if not int8:
            assert np.abs(a - b).max() < 1e-4, (o.name, np.abs(a - b).max())
            continue
        r = np.corrcoef(a.reshape(-1), b.reshape(-1))[0, 1]
        assert r > 0.99, (o.name, r)
        if a.ndim == 2 and o.name != "embedding":
            same = (a.argmax(-1) == b.argmax(-1)).mean()
            assert same >= 0.75, (o.name, same)
    if not int8 or not any(o.width is None for o in outputs):
        return
    for o in outputs:  # [B, S] scores: each row's fp32 best real position is among int8's top 3
        for row, scores, truth in zip(real, got[o.name], want[o.name]):
            top = np.argsort(np.where(row, -scores, np.inf))[:3]
            assert np.argmax(np.where(row, truth, -np.inf)) in top, (o.name, top, truth)


@pytest.mark.parametrize("task,fmt,precision", DYNAMIC, ids=_ids)
def test_outputs_are_the_tasks_and_match_tensorflow(tmp_path_factory, task, fmt, precision):
    runner, job = _export(task, fmt, precision, False, tmp_path_factory)
    pretrained = _pretrained(task)
    outputs = tasks.for_config(pretrained.config).outputs(pretrained.config)
    assert runner.outputs == outputs == job.outputs
    assert runner.static_shape is None
    inputs = _inputs(runner.input_names, [SEQ + 4, 7, 12, 3, 16, 9, 5, 14], SEQ + 4, seed=1)
    got = runner(inputs)
    assert sorted(got) == sorted(o.name for o in outputs)
    for o in outputs:
        assert got[o.name].shape == _shape(o, 8, SEQ + 4)
    _agree(got, _reference(pretrained, inputs), inputs["attention_mask"], outputs, job.row.precision.is_int8)


@pytest.mark.parametrize("task,fmt,precision", DYNAMIC, ids=_ids)
def test_padding_stays_masked(tmp_path_factory, task, fmt, precision):
    """Each row of a padded batch gives, at its real positions, what it gives alone; attending
    to the padding (mask all ones) would change them by far more than the bound."""
    runner, job = _export(task, fmt, precision, False, tmp_path_factory)
    pretrained = _pretrained(task)
    lengths = [11, 4, 7]
    inputs = _inputs(runner.input_names, lengths, 11, seed=2)
    padded = runner(inputs)
    unmasked = _reference(pretrained, {**inputs, "attention_mask": np.ones_like(inputs["attention_mask"])})
    fp32 = _reference(pretrained, inputs)
    int8 = job.row.precision.is_int8
    for r, n in enumerate(lengths[1:], start=1):
        alone = runner({k: v[r:r + 1, :n] for k, v in inputs.items()})
        for o in runner.outputs:
            part = (slice(r, r + 1), slice(0, n)) if o.per_token else (slice(r, r + 1),)
            diff = np.abs(padded[o.name][part] - alone[o.name]).max()
            leak = np.abs(unmasked[o.name][part] - fp32[o.name][part]).max()
            assert diff < (0.3 * leak if int8 else 1e-5) and leak > 0.1, (o.name, r, diff, leak)


@pytest.mark.parametrize("task,fmt,precision", STATIC, ids=_ids)
def test_static_runner_returns_per_token_outputs_at_the_callers_length(tmp_path_factory, task, fmt, precision):
    runner, job = _export(task, fmt, precision, True, tmp_path_factory)
    pretrained = _pretrained(task)
    assert runner.static_shape == (2, SEQ) and runner.outputs == job.outputs
    int8 = job.row.precision.is_int8
    short = _inputs(runner.input_names, [9, 5, 8, 9, 3], 9, seed=3)  # 5 rows: 3 chunks; 9 tokens padded to 12
    got = runner(short)
    for o in runner.outputs:
        assert got[o.name].shape == _shape(o, 5, 9)
    _agree(got, _reference(pretrained, short), short["attention_mask"], runner.outputs, int8)
    long = _inputs(runner.input_names, [SEQ + 3, SEQ + 3], SEQ + 3, seed=4)  # cut to the first 12 tokens
    clipped = {k: v[:, :SEQ] for k, v in long.items()}
    got = runner(long)
    for o in runner.outputs:
        assert got[o.name].shape == _shape(o, 2, SEQ)
    _agree(got, _reference(pretrained, clipped), clipped["attention_mask"], runner.outputs, int8)


def test_run_static_fits_inputs_and_cuts_per_token_outputs():
    """A [2, 4] 'artifact' whose per-token output is the running sum of ids and whose row
    output is (sum of mask, row id of the chunk's first row)."""
    calls = []

    def call(feed):
        ids, mask = feed["input_ids"], feed["attention_mask"]
        calls.append(ids.shape)
        return {"tokens": np.cumsum(ids, axis=1).astype(np.float32),
                "rows": np.stack([mask.sum(1), ids[:, 0]], -1).astype(np.float32)}

    ids = np.array([[1, 2, 3], [4, 5, 0], [6, 0, 0]], np.int32)
    out = run_static(call, {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int32)}, 2, 4,
                     per_token=("tokens",))
    assert calls == [(2, 4), (2, 4)]  # 3 rows: two chunks, the last padded with an empty row
    np.testing.assert_array_equal(out["tokens"], [[1, 3, 6], [4, 9, 9], [6, 6, 6]])  # back at length 3
    np.testing.assert_array_equal(out["rows"], [[3, 1], [2, 4], [1, 6]])
    long = np.arange(1, 13, dtype=np.int32).reshape(2, 6)
    out = run_static(call, {"input_ids": long, "attention_mask": np.ones_like(long)}, 2, 4, per_token=("tokens",))
    np.testing.assert_array_equal(out["tokens"], [[1, 3, 6, 10], [7, 15, 24, 34]])  # truncated to 4
    np.testing.assert_array_equal(out["rows"], [[4, 1], [4, 7]])


def test_onnx_token_heads_run_on_every_token_and_stay_float(tmp_path_factory):
    """No first-token shortcut in the last layer under a token head (cls pooling would take
    it), the head MatMul is left float by int8, and the outputs come from a Split + Squeeze."""
    import onnx

    runner, job = _export("question-answering", Format.ONNX, "int8-static", False, tmp_path_factory)
    model = onnx.load(str(job.path))
    nodes = {n.name: n for n in model.graph.node}
    assert not any(name.endswith("_first") for name in nodes)
    assert nodes["qa_outputs"].op_type == "MatMul" and nodes["qa_outputs"].input[0] == "layer_1_output_layer_norm"
    assert [nodes[n].op_type for n in ("start_logits", "end_logits")] == ["Squeeze", "Squeeze"]
    assert [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]) for o in model.graph.output] \
        == [("start_logits", ["batch", "sequence"]), ("end_logits", ["batch", "sequence"])]
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    quantized = {n.name for n in model.graph.node if n.op_type == "MatMul" and dequantized & set(n.input)}
    assert "qa_outputs" not in quantized and len(quantized) == 4 * _pretrained("question-answering").config.num_layers
    cls = _export("text-classification", Format.ONNX, "fp32", False, tmp_path_factory)[1]
    assert "layer_1_context_first" in {n.name for n in onnx.load(str(cls.path)).graph.node}  # the shortcut exists


@pytest.mark.parametrize("task", ["token-classification", "question-answering"])
def test_tflite_int8_first_token_apart_under_a_token_head(tmp_path, task):
    """[CLS] in tensors of its own (forced): a head over the tokens reads the other rows' last
    FFN too (2 softmaxes per layer, none dropped) and every real position matches TensorFlow."""
    from edgekit.export.tflite import int8 as I
    from edgekit.export.tflite import transforms as T
    from edgekit.export.tflite.graph import from_keras
    from edgekit.export.tflite.inspect import op_listing
    from edgekit.export.tflite.runner import LiteRTRunner

    pretrained = _pretrained(task)
    names = tuple(pretrained.model.input_names)
    samples = list(_calibration(names))
    weights = from_keras(pretrained.model, pretrained.config)
    weights = T.split_first_token(weights, T.activation_stats(weights, samples, mask_bias=-30.0), ratio=0.5)
    assert weights.split_first and weights.head == tasks.for_config(pretrained.config).head(pretrained.config)
    options = I.Int8Options()
    concrete, module = I.float_graph_model(pretrained, weights, options, static=False, batch_size=1, seq_len=SEQ)
    path = tmp_path / "split.tflite"
    path.write_bytes(I.quantize_graph(concrete, module, samples, options))
    listing = op_listing(path)
    assert listing["integer_only"] and listing["ops"]["SOFTMAX"] == 2 * pretrained.config.num_layers
    runner = LiteRTRunner(path)
    inputs = _inputs(names, [SEQ, 6, 9, SEQ], SEQ, seed=5)
    outputs = task_outputs(pretrained)
    # no outputs record in this bare file: the runner takes the outputs as LiteRT lists them
    assert sorted(runner.output_names) == sorted(o.name for o in outputs)
    _agree(runner(inputs), _reference(pretrained, inputs), inputs["attention_mask"], outputs, int8=True)


def test_tflite_metadata_names_each_tasks_outputs(tmp_path_factory):
    from edgekit.export.base import read_outputs_record
    from edgekit.export.tflite.metadata import output_order, read_metadata, read_outputs_record as record_of

    qa = _export("question-answering", Format.TFLITE, "fp32", True, tmp_path_factory)[1]
    info = read_metadata(qa.path)
    assert [n for n, _ in info.inputs] == ["mask", "ids", "segment_ids"]  # the subgraph's input order
    # BertQuestionAnswerer's names, in the subgraph's order (its fallback indices: end 0, start 1)
    assert output_order(qa.path.read_bytes()) == ["end_logits", "start_logits"]
    assert [n for n, _ in info.outputs] == ["end_logits", "start_logits"]
    assert "last token" in info.outputs[0][1] and "first token" in info.outputs[1][1]
    assert info.label_file is None and set(info.files) == {"vocab.txt"}
    assert "question answerer" in info.description
    assert read_outputs_record(record_of(qa.path.read_bytes())) == qa.outputs

    ner = _export("token-classification", Format.TFLITE, "int8-full", False, tmp_path_factory)[1]
    info = read_metadata(ner.path)
    assert [n for n, _ in info.outputs] == ["logits"] and info.label_file == "labels.txt"
    assert info.files["labels.txt"].decode().splitlines() == list(TAGS)
    assert "per token" in info.outputs[0][1]


TEXTS = ("the movie was great", "bad film", "good !", "terrible , the cafe .") * 4


def _train_split(task):
    from edgekit.data.conll import TaggedDataset
    from edgekit.data.squad import QADataset

    if task == "token-classification":
        words = tuple(tuple(t.split()) for t in TEXTS)
        return TaggedDataset(words=words, tags=tuple(np.arange(len(w)) % len(TAGS) for w in words), tag_names=TAGS,
                             lines=tuple(range(1, len(words) + 1)), source="toy.conll")
    context = "the movie was great , not bad ."
    return QADataset(ids=tuple(f"q{i}" for i in range(8)), questions=("what was the movie ?", "was it bad ?") * 4,
                     contexts=(context,) * 8, answers=(("great",), ("not bad",)) * 4,
                     answer_starts=((14,), (22,)) * 4, articles=(0,) * 8, source="toy.json")


@pytest.mark.parametrize("task", ["token-classification", "question-answering"])
def test_qat_trains_on_the_tasks_loss(tmp_path, task):
    """int8-qat on the task's own train split: at a negligible learning rate the loss it
    reports is the fp32 model's task loss on the same features (a text-classification loss
    would not even run on tags or answer spans), and the artifact is integer-only."""
    from edgekit.export import tflite
    from edgekit.train.finetune import task_loss

    pretrained = _pretrained(task)
    train = _train_split(task)
    spec = tasks.for_config(pretrained.config)
    features = spec.features(train, pretrained.tokenizer, SEQ + 4, tuple(pretrained.model.input_names))
    batch = features.batch(np.arange(len(features)))
    loss, _ = task_loss(pretrained.model, task)({**batch.inputs, **batch.targets}, False)
    quantize = QuantizeSection(qat=TrainSchedule(epochs=2.0, batch_size=4, learning_rate=1e-7))
    job = ExportJob(row=find(Format.TFLITE, Precision.INT8_QAT), pretrained=pretrained, folder=tmp_path,
                    seq_len=SEQ + 4, static=False, calibration=_calibration(pretrained.model.input_names),
                    quantize=quantize, train=train, threads=1)
    result = tflite.export(job)
    qat = result.details["qat"]
    assert qat["steps"] == 2 * features.num_batches(4)
    assert abs(qat["final_loss"] - float(np.mean(loss))) < 0.05 * float(np.mean(loss)), (qat, float(np.mean(loss)))
    assert result.details["integer_only"]
    runner = tflite.load(result.files[0], 1)
    inputs = _inputs(runner.input_names, [10, 6, 14], 14, seed=6)
    _agree(runner(inputs), _reference(pretrained, inputs), inputs["attention_mask"], runner.outputs, int8=True)


def test_a_record_naming_other_outputs_is_refused(tmp_path_factory, tmp_path):
    import re

    import onnx

    from edgekit.errors import ModelLoadError
    from edgekit.export.base import OUTPUTS_KEY, outputs_record
    from edgekit.export.onnx import load

    job = _export("question-answering", Format.ONNX, "fp32", False, tmp_path_factory)[1]
    model = onnx.load(str(job.path))
    [entry] = [p for p in model.metadata_props if p.key == OUTPUTS_KEY]
    entry.value = outputs_record(task_outputs(_pretrained("token-classification")))
    path = tmp_path / "edited.onnx"
    onnx.save_model(model, str(path))
    with pytest.raises(ModelLoadError, match=rf"^{re.escape(str(path))}: outputs \['end_logits', 'start_logits'\] "
                                             rf"\(expected the ones its {OUTPUTS_KEY} record lists: \['logits'\]\)$"):
        load(path, 1)


def test_qat_of_an_encoder_distils_its_fp32_vectors(tmp_path):
    """Unlabeled text: the QAT loss is the distance to the fp32 model's own sentence vectors
    (feature extraction's ``soft_loss``, 100 x MSE), near 0 at a negligible learning rate
    against 100 x the mean square of the vectors (what a model outputting zeros would score)."""
    from edgekit.data import TextDataset
    from edgekit.export import tflite

    pretrained = _pretrained("feature-extraction")
    train = TextDataset(texts=TEXTS, labels=None, label_names=(), source="toy.txt")
    spec = tasks.for_config(pretrained.config)
    features = spec.features(train, pretrained.tokenizer, SEQ + 4, tuple(pretrained.model.input_names))
    batch = features.batch(np.arange(len(features)))
    zeros = 100.0 * float(np.mean(pretrained.model(batch.inputs, training=False)["embedding"].numpy() ** 2))
    quantize = QuantizeSection(qat=TrainSchedule(epochs=1.0, batch_size=4, learning_rate=1e-7))
    job = ExportJob(row=find(Format.TFLITE, Precision.INT8_QAT), pretrained=pretrained, folder=tmp_path,
                    seq_len=SEQ + 4, static=False, calibration=_calibration(pretrained.model.input_names),
                    quantize=quantize, train=train, threads=1)
    qat = tflite.export(job).details["qat"]
    assert 0.0 < qat["final_loss"] < 0.05 * zeros, (qat, zeros)
