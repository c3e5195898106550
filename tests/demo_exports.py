"""Tiny export folders for the demo app's tests, written by the real `edgekit export`, and what
the demo test files share: the exports (session fixtures ``cls_export``, ``enc_export``,
``ner_exp``, ``qa_exp`` in conftest.py, built once per run), texts, the app run as a user runs it
(``app``, ``one_line_error``) and the server (``DemoServer``).

The classifier is the random 3-label fixture (tests/fixtures/tiny-bert-cls) exported to
dynamic TFLite fp32, static TFLite int8-dynamic, static ONNX fp32, OpenVINO fp32 and
dynamic TFLite int8-full (int8 logits); the encoder is a random mean-pooled tiny BERT
exported to TFLite fp32. The tagger and the question answerer are that fixture fine-tuned
for a few seconds on task_data's generated toy NER task (names of several sub-tokens are PER,
``cafe`` is LOC) and toy SQuAD task (the answer is the one sentiment word of a context longer
than one 32-token window), exported to the classifier's five targets. Each is built once per
test session in pytest's base temporary folder and shared by the demo test files.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO, TINY_CLS
from task_data import export_task, toy_ner_sentences, toy_squad, write_model
from toy_data import export_folder, write_recipe, write_toy_task

if str(REPO) not in sys.path:  # demo_app is a folder of the repository, not an installed package
    sys.path.insert(0, str(REPO))

DEMO = REPO / "demo_app"
FORBIDDEN = {"tensorflow", "tf_keras", "keras", "edgekit", "torch", "tflite_runtime"}  # never imported by the app
TEXTS = ["the movie was great", "bad terrible cafe", "good , the cafe !", "the movie was bad ."]
LONG = " ".join(["the"] * 30 + ["good"])  # 31 words -> 33 tokens with [CLS]/[SEP]; max_length is 16
NER_TEXTS = ["bob zed was at the cafe", "the movie was great , kim", "!"]
LONG_NER = " ".join(["ann zed , the cafe was good ."] * 4)  # 4 x 12 tokens (a ##n ##n z ##e ##d ...): 4 windows of 16
QA_CONTEXT = "the movie was , the cafe was ! a b the movie was terrible . the cafe , the movie ! a b c"  # 2 windows

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


def ner_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.getbasetemp() / "demo-ner-export"
    if not (out / "edgekit.json").is_file():
        folder = tmp_path_factory.mktemp("demo-toy-ner")
        write_model(folder)
        for name, count, seed in (("train", 256, 0), ("test", 48, 1)):
            (folder / f"{name}.txt").write_text("".join("".join(f"{w} {t}\n" for w, t in s) + "\n"
                                                        for s in toy_ner_sentences(count, seed)))
        recipe = folder / "ner.yaml"
        recipe.write_text(NER_RECIPE + CLASSIFIER_TARGETS)
        export_task(recipe, out)
    return out


def qa_export(tmp_path_factory) -> Path:
    out = tmp_path_factory.getbasetemp() / "demo-qa-export"
    if not (out / "edgekit.json").is_file():
        folder = tmp_path_factory.mktemp("demo-toy-qa")
        write_model(folder)
        (folder / "squad.json").write_text(json.dumps(toy_squad(8, 2)))
        recipe = folder / "qa.yaml"
        recipe.write_text(QA_RECIPE + CLASSIFIER_TARGETS.replace("seq_len: 16", "seq_len: 32"))
        export_task(recipe, out)
    return out




def app(*args, stdin: str | None = None, importtime: bool = False) -> subprocess.CompletedProcess:
    """The demo app as a user runs it: ``python -I demo_app ...`` (no PYTHONPATH, no cwd on sys.path)."""
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, "-I", *flags, str(DEMO), *map(str, args)], input=stdin,
                          capture_output=True, text=True, timeout=300, cwd="/")


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The one ``demo_app: ...`` line of a command that failed with status 1 (no traceback)."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("demo_app: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


class DemoServer:
    """``python -I -X importtime demo_app serve EXPORT --port 0`` in a subprocess (the real app, isolated
    from the environment); ``stderr`` collects its import log, read by the isolation test."""

    def __init__(self, export: Path, log: Path, *extra: str):
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
