"""``text-classification``: one label per text, or per text pair (``text_pair_column``: NLI,
cross-encoder reranking). Head: ``classifier`` on the pooled vector -> ``logits`` [B, labels].
Metrics: ``accuracy`` on the labels, ``agreement`` (same argmax) with the fp32 model."""

from __future__ import annotations

from edgekit.config.enums import DataFormat, Task
from edgekit.tasks.base import Head, TaskSpec


class TextClassification(TaskSpec):
    task = Task.TEXT_CLASSIFICATION
    head_layer = "classifier"
    architecture = "BertForSequenceClassification"
    formats = (DataFormat.TSV, DataFormat.CSV, DataFormat.JSONL)
    gates = ("min_accuracy", "max_accuracy_drop", "min_agreement")
    metrics = ("accuracy", "agreement")

    def head(self, config) -> Head:
        return Head("pooled", self.head_layer, config.num_labels, ("logits",))

    def read_splits(self, section):
        from edgekit.data import load_splits

        return load_splits(section)

    def features(self, dataset, tokenizer, max_length, input_names):
        from edgekit.train.batching import TokenizedDataset

        return TokenizedDataset.from_texts(dataset, tokenizer, max_length, input_names)

    def label_names(self, dataset) -> tuple[str, ...]:
        return dataset.label_names

    def loss(self, out, features):
        from edgekit._tf import tf_modules

        tf, keras = tf_modules()
        logits, labels = out["logits"], features["labels"]
        loss = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        return loss, tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)

    def soft_loss(self, out, features, temperature):
        return soft_cross_entropy(out["logits"], features["teacher_logits"], temperature)

    def agreement(self, out, features):
        from edgekit._tf import tf_modules

        tf, _ = tf_modules()
        return tf.cast(tf.equal(tf.argmax(out["logits"], -1), tf.argmax(features["teacher_logits"], -1)), tf.float32)

    def score(self, dataset, data, outputs, reference):
        logits = outputs["logits"]
        metrics = {}
        if dataset.labels is not None:
            metrics["accuracy"] = float((logits.argmax(-1) == dataset.labels).mean())
        if reference is not None:
            metrics["agreement"] = float((logits.argmax(-1) == reference["logits"].argmax(-1)).mean())
        return metrics


def soft_cross_entropy(logits, teacher_logits, temperature: float, mask=None):
    """``T²·KL(softmax(teacher/T) ‖ softmax(student/T))`` over the last axis; averaged over the
    positions where ``mask`` [B, S] is 1 when the logits are per token ([B, S, L] -> [B])."""
    from edgekit._tf import tf_modules

    tf, _ = tf_modules()
    p_teacher = tf.nn.softmax(teacher_logits / temperature)
    log_student = tf.nn.log_softmax(logits / temperature)
    kl = tf.reduce_sum(p_teacher * (tf.math.log(p_teacher + 1e-9) - log_student), -1) * temperature ** 2
    if mask is None:
        return kl
    return tf.reduce_sum(kl * mask, -1) / tf.maximum(tf.reduce_sum(mask, -1), 1.0)

