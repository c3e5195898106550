"""Tiny export folders for the demo app's tests, written by the real `edgekit export`.

The classifier is the random 3-label fixture (tests/fixtures/tiny-bert-cls) exported to
dynamic TFLite fp32, static TFLite int8-dynamic, static ONNX fp32, OpenVINO fp32 and
dynamic TFLite int8-full (int8 logits); the encoder is a random mean-pooled tiny BERT
exported to TFLite fp32. Each is built once per test session (seconds) in pytest's base
temporary folder and shared by the demo test files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import REPO, TINY_CLS
from toy_data import export_folder, write_recipe, write_toy_task

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
