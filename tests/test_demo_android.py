"""demo_app/README.md's Android Kotlin snippet against a real TFLite export: every name it relies
on (asset files, edgekit.json key, vocabulary tokens, signature key, input and output names,
their dtypes and shapes) is read from the snippet's text and looked up in the artifact, and
the artifact fed the way the snippet feeds it gives the demo app's label. The snippet's
WordPiece steps, transcribed to Python below, must give the same ids as the export's
tokenizer (the Kotlin itself is not compiled here)."""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import pytest

from conftest import REPO
from demo_exports import classifier_export

README = (REPO / "demo_app" / "README.md").read_text(encoding="utf-8")
[SNIPPET] = [b for b in re.findall(r"```kotlin\n(.*?)```", README, re.S) if "class TextClassifier" in b]
TEXTS = ["the movie was great", "bad terrible cafe", "Not good, the café!", "a b c xyzzy ."]


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    return classifier_export(tmp_path_factory)


def snippet_names() -> dict:
    """What the snippet names, parsed from its text."""
    inputs = dict(re.findall(r'"(\w+)" to arrayOf\((\w+)\)', SNIPPET))
    arrays = dict(re.findall(r"val (\w+) = (\w+)\(", SNIPPET))  # variable -> IntArray / FloatArray / ...
    return {
        "assets": set(re.findall(r'assets\.open(?:Fd)?\("([^"]+)"\)', SNIPPET)),
        "manifest_keys": set(re.findall(r'getInt\("(\w+)"\)', SNIPPET)),
        "tokens": set(re.findall(r'vocab\.getValue\("([^"]+)"\)', SNIPPET)),
        "signatures": set(re.findall(r'"(serving_\w+|\w+_default)"', SNIPPET)),
        "inputs": {name: arrays[var] for name, var in inputs.items()},
        "inputs_inline": dict(re.findall(r'"(\w+)" to arrayOf\((IntArray|FloatArray)\(', SNIPPET)),
        "outputs": set(re.findall(r'mapOf<String, Any>\("(\w+)" to (\w+)\)', SNIPPET)),
        "output_arrays": set(re.findall(r"val (\w+) = arrayOf\((\w+)\((\w+)\.size\)\)", SNIPPET)),
        "shape_signature_of": re.findall(r'getInputTensorFromSignature\("(\w+)", "(\w+)"\)', SNIPPET),
        "output_tensor_of": re.findall(r'getOutputTensorFromSignature\("(\w+)", "(\w+)"\)', SNIPPET),
    }


def asset_sources() -> dict[str, str]:
    """README's asset table: asset name -> the export file it comes from (first `...` in the row)."""
    rows = re.findall(r"^\| `([^`]+)` \| [^`|]*`([^`]+)`", README, re.M)
    return dict(rows)


KOTLIN_DTYPES = {"IntArray": np.int32, "FloatArray": np.float32, "ByteArray": np.int8}


def test_snippet_names_exist_in_the_exported_artifact(export):
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.export.tflite.metadata import read_metadata

    names = snippet_names()
    manifest = json.loads((export / "edgekit.json").read_text())
    sources = asset_sources()
    assert names["assets"] == {"model.tflite", "vocab.txt", "labels.txt", "edgekit.json"}
    assert set(sources) == names["assets"]
    for asset, source in sources.items():
        assert (export / source).is_file(), f"README asset {asset} comes from {source}, not in the export"
    assert names["manifest_keys"] == {"max_length"} and isinstance(manifest["max_length"], int)
    vocab = (export / "vocab.txt").read_text().splitlines()
    assert names["tokens"] == {"[CLS]", "[SEP]", "[UNK]", "[PAD]"} and names["tokens"] <= set(vocab)
    labels = (export / "labels.txt").read_text().split()
    assert labels == manifest["labels"]
    inputs = {**names["inputs"], **names["inputs_inline"]}
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"} and set(inputs.values()) == {"IntArray"}
    [(output, variable)] = names["outputs"]  # one output name, one variable name in each branch
    kinds = {kind for var, kind, sized_by in names["output_arrays"] if var == variable and sized_by == "labels"}
    assert kinds == {"FloatArray", "ByteArray"}
    [(shape_input, shape_signature)] = names["shape_signature_of"]
    assert names["output_tensor_of"] == [(output, shape_signature)] and names["signatures"] == {shape_signature}
    assert "DataType.INT8" in SNIPPET and "q.zeroPoint) * q.scale" in SNIPPET  # int8 logits are dequantized
    artifacts = [a for a in manifest["artifacts"] if a["format"] == "tflite"]
    assert {a["shapes"] for a in artifacts} == {"static", "dynamic"}  # both kinds the snippet handles
    dtypes = set()
    for artifact in artifacts:
        path = export / artifact["path"]
        interpreter = Interpreter(model_path=str(path))
        signatures = interpreter.get_signature_list()
        assert shape_signature in signatures, f"{path.name}: signatures {list(signatures)}"
        runner = interpreter.get_signature_runner(shape_signature)
        in_details, out_details = runner.get_input_details(), runner.get_output_details()
        assert set(in_details) == set(inputs) and shape_input in in_details
        for name, array in inputs.items():
            assert in_details[name]["dtype"] == KOTLIN_DTYPES[array]
            assert len(in_details[name]["shape_signature"]) == 2  # arrayOf(one row): [1, length]
        assert list(out_details) == [output] and out_details[output]["dtype"] in {KOTLIN_DTYPES[k] for k in kinds}
        dtypes.add(out_details[output]["dtype"])
        assert list(out_details[output]["shape_signature"])[-1] == len(labels)
        metadata = read_metadata(path)  # the same vocab and labels travel inside the .tflite
        assert metadata.files["vocab.txt"] == (export / "vocab.txt").read_bytes()
        assert metadata.files["labels.txt"] == (export / "labels.txt").read_bytes()
    assert dtypes == {np.float32, np.int8}  # the export has float and full-int8 artifacts: both branches checked


def kotlin_tokenize(text: str, vocab: dict[str, int], limit: int) -> list[int]:
    """The snippet's ``tokenize``, step by step."""
    plain = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
    ids = [vocab["[CLS]"]]
    for word in re.findall(r"[^\W_]+|[^\s\w]|_", plain):
        pieces, start = [], 0
        while start < len(word):
            prefix = "##" if start > 0 else ""
            end = next((e for e in range(len(word), start, -1) if prefix + word[start:e] in vocab), None)
            if end is None:
                pieces = [vocab["[UNK]"]]
                break
            pieces.append(vocab[prefix + word[start:end]])
            start = end
        ids += pieces
    return ids[:limit - 1] + [vocab["[SEP]"]]


def test_feeding_the_artifact_like_the_snippet_gives_the_apps_label(export):
    from ai_edge_litert.interpreter import Interpreter
    from tokenizers import Tokenizer

    from demo_app.model import DemoModel

    manifest = json.loads((export / "edgekit.json").read_text())
    vocab = {token: i for i, token in enumerate((export / "vocab.txt").read_text().splitlines())}
    labels = (export / "labels.txt").read_text().split()
    tokenizer = Tokenizer.from_file(str(export / "tokenizer.json"))
    for artifact in (a for a in manifest["artifacts"] if a["format"] == "tflite"):
        runner = Interpreter(model_path=str(export / artifact["path"])).get_signature_runner("serving_default")
        fixed = int(runner.get_input_details()["input_ids"]["shape_signature"][-1])
        limit = min(manifest["max_length"], fixed) if fixed > 0 else manifest["max_length"]
        app = DemoModel.load(export, artifact["path"])
        for text in TEXTS:
            tokens = kotlin_tokenize(text, vocab, limit)
            tokenizer.enable_truncation(limit)
            assert tokens == tokenizer.encode(text).ids, text
            length = fixed if fixed > 0 else len(tokens)
            ids = np.full((1, length), vocab["[PAD]"], np.int32)
            ids[0, :len(tokens)] = tokens
            mask = (np.arange(length) < len(tokens)).astype(np.int32)[None]
            logits = runner(input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids))["logits"][0]
            scale, zero = runner.get_output_details()["logits"]["quantization"]
            if logits.dtype == np.int8:  # the snippet's ByteArray branch
                logits = (logits.astype(np.int32) - zero) * scale
            assert labels[int(np.argmax(logits))] == app.classify(text).label, (artifact["path"], text)


def test_snippet_tokenizer_matches_minilm_wordpiece_on_english():
    """The snippet's tokenisation against a real uncased BERT vocabulary (the packaged MiniLM)."""
    from tokenizers import Tokenizer

    from edgekit.models.registry import resolve_model

    folder = resolve_model("minilm-l6")
    vocab = {t: i for i, t in enumerate((folder / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(128)
    tokenizer.no_padding()
    for text in ["It's not good.", "A gripping, beautifully shot film!", "Naïve café-owners (aged 42) re-opened",
                 "unbelievably overwrought: 3/10 -- skip it", "Ünïcödé façade; déjà vu... $5 & 50% off?",
                 "supercalifragilisticexpialidocious filmmaking", " ".join(["long"] * 200)]:
        assert kotlin_tokenize(text, vocab, 128) == tokenizer.encode(text).ids, text
