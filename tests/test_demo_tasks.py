"""demo_app's answers are edgekit's, on every artifact of tiny exports written by `edgekit
export`: a classifier's logits are edgekit's runner's, entities and answers score exactly the
F1 and exact match the export measured, and question answering windows and decodes with the
settings the export wrote into edgekit.json (``windows``), which the app reads, not recomputes."""

from __future__ import annotations

import importlib
import json
import shutil

import numpy as np
import pytest

from demo_exports import LONG, QA_CONTEXT, TEXTS, app, one_line_error


def _classify_like_runner(export) -> set[str]:
    """Every artifact of a classifier export: the app's logits are edgekit's runner's on TEXTS
    and LONG, its label their argmax, its probabilities a distribution. Returns the labels seen."""
    from demo_app.model import DemoModel
    from edgekit.models import TextTokenizer

    manifest = json.loads((export / "edgekit.json").read_text())
    tokenizer = TextTokenizer(export)
    labels = set()
    for row in manifest["artifacts"]:
        model = DemoModel.load(export, row["path"])
        runner = importlib.import_module(f"edgekit.export.{row['format']}").load(export / row["path"], 1)
        for text in TEXTS + [LONG]:
            enc = tokenizer.encode([text], manifest["max_length"])
            expected = runner({n: enc[n] for n in runner.input_names})["logits"][0]
            p = model.classify(text)
            np.testing.assert_allclose(p.answer.output, expected, atol=1e-5, err_msg=f"{row['path']}: {text}")
            assert p.label == manifest["labels"][int(expected.argmax())]
            assert abs(sum(p.probabilities.values()) - 1) < 1e-9
            assert p.probabilities[p.label] == max(p.probabilities.values())
            labels.add(p.label)
    return labels


def test_every_artifact_answers_like_edgekits_runner(cls_export):
    from demo_app.model import DemoModel

    assert len(_classify_like_runner(cls_export)) >= 2  # the random model does tell these texts apart
    assert DemoModel.load(cls_export).artifact.key == "tflite-fp32"  # default: first passing TFLite artifact



def _manifest(folder) -> dict:
    return json.loads((folder / "edgekit.json").read_text())


def word_tags(text_words: list[str], entities: list[dict]) -> list[str]:
    """IOB2 tags of the words of ``" ".join(text_words)`` from entities' character offsets;
    every entity must start and end on a word boundary."""
    starts = np.cumsum([0] + [len(w) + 1 for w in text_words[:-1]])
    tags = ["O"] * len(text_words)
    for e in entities:
        inside = [i for i, (a, w) in enumerate(zip(starts, text_words)) if a >= e["start"] and a + len(w) <= e["end"]]
        assert inside, e
        first, last = inside[0], inside[-1]
        assert starts[first] == e["start"] and starts[last] + len(text_words[last]) == e["end"], e
        tags[first] = f"B-{e['type']}"
        for i in inside[1:]:
            tags[i] = f"I-{e['type']}"
    return tags


def test_entities_score_exactly_what_the_export_measured(ner_exp):
    """Every artifact, on the export's own test sentences (words joined by spaces), windows of
    16 tokens included: the entity F1 of the app's entities is the manifest's."""
    from demo_app.model import DemoModel
    from edgekit.data.conll import read_conll
    from edgekit.tasks.iob import entity_scores

    manifest = _manifest(ner_exp)
    test = read_conll(manifest["recipe"]["data"]["test"])
    gold = [[test.tag_names[t] for t in row] for row in test.tags]
    for row in manifest["artifacts"]:
        model = DemoModel.load(ner_exp, row["path"])
        predicted, windows = [], 0
        for words in test.words:
            text = " ".join(words)
            tagged = model.entities(text)
            assert all(e["text"] == text[e["start"]:e["end"]] and 0 < e["score"] <= 1 for e in tagged.entities)
            predicted.append(word_tags(list(words), tagged.entities))
            windows += tagged.windows
        assert entity_scores(gold, predicted)["f1"] == pytest.approx(row["metrics"]["f1"], abs=1e-12), row["path"]
        assert windows > len(test.words)  # some sentences needed more than one window
    assert manifest["artifacts"][0]["metrics"]["f1"] > 0.8  # the toy tagger learned its task


def test_answers_are_edgekits_answers_on_every_artifact(qa_exp):
    """Every artifact, on the export's test questions (contexts of several 32-token windows):
    the app's answers and their scores are those of edgekit's windows, runner and decoder, and
    score the manifest's F1 and exact match."""
    from demo_app.model import DemoModel
    from edgekit.data.squad import read_squad
    from edgekit.models import TextTokenizer
    from edgekit.ondevice.answers import best_span
    from edgekit.tasks import get
    from edgekit.tasks.question_answering import MAX_ANSWER_LENGTH, N_BEST
    from edgekit.tasks.squad_metric import squad_scores

    manifest = _manifest(qa_exp)
    data = manifest["recipe"]["data"]
    test = read_squad(data["test"], articles=tuple(data["test_articles"]))
    names = tuple(i["name"] for i in manifest["inputs"])
    features = get("question-answering").features(test, TextTokenizer(qa_exp), manifest["max_length"], names)
    windows = features.meta
    for row in manifest["artifacts"]:
        model = DemoModel.load(qa_exp, row["path"])
        runner = importlib.import_module(f"edgekit.export.{row['format']}").load(qa_exp / row["path"], 1)
        answers = {}
        for q, qid in enumerate(test.ids):
            reply = model.answer(test.questions[q], test.contexts[q])
            mine = np.flatnonzero(windows.example == q)
            assert reply.windows == len(mine) and reply.question_kept == reply.question_tokens
            outs = [runner(features.row_inputs(i)) for i in mine]
            width = max(len(windows.ids[i]) for i in mine)
            offsets = np.full((len(mine), width, 2), -1, dtype=np.int32)
            start, end = np.zeros((len(mine), width)), np.zeros((len(mine), width))
            for k, (i, out) in enumerate(zip(mine, outs)):
                n = len(windows.ids[i])
                offsets[k, :n], start[k, :n], end[k, :n] = windows.offsets[i], out["start_logits"][0][:n], \
                    out["end_logits"][0][:n]
            span = best_span(start, end, offsets, n_best=N_BEST, max_answer_length=MAX_ANSWER_LENGTH)
            assert (reply.start, reply.end) == (span["start"], span["end"]), (row["path"], qid)
            assert reply.score == pytest.approx(span["score"], abs=1e-3) and reply.answer == \
                test.contexts[q][span["start"]:span["end"]]
            answers[qid] = reply.answer
        scores = squad_scores(answers, test)
        for metric in ("f1", "exact_match"):
            assert scores[metric] == pytest.approx(row["metrics"][metric], abs=1e-12), (row["path"], metric)
    assert windows.windowed > 0  # contexts longer than one window



def test_qa_windows_are_read_from_edgekit_json(qa_exp, cls_export, tmp_path):
    """The export writes the windows it evaluated with (max_length 32: a question of at most 8
    tokens, 10 context tokens shared, BERT's answer length and n-best); the app windows and
    decodes with whatever the manifest says, and refuses a QA manifest without them."""
    from demo_app.exportdir import AppError, read_export
    from demo_app.model import DemoModel
    from edgekit.data.squad import QADataset
    from edgekit.models import TextTokenizer
    from edgekit.tasks.qa_windows import encode_questions
    from edgekit.tasks.question_answering import windows

    manifest = _manifest(qa_exp)
    assert manifest["max_length"] == 32 and manifest["windows"] == windows(32) == {
        "doc_stride": 10, "max_query_length": 8, "max_answer_length": 30, "n_best": 20}
    assert "windows" not in _manifest(cls_export)  # only question answering windows pairs
    assert DemoModel.load(qa_exp).export.windows == manifest["windows"]
    folder = tmp_path / "export"
    shutil.copytree(qa_exp, folder)

    def edit(value) -> None:
        changed = {**manifest, "windows": value}
        if value is None:
            del changed["windows"]
        (folder / "edgekit.json").write_text(json.dumps(changed))

    edit({"doc_stride": 3, "max_query_length": 4, "max_answer_length": 1, "n_best": 1})
    model = DemoModel.load(folder)
    question, context = "was the movie good or bad ?", " ".join([QA_CONTEXT] * 2)
    reply = model.answer(question, context)
    pairs = model.encoder.pair_windows(question, context, 3, 4)
    spans = [{tuple(o) for o in window if o[0] >= 0} for window in pairs.offsets.tolist()]
    tokenizer = TextTokenizer(folder)
    asked = len(tokenizer.backend.encode(question, add_special_tokens=False).ids)
    assert (reply.question_tokens, reply.question_kept) == (asked, 4) and asked > 4
    assert reply.windows == len(spans) > 2 and [len(a & b) for a, b in zip(spans, spans[1:])] == [3] * (len(spans) - 1)
    pair = QADataset(("q",), (question,), (context,), ((),), ((),), (0,), "app")
    assert len(encode_questions(tokenizer, pair, 32, 3, 4)) == reply.windows  # edgekit's windows too
    assert any((reply.start, reply.end) in tokens for tokens in spans)  # max_answer_length 1: one token
    for value, message in [
            (None, "windows: missing (a question-answering export records the doc_stride, max_query_length, "
                   "max_answer_length, n_best it was evaluated with; re-export the folder)"),
            ([10, 8, 30, 20], "windows: expected dict, got list"),
            ({**manifest["windows"], "doc_stride": "10"}, "windows.doc_stride: expected an int >= 0, got '10'"),
            ({**manifest["windows"], "max_query_length": 0}, "windows.max_query_length: expected an int >= 1, got 0"),
            ({"doc_stride": 10, "max_query_length": 8, "n_best": 20},
             "windows.max_answer_length: expected an int >= 1, got None")]:
        edit(value)
        with pytest.raises(AppError) as err:
            read_export(folder)
        assert str(err.value) == f"{folder / 'edgekit.json'}: {message}"
        assert one_line_error(app("answer", folder, "--context", "the cafe was good", "what was it ?")) == \
            f"demo_app: {folder / 'edgekit.json'}: {message}"
    edit({**manifest["windows"], "doc_stride": 30})  # 32 - 3 - 8 = 21 context tokens a window: no window moves on
    with pytest.raises(AppError) as err:
        DemoModel.load(folder)
    assert str(err.value) == (f"{folder / 'tflite-fp32.tflite'}: windows of 32 tokens leave 21 for the context "
                              "after edgekit.json's 8-token question; expected more than its doc_stride 30")


@pytest.mark.parametrize("family,kind", [("roberta", "bpe"), ("albert", "unigram"), ("mobilebert", "wordpiece")])
def test_family_exports_answer_like_edgekits_runner(tmp_path, family, kind):
    """A byte-level BPE (RoBERTa: positions from pad + 1, no token types), a SentencePiece
    Unigram (ALBERT: shared layers, projected embeddings) and a WordPiece MobileBERT (bottlenecked
    blocks) export of the family fixtures, written by ``edgekit export``: the app tokenizes with
    the tokenizer files the export carries and answers edgekit's runner's logits."""
    from conftest import REPO
    from toy_data import export_folder, write_toy_task

    from edgekit.models import TextTokenizer

    toy = write_toy_task(tmp_path / "toy", train=16, test=12)
    recipe = toy / "recipe.yaml"
    recipe.write_text("name: family\ntask: text-classification\nmodel: {source: model, max_length: 16}\n"
                      "data: {train: train.tsv, test: test.tsv, labels: [negative, neutral, positive]}\n"
                      "export:\n  seq_len: 16\n  targets:\n    - {format: tflite, precision: fp32}\n"
                      "    - {format: onnx, precision: int8-dynamic}\nevaluation: {split: test}\n")
    out = export_folder(recipe, REPO / "tests" / "fixtures" / "families" / family, toy / "out")
    assert (out / "tokenizer.json").is_file() and (out / "vocab.txt").exists() == (kind == "wordpiece")
    assert TextTokenizer(out).kind == kind
    assert _classify_like_runner(out)
