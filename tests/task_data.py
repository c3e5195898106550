"""Toy token-classification (NER) and question-answering tasks in the tiny fixture model's
vocabulary (``tests/fixtures/``), and their real exports: the one home of the tests' toy NER
and QA data.

Hand-written fixtures, for the task and benchmark tests (which count their sentences and
questions):

- ``toy-ner/train.txt`` (36 sentences) and ``toy-ner/test.txt`` (12): CoNLL ``token TAG`` lines,
  a blank line between sentences, tags ``NER_TAGS`` (e.g. ``ann B-PER`` / ``lee I-PER``, ``paris B-LOC``);
- ``toy-squad/squad.json``: SQuAD v1.1, 4 articles of 2 paragraphs of 3 questions (24 questions);
  the recipe trains on articles 0-2 and tests on article 3 (6 questions).

Each ``write_*_task(folder)`` copies its data and a dropout-free copy of the tiny model
(``write_model``) into ``folder``; ``write_*_recipe(folder, body)`` writes ``recipe.yaml`` there,
a ``finetune`` stage (which puts the task's head on the tiny classifier; 30 epochs) followed by
``body`` (the ``export:`` and ``evaluation:`` sections); ``export_task`` runs the real ``edgekit
export``, training in its own stage cache (about 40 s in all). The fp32 models score, measured
here: entity F1 1.0 on the 12 test sentences, SQuAD F1 and exact match 0.67 on the 6 test
questions. Typical use, in a module-scoped fixture::

    folder = write_ner_task(tmp_path_factory.mktemp("ner"))
    out = export_task(write_ner_recipe(folder, BODY), folder / "out")

The QA copy of the model has ``QA_POSITIONS`` position embeddings (the tiny model's 64, then new
rows drawn N(0, 0.02)) and the recipe's ``max_length`` is ``QA_MAX_LENGTH`` (136: every fixture
question with its context, 58 tokens at most, is one window).

Generated, for the demo app's exports (``demo_exports``), which need more sentences and contexts
longer than one window: ``toy_ner_sentences`` (names of several sub-tokens, ``NAMES`` with the
``SURNAME``, are PER; ``cafe`` is LOC) and ``toy_squad`` (the answer is the one sentiment word of
a context).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from conftest import FIXTURES
from toy_data import FILLER, NEGATIVE, POSITIVE, write_toy_task

NER_DATA, SQUAD_DATA = FIXTURES / "toy-ner", FIXTURES / "toy-squad" / "squad.json"
NER_TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
NER_MAX_LENGTH, QA_MAX_LENGTH, QA_POSITIONS = 16, 136, 144
POSITIONS = "bert.embeddings.position_embeddings.weight"  # the tiny checkpoint's position table [64, 32]
FINETUNE = "finetune: {epochs: 30, batch_size: 8, learning_rate: 5.0e-3}\n"


def write_model(folder: Path) -> Path:
    """The tiny classifier without dropout in ``folder/model`` (toy_data's copy, no TSV files)."""
    write_toy_task(folder, train=0, test=0)
    for name in ("train.tsv", "test.tsv"):
        (folder / name).unlink()
    return folder / "model"


def write_ner_task(folder: Path) -> Path:
    """``train.txt``, ``test.txt`` (the CoNLL fixtures) and ``model/`` in ``folder``; returns folder."""
    write_model(folder)
    for name in ("train.txt", "test.txt"):
        shutil.copy(NER_DATA / name, folder / name)
    return folder


def write_ner_recipe(folder: Path, body: str) -> Path:
    """``folder/recipe.yaml``: token-classification on the CoNLL files, ``NER_MAX_LENGTH`` tokens."""
    head = (f"name: toy-ner\ntask: token-classification\nseed: 3\n"
            f"model: {{source: model, max_length: {NER_MAX_LENGTH}}}\n"
            f"data: {{format: conll, train: train.txt, test: test.txt, labels: [{', '.join(NER_TAGS)}]}}\n")
    path = folder / "recipe.yaml"
    path.write_text(head + FINETUNE + body)
    return path


def write_qa_task(folder: Path) -> Path:
    """``squad.json`` (the SQuAD fixture) and ``model/`` with ``QA_POSITIONS`` positions in ``folder``."""
    from safetensors.numpy import load_file, save_file

    model = write_model(folder)
    shutil.copy(SQUAD_DATA, folder / "squad.json")
    weights = load_file(model / "model.safetensors")
    table = weights[POSITIONS]
    extra = np.random.default_rng(0).normal(0, 0.02, (QA_POSITIONS - len(table), table.shape[1]))
    weights[POSITIONS] = np.concatenate([table, extra.astype(table.dtype)])
    save_file(weights, model / "model.safetensors")
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "max_position_embeddings": QA_POSITIONS}))
    return folder


def write_qa_recipe(folder: Path, body: str) -> Path:
    """``folder/recipe.yaml``: question answering, articles 0-2 of squad.json to train, 3 to test."""
    head = (f"name: toy-qa\ntask: question-answering\nseed: 3\n"
            f"model: {{source: model, max_length: {QA_MAX_LENGTH}}}\n"
            "data: {format: squad, train: squad.json, test: squad.json, train_articles: [0, 3], "
            "test_articles: [3, 4]}\n")
    path = folder / "recipe.yaml"
    path.write_text(head + FINETUNE + body)
    return path


def export_task(recipe: Path, out: Path) -> Path:
    """The real ``edgekit export RECIPE --out OUT`` (1 thread, quiet, the stage cache beside the
    recipe) in this process; returns OUT."""
    from click.testing import CliRunner

    from edgekit.cli import main

    result = CliRunner().invoke(main, ["export", str(recipe), "--out", str(out), "--cache",
                                       str(recipe.parent / "cache"), "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    return out


NAMES = ["bob", "ann", "tom", "kim"]  # b ##o ##b: several sub-tokens each in the tiny vocabulary
SURNAME = "zed"


def toy_ner_sentences(count: int, seed: int) -> list[list[tuple[str, str]]]:
    """Sentences of 3-14 (word, IOB2 tag) pairs: names (PER, sometimes with the surname), cafe (LOC)."""
    rng = np.random.default_rng(seed)
    sentences = []
    for _ in range(count):
        words = []
        while len(words) < int(rng.integers(3, 15)):
            pick = rng.random()
            if pick < 0.2:
                words.append((str(rng.choice(NAMES)), "B-PER"))
                if rng.random() < 0.5:
                    words.append((SURNAME, "I-PER"))
            elif pick < 0.3:
                words.append(("cafe", "B-LOC"))
            else:
                words.append((str(rng.choice(FILLER + POSITIVE + NEGATIVE)), "O"))
        sentences.append(words)
    return sentences


def toy_squad(articles: int, seed: int) -> dict:
    """SQuAD v1.1 JSON: contexts of 14-30 filler words (several windows of 32 tokens with the
    question) holding one sentiment word, which is the answer to every question on them."""
    rng = np.random.default_rng(seed)
    data = []
    for a in range(articles):
        paragraphs = []
        for p in range(4):
            words = [str(w) for w in rng.choice(FILLER + ["a", "b", "cafe"], size=int(rng.integers(14, 31)))]
            at = int(rng.integers(len(words)))
            words[at] = str(rng.choice(POSITIVE + NEGATIVE))
            context = " ".join(words)
            start = len(" ".join(words[:at])) + (1 if at else 0)
            qas = [{"id": f"a{a}p{p}q{k}", "question": question,
                    "answers": [{"text": words[at], "answer_start": start}]}
                   for k, question in enumerate(["what was it ?", "was the movie good or bad ?"])]
            paragraphs.append({"context": context, "qas": qas})
        data.append({"title": f"toy {a}", "paragraphs": paragraphs})
    return {"version": "1.1", "data": data}
