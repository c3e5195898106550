"""Tiny export folders for the demo app's tests, written by the real `edgekit export`.

The classifier is the random 3-label fixture (tests/fixtures/tiny-bert-cls) exported to
dynamic TFLite fp32, static TFLite int8-dynamic, static ONNX fp32, OpenVINO fp32 and
dynamic TFLite int8-full (int8 logits); the encoder is a random mean-pooled tiny BERT
exported to TFLite fp32. The tagger and the question answerer are that fixture fine-tuned
for a few seconds on a toy NER task (CoNLL: names of several sub-tokens are PER, ``cafe`` is
LOC) and a toy SQuAD task (the answer is the one sentiment word of a context longer than one
window), exported to the classifier's five targets. Each is built once per test session in
pytest's base temporary folder and shared by the demo test files.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from conftest import REPO, TINY_CLS
from toy_data import FILLER, NEGATIVE, POSITIVE, export_folder, write_recipe, write_toy_task

if str(REPO) not in sys.path:  # demo_app is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

CLASSIFIER_TARGETS = """export:
  seq_len: 16
  targets:
    - {format: tflite, precision: fp32}
    - {format: tflite, precision: int8-dynamic, shapes: static}
    - {format: onnx, precision: fp32, shapes: static}
    - {format: openvino, precision: fp32}
    - {format: tflite, precision: int8-full}
quantize: {calibration_samples: 32}
evaluation: {split: test}
"""
ENCODER_RECIPE = """name: toy-encoder
task: feature-extraction
model: {source: model, max_length: 16, pooling: mean}
data: {train: train.tsv, test: test.tsv, label_column: null}
export:
  seq_len: 16
  targets:
    - {format: tflite, precision: fp32}
evaluation: {split: test}
"""


def classifier_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.getbasetemp() / "demo-classifier-export"
    if not (out / "edgekit.json").is_file():
        toy = write_toy_task(tmp_path_factory.mktemp("demo-toy"))
        export_folder(write_recipe(toy, CLASSIFIER_TARGETS), toy / "model", out)
    return out


def encoder_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.getbasetemp() / "demo-encoder-export"
    if not (out / "edgekit.json").is_file():
        import tensorflow as tf

        from edgekit.models import BertConfig, Pretrained, TextTokenizer
        from edgekit.models.encoder import build_encoder

        toy = write_toy_task(tmp_path_factory.mktemp("demo-toy-encoder"))
        config = BertConfig(vocab_size=69, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                            max_position_embeddings=32, pooling="mean")
        tf.random.set_seed(5)
        model = toy / "encoder"
        Pretrained(config=config, model=build_encoder(config), tokenizer=TextTokenizer(TINY_CLS),
                   source=model).save(model)
        recipe = toy / "encoder.yaml"
        recipe.write_text(ENCODER_RECIPE)
        export_folder(recipe, model, out)
    return out


NER_RECIPE = """name: toy-ner
task: token-classification
seed: 3
model: {source: model, max_length: 16}
data: {format: conll, train: train.txt, test: test.txt}
finetune: {epochs: 10, batch_size: 16, learning_rate: 0.003}
"""
QA_RECIPE = """name: toy-qa
task: question-answering
seed: 3
model: {source: model, max_length: 32}
data: {format: squad, train: squad.json, test: squad.json, train_articles: [0, 6], test_articles: [6, 8]}
finetune: {epochs: 10, batch_size: 16, learning_rate: 0.003}
"""
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


def _train_and_export(recipe: Path, out: Path) -> None:
    """The real ``edgekit export RECIPE`` (its finetune stage first, cached next to the recipe)."""
    from click.testing import CliRunner

    from edgekit.cli import main

    result = CliRunner().invoke(main, ["export", str(recipe), "--out", str(out), "--threads", "1", "--quiet",
                                       "--cache", str(recipe.parent / "cache")])
    assert result.exit_code == 0, result.output


def ner_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.getbasetemp() / "demo-ner-export"
    if not (out / "edgekit.json").is_file():
        folder = tmp_path_factory.mktemp("demo-toy-ner")
        write_toy_task(folder, train=1, test=1)  # the tiny model without dropout, as model/
        for name, count, seed in (("train", 256, 0), ("test", 48, 1)):
            (folder / f"{name}.txt").write_text("".join("".join(f"{w} {t}\n" for w, t in s) + "\n"
                                                        for s in toy_ner_sentences(count, seed)))
        recipe = folder / "ner.yaml"
        recipe.write_text(NER_RECIPE + CLASSIFIER_TARGETS)
        _train_and_export(recipe, out)
    return out


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


def qa_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.getbasetemp() / "demo-qa-export"
    if not (out / "edgekit.json").is_file():
        folder = tmp_path_factory.mktemp("demo-toy-qa")
        write_toy_task(folder, train=1, test=1)  # the tiny model without dropout, as model/
        (folder / "squad.json").write_text(json.dumps(toy_squad(8, 2)))
        recipe = folder / "qa.yaml"
        recipe.write_text(QA_RECIPE + CLASSIFIER_TARGETS.replace("seq_len: 16", "seq_len: 32"))
        _train_and_export(recipe, out)
    return out


class DemoServer:
    """``python -I -X importtime demo_app serve EXPORT --port 0`` in a subprocess (the real app, isolated
    from the environment); ``stderr`` collects its import log, read by the isolation test."""

    def __init__(self, export: Path, log: Path, *extra: str):
        import subprocess

        self.log = log
        self._stderr = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-X", "importtime", str(REPO / "demo_app"), "serve", str(export), "--port", "0",
             *extra], stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        line = self.process.stdout.readline()  # "serving http://127.0.0.1:PORT/ with ..."
        if not line.startswith("serving http://"):
            self.stop()
            raise RuntimeError(f"demo server did not start: {line!r}\n{log.read_text()[-2000:]}")
        self.url = line.split()[1]
        self.host, self.port = self.url.split("/")[2].split(":")
        self.port = int(self.port)

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        """(status, headers, body bytes) of one request."""
        import http.client

        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def stop(self) -> str:
        """Stop the server; returns its stderr (the import log)."""
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)
        self.process.stdout.close()
        self._stderr.close()
        return self.log.read_text()


def imported_modules(importtime_log: str) -> set[str]:
    """Top-level names of every module in a ``python -X importtime`` log."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line and "imported package" not in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names
