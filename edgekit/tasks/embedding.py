"""``feature-extraction``: the pooled (cls / mean / pooler, optionally L2-normalised) sentence
vector is the answer: ``embedding`` [B, H], no head. Distillation matches the teacher's vectors;
metrics: cosine to the fp32 model's vectors (mean and min)."""

from __future__ import annotations

import numpy as np

from edgekit.config.enums import DataFormat, Task
from edgekit.tasks.base import Output, TaskSpec


class FeatureExtraction(TaskSpec):
    task = Task.FEATURE_EXTRACTION
    architecture = "BertModel"
    formats = (DataFormat.TSV, DataFormat.CSV, DataFormat.JSONL)
    gates = ("min_cosine",)
    metrics = ("cosine_mean", "cosine_min")
    needs_labels = False

    def outputs(self, config):
        return (Output("embedding", False, config.hidden_size),)

    def read_splits(self, section):
        from edgekit.data import load_splits

        return load_splits(section)

    def features(self, dataset, tokenizer, max_length, input_names):
        from edgekit.train.batching import TokenizedDataset

        return TokenizedDataset.from_texts(dataset, tokenizer, max_length, input_names)

    def soft_loss(self, out, features, temperature):
        from edgekit._tf import tf_modules

        tf, _ = tf_modules()
        return tf.reduce_mean(tf.square(out["embedding"] - features["teacher_embedding"]), -1) * 100.0  # ST's scale

    def agreement(self, out, features):
        from edgekit._tf import tf_modules

        _, keras = tf_modules()
        return -keras.losses.cosine_similarity(out["embedding"], features["teacher_embedding"])

    def score(self, dataset, data, outputs, reference):
        if reference is None:
            return {}
        a, b = outputs["embedding"], reference["embedding"]
        cos = (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
        return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}
