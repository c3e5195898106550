"""int8 word-embedding lookup of int8 ONNX exports (edgekit.export.onnx.embedding): the table is
int8 in the file, each looked-up element within its row's scale / 2 of fp32, the fused
LayerNorm after it exact on those rows, over batches with padding and token types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_CLS
from edgekit.config import Format, Precision
from edgekit.config.formats import find

VOCAB, HIDDEN, POSITIONS = 2000, 16, 32


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny encoder whose word table dominates its size, rows of norms spread over 100x (as
    in MiniLM's, 24x): one scale for the whole table would leave the small rows a few levels.
    Its tokenizer: the tiny fixture's vocabulary padded with unused tokens to the table's rows."""
    import shutil

    from edgekit.models import BertConfig, TextTokenizer
    from edgekit.models.encoder import build_encoder
    from edgekit.models.pretrained import Pretrained

    folder = tmp_path_factory.mktemp("big-vocab")
    shutil.copy(TINY_CLS / "tokenizer_config.json", folder)
    tokens = (TINY_CLS / "vocab.txt").read_text().splitlines()
    tokens += [f"[unused{i}]" for i in range(VOCAB - len(tokens))]
    (folder / "vocab.txt").write_text("\n".join(tokens) + "\n")

    config = BertConfig(vocab_size=VOCAB, hidden_size=HIDDEN, num_layers=1, num_heads=2, intermediate_size=32,
                        max_position_embeddings=POSITIONS, pooling="mean", normalize=True)
    model = build_encoder(config)
    rng = np.random.default_rng(0)
    norms = np.exp(rng.uniform(np.log(0.01), np.log(1.0), size=(VOCAB, 1)))
    table = (rng.standard_normal((VOCAB, HIDDEN)) * norms).astype(np.float32)
    table[7] = 0.0  # an all-zero row: scale 0, exact
    model.get_layer("word_embeddings").set_weights([table])
    return Pretrained(config, model, TextTokenizer(folder), folder)


def _inputs(rng) -> dict[str, np.ndarray]:
    """[3, 13] ids over the whole vocab (first and last id, the zero row), trailing padding, token types."""
    ids = rng.integers(0, VOCAB, size=(3, 13)).astype(np.int32)
    ids[0, :3] = (0, VOCAB - 1, 7)
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    types = (rng.integers(0, 2, size=ids.shape) * mask).astype(np.int32)
    return {"input_ids": ids * mask, "attention_mask": mask, "token_type_ids": types}


def _export(pretrained, precision: Precision, folder: Path):
    from edgekit.export.base import ExportJob
    from edgekit.export.onnx import export

    rng = np.random.default_rng(1)
    calibration = tuple({k: v[:1, :n] for k, v in _inputs(rng).items()} for n in (5, 9, 13))
    return export(ExportJob(row=find(Format.ONNX, precision), pretrained=pretrained, folder=folder, seq_len=16,
                            static=False, calibration=calibration, threads=1))


def _layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def test_quantize_rows_bound():
    from edgekit.export.onnx.embedding import quantize_rows

    rng = np.random.default_rng(2)
    table = rng.standard_normal((50, 8)).astype(np.float32) * rng.uniform(0.001, 2.0, size=(50, 1))
    table[3] = 0.0
    q, scale = quantize_rows(table)
    assert q.dtype == np.int8 and scale.dtype == np.float32 and scale.shape == (50, 1)
    assert (np.abs(q).max(axis=1)[np.arange(50) != 3] == 127).all()  # every nonzero row uses the full range
    err = np.abs(q * scale - table)
    assert (err <= scale / 2 * (1 + 1e-6)).all()
    assert scale[3] == 0 and (q[3] == 0).all()


@pytest.mark.parametrize("precision", [Precision.INT8_DYNAMIC, Precision.INT8_STATIC])
def test_int8_export_serves_int8_word_table(tmp_path, pretrained, precision):
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from edgekit.export.onnx.embedding import ROWS
    from edgekit.models.checkpoint import collect_weights

    result = _export(pretrained, precision, tmp_path)
    facts = result.details["embedding"]
    assert facts["table_bytes_before"] == VOCAB * HIDDEN * 4
    assert facts["table_bytes_after"] == VOCAB * HIDDEN + VOCAB * 4
    # the whole file (int8 GEMMs, position table, ...) is smaller than the fp32 word table alone
    assert result.details["size_bytes"] < facts["table_bytes_before"]

    model = onnx.load(str(result.files[0]))
    tables = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    assert not [n for n, a in tables.items() if a.shape == (VOCAB, HIDDEN) and a.dtype != np.int8]
    [q] = [a for a in tables.values() if a.shape == (VOCAB, HIDDEN)]
    [scale] = [a for a in tables.values() if a.shape == (VOCAB, 1)]

    fp32 = collect_weights(pretrained.model, pretrained.config)
    word = fp32["embeddings.word_embeddings.weight"]
    np.testing.assert_allclose(scale[:, 0], np.abs(word).max(axis=1) / 127, rtol=1e-6)  # one scale per row
    assert (np.abs(q * scale - word) <= scale / 2 * (1 + 1e-6) + 1e-12).all()

    model.graph.output.extend([helper.make_tensor_value_info(ROWS, TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, None)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = _inputs(np.random.default_rng(3))
    rows, embedded = session.run([ROWS, "embeddings"], inputs)
    ids = inputs["input_ids"]
    bound = scale[ids] / 2 * (1 + 1e-6) + 1e-12  # [3, 13, 1]: each element within its row's scale / 2
    assert (np.abs(rows - word[ids]) <= bound).all()
    assert np.abs(rows - word[ids]).max() > 0  # really rounded: not the fp32 table under another name
    assert (rows[0, 2] == 0).all()

    positions = fp32["embeddings.position_embeddings.weight"][: ids.shape[1]]
    types = fp32["embeddings.token_type_embeddings.weight"][inputs["token_type_ids"]]
    want = _layer_norm(q[ids] * scale[ids] + positions + types, fp32["embeddings.LayerNorm.weight"],
                       fp32["embeddings.LayerNorm.bias"], pretrained.config.layer_norm_eps)
    np.testing.assert_allclose(embedded, want, atol=1e-5)


def test_rewrite_twice_is_refused(tmp_path, pretrained):
    import onnx

    from edgekit.export.onnx.embedding import quantize_word_embeddings

    model = onnx.load(str(_export(pretrained, Precision.INT8_DYNAMIC, tmp_path).files[0]))
    with pytest.raises(ValueError, match="word table 'word_rows_flat'.*rewritten already"):
        quantize_word_embeddings(model)
