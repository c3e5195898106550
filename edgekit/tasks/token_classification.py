"""``token-classification`` (NER): one IOB2 tag per word. Head: ``classifier`` on every token ->
``logits`` [B, S, tags]. A word's first sub-token carries its tag (the loss ignores the
others); sentences longer than ``max_length`` are split into windows at word boundaries, never
cut. Metric: entity-level micro ``f1`` (strict spans, ``iob``), per-type F1 as ``f1_<TYPE>``,
and ``agreement``: the share of words tagged as the fp32 model tags them."""

from __future__ import annotations

import numpy as np

from edgekit.config.enums import DataFormat, Task
from edgekit.tasks.base import IGNORE, Head, TaskSpec
from edgekit.tasks.sentence import soft_cross_entropy


class TokenClassification(TaskSpec):
    task = Task.TOKEN_CLASSIFICATION
    head_layer = "classifier"
    architecture = "BertForTokenClassification"
    formats = (DataFormat.CONLL, DataFormat.JSONL)
    gates = ("min_f1", "max_f1_drop", "min_agreement")
    metrics = ("f1", "precision", "recall", "agreement")

    def head(self, config) -> Head:
        return Head("tokens", self.head_layer, config.num_labels, ("logits",))

    def read_splits(self, section):
        from edgekit.data.conll import read_conll, read_tagged_jsonl

        read = read_conll if section.format is DataFormat.CONLL else read_tagged_jsonl
        splits, labels = {}, tuple(section.labels)
        for name in ("train", "validation", "test"):  # train first: its tags name the rest's
            path = getattr(section, name)
            if path is not None:
                splits[name] = read(path, labels=labels, max_examples=section.max_examples)
                labels = labels or splits[name].tag_names
        return splits

    def label_names(self, dataset) -> tuple[str, ...]:
        return dataset.tag_names

    def features(self, dataset, tokenizer, max_length, input_names):
        from edgekit.tasks.word_windows import encode_words
        from edgekit.train.batching import TokenizedDataset

        windows = encode_words(tokenizer, dataset.words, max_length, dataset.tags)
        return TokenizedDataset(windows.ids, windows.type_ids, pad_id=tokenizer.pad_id, max_length=max_length,
                                input_names=input_names, targets={"token_labels": windows.labels}, meta=windows)

    @staticmethod
    def _labelled(features):
        from edgekit._tf import tf_modules

        tf, _ = tf_modules()
        labels = features["token_labels"]
        return labels, tf.cast(tf.not_equal(labels, IGNORE), tf.float32)

    def loss(self, out, features):
        from edgekit._tf import tf_modules

        tf, keras = tf_modules()
        labels, mask = self._labelled(features)
        ce = keras.losses.sparse_categorical_crossentropy(tf.maximum(labels, 0), out["logits"], from_logits=True)
        count = tf.maximum(tf.reduce_sum(mask, -1), 1.0)
        right = tf.cast(tf.equal(tf.argmax(out["logits"], -1, output_type=tf.int32), labels), tf.float32)
        return tf.reduce_sum(ce * mask, -1) / count, tf.reduce_sum(right * mask, -1) / count

    def soft_loss(self, out, features, temperature):
        _, mask = self._labelled(features)
        return soft_cross_entropy(out["logits"], features["teacher_logits"], temperature, mask)

    def agreement(self, out, features):
        from edgekit._tf import tf_modules

        tf, _ = tf_modules()
        _, mask = self._labelled(features)
        same = tf.cast(tf.equal(tf.argmax(out["logits"], -1), tf.argmax(features["teacher_logits"], -1)), tf.float32)
        return tf.reduce_sum(same * mask, -1) / tf.maximum(tf.reduce_sum(mask, -1), 1.0)

    def score(self, dataset, data, outputs, reference):
        from edgekit.tasks.iob import entity_scores
        from edgekit.tasks.word_windows import word_tags

        names = dataset.tag_names
        predicted = word_tags(data.meta, outputs["logits"])
        scores = entity_scores([[names[t] for t in s] for s in dataset.tags],
                               [[names[t] for t in s] for s in predicted])
        metrics = {k: scores[k] for k in ("f1", "precision", "recall")}
        if reference is not None:
            fp32 = word_tags(data.meta, reference["logits"])
            same = np.concatenate([a == b for a, b in zip(predicted, fp32)])
            metrics["agreement"] = float(same.mean())
        metrics.update({f"f1_{kind}": row["f1"] for kind, row in sorted(scores["per_type"].items())})
        return metrics
