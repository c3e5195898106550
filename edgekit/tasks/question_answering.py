"""``question-answering`` (extractive, SQuAD v1.1). Head: ``qa_outputs`` on every token ->
``start_logits``, ``end_logits`` [B, S]. Question and context are a pair (token types 0, 1); a
context longer than ``max_length`` becomes overlapping windows (``doc_stride`` tokens shared),
and the answer is the best span over every window's n-best starts and ends (``windows``: the
settings, which an export records in its manifest for the apps that window). Metrics: SQuAD's
``exact_match`` and ``f1`` (official normalisation) and ``agreement``: the share of questions
answered with the fp32 model's answer."""

from __future__ import annotations

from edgekit.config.enums import DataFormat, Task
from edgekit.tasks.base import Head, TaskSpec
from edgekit.tasks.sentence import soft_cross_entropy

DOC_STRIDE, MAX_QUERY_LENGTH, MAX_ANSWER_LENGTH, N_BEST = 128, 64, 30, 20  # BERT's SQuAD settings
SPLITS = ("train", "validation", "test")
SPECIALS = 3  # [CLS] question [SEP] context [SEP]


def windows(max_length: int) -> dict[str, int]:
    """The windowing and decoding settings (tokens; ``n_best`` spans per window) for windows of
    ``max_length`` tokens: BERT's SQuAD settings, the question cut to at most a quarter of a
    window and the stride to at most half of the context's room, so a short export still gives
    most of a window to the context (384: stride 128, question 64; 64: 22 and 16). An export
    writes them as its manifest's ``windows``, for the apps that window and decode."""
    query = min(MAX_QUERY_LENGTH, max_length // 4)
    return {"doc_stride": min(DOC_STRIDE, (max_length - SPECIALS - query) // 2), "max_query_length": query,
            "max_answer_length": MAX_ANSWER_LENGTH, "n_best": N_BEST}


class QuestionAnswering(TaskSpec):
    task = Task.QUESTION_ANSWERING
    head_layer = "qa_outputs"
    architecture = "BertForQuestionAnswering"
    formats = (DataFormat.SQUAD,)
    gates = ("min_f1", "max_f1_drop", "min_exact_match", "max_exact_match_drop", "min_agreement")
    metrics = ("f1", "exact_match", "agreement")

    def head(self, config) -> Head:
        return Head("tokens", self.head_layer, 2, ("start_logits", "end_logits"))

    def read_splits(self, section):
        from edgekit.data.squad import read_squad

        return {name: read_squad(getattr(section, name), articles=getattr(section, f"{name}_articles"),
                                 max_examples=section.max_examples)
                for name in SPLITS if getattr(section, name) is not None}

    def features(self, dataset, tokenizer, max_length, input_names):
        from edgekit.tasks.qa_windows import encode_questions
        from edgekit.train.batching import TokenizedDataset

        settings = windows(max_length)
        meta = encode_questions(tokenizer, dataset, max_length, settings["doc_stride"], settings["max_query_length"])
        return TokenizedDataset(meta.ids, meta.type_ids, pad_id=tokenizer.pad_id, max_length=max_length,
                                input_names=input_names, meta=meta,
                                targets={"start_positions": meta.start_positions, "end_positions": meta.end_positions})

    @staticmethod
    def _masked(out, features):
        """Start/end logits with padding at -1e4 (never a position the softmax picks)."""
        from edgekit._tf import tf_modules

        tf, _ = tf_modules()
        pad = (1.0 - tf.cast(features["attention_mask"], tf.float32)) * -1e4
        return out["start_logits"] + pad, out["end_logits"] + pad

    def loss(self, out, features):
        from edgekit._tf import tf_modules

        tf, keras = tf_modules()
        start, end = self._masked(out, features)
        ce = keras.losses.sparse_categorical_crossentropy
        loss = (ce(features["start_positions"], start, from_logits=True)
                + ce(features["end_positions"], end, from_logits=True)) / 2
        right = tf.logical_and(tf.equal(tf.argmax(start, -1, output_type=tf.int32), features["start_positions"]),
                               tf.equal(tf.argmax(end, -1, output_type=tf.int32), features["end_positions"]))
        return loss, tf.cast(right, tf.float32)

    def soft_loss(self, out, features, temperature):
        start, end = self._masked(out, features)
        teacher_start, teacher_end = self._masked({"start_logits": features["teacher_start_logits"],
                                                   "end_logits": features["teacher_end_logits"]}, features)
        return (soft_cross_entropy(start, teacher_start, temperature)
                + soft_cross_entropy(end, teacher_end, temperature)) / 2

    def agreement(self, out, features):
        from edgekit._tf import tf_modules

        tf, _ = tf_modules()
        same = [tf.equal(tf.argmax(out[k], -1), tf.argmax(features[f"teacher_{k}"], -1))
                for k in ("start_logits", "end_logits")]
        return tf.cast(tf.logical_and(*same), tf.float32)

    def answers(self, dataset, data, outputs) -> dict[str, str]:
        from edgekit.tasks.qa_windows import predict_answers

        return predict_answers(data.meta, dataset, outputs["start_logits"], outputs["end_logits"],
                               n_best=N_BEST, max_answer_length=MAX_ANSWER_LENGTH)

    def score(self, dataset, data, outputs, reference):
        from edgekit.tasks.squad_metric import squad_scores

        answers = self.answers(dataset, data, outputs)
        metrics = squad_scores(answers, dataset)
        metrics = {"f1": metrics["f1"], "exact_match": metrics["exact_match"]}
        if reference is not None:
            fp32 = self.answers(dataset, data, reference)
            metrics["agreement"] = sum(answers[q] == fp32[q] for q in dataset.ids) / max(len(dataset), 1)
        return metrics
