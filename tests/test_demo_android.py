"""demo_app/README.md's Android Kotlin snippets against real TFLite exports of each task: every
name they rely on (asset files, edgekit.json key, vocabulary tokens, signature key, input and
output names, their dtypes and shapes, the QA metadata names BertQuestionAnswerer looks up) is
read from the snippets' text and looked up in the artifacts, and the snippets' steps,
transcribed to Python below, run each artifact the way the Kotlin does and give the demo app's
label, entities and answers; their tokenisation gives the export tokenizer's ids and offsets
(the Kotlin itself is not compiled here)."""

from __future__ import annotations

import json
import re
import unicodedata

import numpy as np
import pytest

from conftest import REPO
from demo_exports import classifier_export, ner_export, qa_export

README = (REPO / "demo_app" / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```kotlin\n(.*?)```", README, re.S)
KOTLIN = "\n".join(BLOCKS)


def block(name: str) -> str:
    [text] = [b for b in BLOCKS if f"class {name}(" in b]
    return text


MODEL, CLASSIFIER, TAGGER, ANSWERER = (block(n) for n in ("BertModel", "TextClassifier", "EntityTagger",
                                                           "QuestionAnswerer"))
KOTLIN_DTYPES = {"IntArray": np.int32, "FloatArray": np.float32}
TEXTS = ["the movie was great", "bad terrible cafe", "Not good, the café!", "a b c xyzzy ."]


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict:
    return {"classifier": classifier_export(tmp_path_factory), "tagger": ner_export(tmp_path_factory),
            "answerer": qa_export(tmp_path_factory)}


def outputs_of(snippet: str) -> tuple[dict[str, str], bool]:
    """What a class asks ``model.run`` for: {output name: width expression}, and per token or not."""
    [(pairs, per_token)] = re.findall(r'mapOf\(((?:"\w+" to [\w.]+(?:, )?)+)\), perToken = (true|false)', snippet)
    return dict(re.findall(r'"(\w+)" to ([\w.]+)', pairs)), per_token == "true"


def asset_sources() -> dict[str, str]:
    """README's asset table: asset name -> the export file it comes from (first `...` in the row)."""
    return dict(re.findall(r"^\| `([^`]+)` \| [^`|]*`([^`]+)`", README, re.M))


def lines(path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_snippet_names_exist_in_every_tasks_artifacts(exports):
    from ai_edge_litert.interpreter import Interpreter

    from edgekit.export.tflite.metadata import read_metadata

    assets = set(re.findall(r'assets\.open(?:Fd)?\("([^"]+)"\)', KOTLIN))
    assert assets == {"model.tflite", "vocab.txt", "labels.txt", "edgekit.json"} == set(asset_sources())
    assert '"labels.txt"' not in ANSWERER and not (exports["answerer"] / "labels.txt").exists()
    for asset, source in asset_sources().items():
        for task, folder in exports.items():
            if (asset, task) != ("labels.txt", "answerer"):
                assert (folder / source).is_file(), f"README asset {asset} comes from {source}, not in {task}'s export"
    windows = {"doc_stride", "max_query_length", "max_answer_length", "n_best"}
    assert set(re.findall(r'getInt\("(\w+)"\)', KOTLIN)) == {"max_length"} | windows
    assert re.findall(r'getJSONObject\("(\w+)"\)', KOTLIN) == ["windows"]
    assert set(json.loads((exports["answerer"] / "edgekit.json").read_text())["windows"]) == windows
    assert set(re.findall(r'vocab\.getValue\("([^"]+)"\)', KOTLIN)) == {"[CLS]", "[SEP]", "[UNK]", "[PAD]"}
    [signature] = set(re.findall(r'"(serving_\w+|\w+_default)"', KOTLIN))
    inputs = dict(re.findall(r'"(\w+)" to arrayOf\((IntArray|FloatArray)\(', MODEL))
    assert set(inputs) == {"input_ids", "attention_mask", "token_type_ids"} and set(inputs.values()) == {"IntArray"}
    assert re.findall(r'getInputTensorFromSignature\("(\w+)", "(\w+)"\)', MODEL) == [("input_ids", signature)]
    assert "DataType.INT8" in MODEL and "q.zeroPoint) * q.scale" in MODEL  # int8 outputs are dequantized
    wanted = {"classifier": ({"logits": "labels.size"}, False), "tagger": ({"logits": "tags.size"}, True),
              "answerer": ({"start_logits": "1", "end_logits": "1"}, True)}
    for task, snippet in (("classifier", CLASSIFIER), ("tagger", TAGGER), ("answerer", ANSWERER)):
        assert outputs_of(snippet) == wanted[task]
        folder = exports[task]
        manifest = json.loads((folder / "edgekit.json").read_text())
        assert isinstance(manifest["max_length"], int)
        vocab = lines(folder / "vocab.txt")
        assert {"[CLS]", "[SEP]", "[UNK]", "[PAD]"} <= set(vocab)
        labels = manifest["labels"]
        if task != "answerer":
            assert lines(folder / "labels.txt") == labels
        outputs, per_token = wanted[task]
        artifacts = [a for a in manifest["artifacts"] if a["format"] == "tflite"]
        assert {a["shapes"] for a in artifacts} == {"static", "dynamic"}  # both kinds the snippets handle
        dtypes = set()
        for artifact in artifacts:
            path = folder / artifact["path"]
            interpreter = Interpreter(model_path=str(path))
            assert signature in interpreter.get_signature_list(), path
            runner = interpreter.get_signature_runner(signature)
            in_details, out_details = runner.get_input_details(), runner.get_output_details()
            assert set(in_details) == set(inputs)
            for name, array in inputs.items():
                assert in_details[name]["dtype"] == KOTLIN_DTYPES[array]
                assert len(in_details[name]["shape_signature"]) == 2  # arrayOf(one row): [1, length]
            assert set(out_details) == set(outputs), path
            for name, width in outputs.items():
                shape = list(out_details[name]["shape_signature"])
                assert len(shape) == 2 + (per_token and width != "1"), (path, name, shape)
                assert width == "1" or shape[-1] == len(labels)
                dtypes.add(out_details[name]["dtype"])
            metadata = read_metadata(path)
            assert metadata.files["vocab.txt"] == (folder / "vocab.txt").read_bytes()
            if task == "answerer":  # what BertQuestionAnswerer finds its tensors by
                assert {n for n, _ in metadata.inputs} == {"ids", "mask", "segment_ids"}
                assert {n for n, _ in metadata.outputs} == {"end_logits", "start_logits"}
            else:
                assert metadata.files["labels.txt"] == (folder / "labels.txt").read_bytes()
        assert dtypes == {np.float32, np.int8}  # float and full-int8 artifacts: both branches checked


# --- the snippets' steps in Python ---------------------------------------------------------------

def _word_char(c: str) -> bool:
    category = unicodedata.category(c)
    return category[0] in "LN" or category == "Mn"


def kotlin_words(text: str) -> list[tuple[int, int]]:
    """The [start, end) of each match of ``[\\p{L}\\p{N}\\p{Mn}]+|[^\\s\\p{L}\\p{N}\\p{Mn}]``."""
    spans, i = [], 0
    while i < len(text):
        j = i + 1
        if _word_char(text[i]):
            while j < len(text) and _word_char(text[j]):
                j += 1
        if not text[i].isspace():
            spans.append((i, j))
        i = j
    return spans


def kotlin_pieces(text: str, vocab: dict[str, int]) -> list[tuple[int, int, int, int]]:
    """``BertModel.pieces``: (id, word, start, end) per token."""
    out, index = [], 0
    for at, stop in kotlin_words(text):
        original = text[at:stop]
        word = "".join(c for c in unicodedata.normalize("NFD", original.lower()) if unicodedata.category(c) != "Mn")
        if not word:
            continue
        exact = len(word) == len(original)
        pieces, start = [], 0
        while start < len(word):
            prefix = "##" if start > 0 else ""
            end = next((e for e in range(len(word), start, -1) if prefix + word[start:e] in vocab), None)
            if end is None:
                pieces = [(vocab["[UNK]"], index, at, stop)]
                break
            pieces.append((vocab[prefix + word[start:end]], index, at + start if exact else at,
                           at + end if exact else stop))
            start = end
        out += pieces
        index += 1
    return out


class KotlinModel:
    """``BertModel``: the snippet's limit and ``run`` on one TFLite artifact."""

    def __init__(self, folder, artifact: str):
        from ai_edge_litert.interpreter import Interpreter

        self.vocab = {token: i for i, token in enumerate((folder / "vocab.txt").read_text().splitlines())}
        self.runner = Interpreter(model_path=str(folder / artifact)).get_signature_runner("serving_default")
        self.fixed = int(self.runner.get_input_details()["input_ids"]["shape_signature"][-1])
        self.manifest = json.loads((folder / "edgekit.json").read_text())
        max_length = self.manifest["max_length"]
        self.limit = min(max_length, self.fixed) if self.fixed > 0 else max_length

    def pieces(self, text: str):
        return kotlin_pieces(text, self.vocab)

    def run(self, ids: list[int], types: list[int], names: tuple[str, ...]) -> dict[str, np.ndarray]:
        """Each output of ``names``, flattened as the ByteBuffer holds it, dequantized like the snippet."""
        length = self.fixed if self.fixed > 0 else len(ids)
        feed = {"input_ids": np.full((1, length), self.vocab["[PAD]"], np.int32),
                "attention_mask": (np.arange(length) < len(ids)).astype(np.int32)[None],
                "token_type_ids": np.zeros((1, length), np.int32)}
        feed["input_ids"][0, :len(ids)], feed["token_type_ids"][0, :len(ids)] = ids, types
        out, details = self.runner(**feed), self.runner.get_output_details()
        flat = {}
        for name in names:
            raw = out[name].reshape(-1)
            scale, zero = details[name]["quantization"]
            flat[name] = (raw.astype(np.int32) - zero).astype(np.float32) * np.float32(scale) \
                if raw.dtype == np.int8 else raw.astype(np.float32)
        return flat


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def kotlin_label(model: KotlinModel, labels: list[str], text: str) -> str:
    ids = [model.vocab["[CLS]"]] + [p[0] for p in model.pieces(text)][:model.limit - 2] + [model.vocab["[SEP]"]]
    logits = model.run(ids, [0] * len(ids), ("logits",))["logits"]
    return labels[int(np.argmax(softmax(logits)))]


def kotlin_windows(pieces, room: int) -> list[range]:
    """``EntityTagger.windows``."""
    out, joinable, start = [], False, 0
    while start < len(pieces):
        end = start + 1
        while end < len(pieces) and pieces[end][1] == pieces[start][1]:
            end += 1
        if end - start > room:
            out += [range(a, min(a + room, end)) for a in range(start, end, room)]
            joinable = False
        elif joinable and end - out[-1].start <= room:
            out[-1] = range(out[-1].start, end)
        else:
            out.append(range(start, end))
            joinable = True
        start = end
    return out


def kotlin_entities(model: KotlinModel, tags: list[str], text: str) -> list[dict]:
    """``EntityTagger.entities``."""
    pieces, logits = model.pieces(text), []
    for window in kotlin_windows(pieces, model.limit - 2):
        ids = [model.vocab["[CLS]"]] + [pieces[i][0] for i in window] + [model.vocab["[SEP]"]]
        out = model.run(ids, [0] * len(ids), ("logits",))["logits"]
        logits += [out[row * len(tags):(row + 1) * len(tags)] for row in range(1, len(window) + 1)]
    firsts = [i for i in range(len(pieces)) if i == 0 or pieces[i][1] != pieces[i - 1][1]]
    words = []
    for w, first in enumerate(firsts):
        p = softmax(logits[first])
        best = int(np.argmax(p))
        last = (firsts[w + 1] if w + 1 < len(firsts) else len(pieces)) - 1
        words.append((tags[best], float(p[best]), pieces[first][2], pieces[last][3]))
    found, w = [], 0
    while w < len(words):
        if words[w][0] == "O":
            w += 1
            continue
        kind = words[w][0].split("-", 1)[1]
        end = w + 1
        while end < len(words) and words[end][0] == f"I-{kind}":
            end += 1
        start, stop = words[w][2], words[end - 1][3]
        found.append({"type": kind, "text": text[start:stop], "start": start, "end": stop,
                      "score": float(np.mean([words[i][1] for i in range(w, end)]))})
        w = end
    return found


def kotlin_answer(model: KotlinModel, question: str, context: str):
    """``QuestionAnswerer.answer``: (start, end, score) or None."""
    windows = model.manifest["windows"]
    max_query, stride = windows["max_query_length"], windows["doc_stride"]
    n_best, max_answer_length = windows["n_best"], windows["max_answer_length"]
    assert model.limit - 3 - max_query > stride
    asked = [p[0] for p in model.pieces(question)][:max_query]
    pieces = model.pieces(context)
    room = model.limit - 3 - len(asked)
    best, first = None, 0

    def top(logits, at, count):
        return sorted(sorted(range(count), key=lambda i: -logits[at + i])[:n_best])

    while True:
        window = range(first, min(first + room, len(pieces)))
        cls, sep = model.vocab["[CLS]"], model.vocab["[SEP]"]
        ids = [cls, *asked, sep, *(pieces[i][0] for i in window), sep]
        types = [0] * (len(asked) + 2) + [1] * (len(window) + 1)
        out = model.run(ids, types, ("start_logits", "end_logits"))
        start_logits, end_logits = out["start_logits"], out["end_logits"]
        at = len(asked) + 2
        for s in top(start_logits, at, len(window)):
            for e in top(end_logits, at, len(window)):
                if e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(start_logits[at + s] + end_logits[at + e])
                if best is None or score > best[2]:
                    best = (pieces[window.start + s][2], pieces[window.start + e][3], score)
        if first + room >= len(pieces):
            break
        first += room - stride
    return best


def tflite_artifacts(folder) -> list[str]:
    manifest = json.loads((folder / "edgekit.json").read_text())
    return [a["path"] for a in manifest["artifacts"] if a["format"] == "tflite"]


def test_the_classifier_snippet_gives_the_apps_label(exports):
    from demo_app.model import DemoModel

    folder = exports["classifier"]
    labels = lines(folder / "labels.txt")
    for artifact in tflite_artifacts(folder):
        model, app = KotlinModel(folder, artifact), DemoModel.load(folder, artifact)
        for text in TEXTS + [" ".join(["the"] * 30 + ["good"])]:
            assert kotlin_label(model, labels, text) == app.classify(text).label, (artifact, text)


def test_the_tagger_snippet_gives_the_apps_entities(exports):
    from demo_app.model import DemoModel

    folder = exports["tagger"]
    tags = lines(folder / "labels.txt")
    manifest = json.loads((folder / "edgekit.json").read_text())
    sentences = [" ".join(line.split()[0] for line in block.splitlines())
                 for block in open(manifest["recipe"]["data"]["test"]).read().split("\n\n") if block.strip()]
    texts = sentences + ["bob zed was at the cafe", " ".join(["ann zed , the cafe was good ."] * 4)]
    found = 0
    for artifact in tflite_artifacts(folder):
        model, app = KotlinModel(folder, artifact), DemoModel.load(folder, artifact)
        for text in texts:
            mine, theirs = kotlin_entities(model, tags, text), app.entities(text).entities
            assert [{k: e[k] for k in ("type", "text", "start", "end")} for e in mine] == \
                [{k: e[k] for k in ("type", "text", "start", "end")} for e in theirs], (artifact, text)
            assert [e["score"] for e in mine] == pytest.approx([e["score"] for e in theirs], abs=1e-3)
            found += len(mine)
    assert found > 100


def test_the_answerer_snippet_gives_the_apps_answers(exports):
    from demo_app.model import DemoModel
    from edgekit.data.squad import read_squad

    folder = exports["answerer"]
    data = json.loads((folder / "edgekit.json").read_text())["recipe"]["data"]
    test = read_squad(data["test"], articles=tuple(data["test_articles"]))
    pairs = list(zip(test.questions, test.contexts))
    pairs.append(("was the movie good or bad ? the cafe was great", test.contexts[0]))  # cut to 8 tokens
    for artifact in tflite_artifacts(folder):
        model, app = KotlinModel(folder, artifact), DemoModel.load(folder, artifact)
        for question, context in pairs:
            start, end, score = kotlin_answer(model, question, context)
            reply = app.answer(question, context)
            assert (start, end) == (reply.start, reply.end), (artifact, question)
            assert score == pytest.approx(reply.score, abs=1e-3)


def test_snippet_tokens_and_offsets_match_minilm_wordpiece_on_english():
    """The snippet's tokenisation against a real uncased BERT vocabulary (the packaged MiniLM):
    the same ids, and the same character offsets, as the tokenizers library."""
    from tokenizers import Tokenizer

    from edgekit.models.registry import resolve_model

    folder = resolve_model("minilm-l6")
    vocab = {t: i for i, t in enumerate((folder / "vocab.txt").read_text(encoding="utf-8").splitlines())}
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    for text in ["It's not good.", "A gripping, beautifully shot film!", "Naïve café-owners (aged 42) re-opened",
                 "unbelievably overwrought: 3/10 -- skip it", "Ünïcödé façade; déjà vu... $5 & 50% off?",
                 "supercalifragilisticexpialidocious filmmaking", " ".join(["long"] * 200),
                 "Angela Merkel visited Paris on 3 May 2021, said Reuters' correspondent."]:
        encoding = tokenizer.encode(text, add_special_tokens=False)
        assert [(i, s, e) for i, _, s, e in kotlin_pieces(text, vocab)] == \
            [(i, s, e) for i, (s, e) in zip(encoding.ids, encoding.offsets)], text
        assert [w for _, w, _, _ in kotlin_pieces(text, vocab)] == encoding.word_ids, text
