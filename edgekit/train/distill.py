"""Distil a teacher into a smaller BERT-class student.

Loss per example (classification):
``alpha·T²·KL(p_teacher(T) ‖ p_student(T)) + (1−alpha)·CE(label) + w_h·MSE(hidden) + w_a·KL(attention)``.
Feature extraction: ``MSE(student pooled, teacher pooled)`` (+ the same layer terms).
The teacher's logits / pooled vectors and the hidden states of the mapped layers are computed
once (``TeacherCache``); attention maps ([heads, S, S] per example) are too large to keep and
are recomputed by the teacher in the step when their weight is non-zero.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from edgekit._tf import tf_modules
from edgekit.config import DistillSection
from edgekit.models.checkpoint import assign_weights, collect_weights
from edgekit.models.encoder import build_encoder
from edgekit.models.pretrained import Pretrained
from edgekit.train.batching import Batch, TokenizedDataset
from edgekit.train.loop import FitResult, fit

tf, keras = tf_modules()


def student_config(teacher: Pretrained, section: DistillSection):
    s = section.student
    if max(s.layers_from_teacher) >= teacher.config.num_layers:
        from edgekit.errors import ConfigError

        raise ConfigError(f"distill.student.layers_from_teacher: expected indices below the teacher's "
                          f"{teacher.config.num_layers} layers, got {list(s.layers_from_teacher)}")
    changes = {"num_layers": len(s.layers_from_teacher)}
    for key, name in (("hidden_size", "hidden_size"), ("num_heads", "num_attention_heads"),
                      ("intermediate_size", "intermediate_size")):
        if getattr(s, name) is not None:
            changes[key] = getattr(s, name)
    return teacher.config.replace(**changes)


def build_student(teacher: Pretrained, section: DistillSection) -> Pretrained:
    """The student, initialised from the chosen teacher layers (sliced to a narrower width);
    it outputs hidden states / attentions when the section's layer-transfer weights need them."""
    config = student_config(teacher, section)
    model = build_encoder(config, output_hidden_states=bool(section.hidden_loss_weight),
                          output_attentions=bool(section.attention_loss_weight))
    source = collect_weights(teacher.model, teacher.config)
    layer_map = {t: i for i, t in enumerate(section.student.layers_from_teacher)}
    renamed = {}
    for name, value in source.items():
        parts = name.removeprefix("bert.").split(".")
        if "layer" in parts and parts[parts.index("layer") + 1].isdigit():
            at = parts.index("layer") + 1
            if int(parts[at]) not in layer_map:
                continue
            parts[at] = str(layer_map[int(parts[at])])
        renamed[".".join(parts)] = value
    target = {n.removeprefix("bert."): t for n, t in collect_weights(model, config).items()}
    weights = {n: renamed[n][tuple(slice(0, d) for d in t.shape)] for n, t in target.items()}
    assign_weights(model, config, weights)
    return Pretrained(config=config, model=model, tokenizer=teacher.tokenizer, source=teacher.source)


@dataclasses.dataclass
class TeacherCache:
    """Teacher outputs for every training row: ``targets`` [N, C or H] and, when layers are
    mapped, hidden states as concatenated real tokens ``hidden`` [T, k, H] (float16) with
    ``offsets`` [N + 1] into it."""

    targets: np.ndarray
    hidden: np.ndarray | None = None
    offsets: np.ndarray | None = None

    @classmethod
    def compute(cls, teacher_model, data: TokenizedDataset, target_key: str, layers: tuple[int, ...] | None,
                batch_size: int = 128) -> "TeacherCache":
        call = tf.function(lambda x: teacher_model(x, training=False), reduce_retracing=True)
        targets = [None] * len(data)
        hidden = [None] * len(data) if layers else None
        for batch in data.in_order(batch_size):
            out = call({k: tf.constant(v) for k, v in batch.inputs.items()})
            t = out[target_key].numpy()
            states = np.stack([out["hidden_states"][j + 1].numpy() for j in layers], axis=2) if layers else None
            for r, row in enumerate(batch.rows):
                targets[row] = t[r]
                if layers:
                    hidden[row] = states[r, :data.lengths[row]].astype(np.float16)
        cache = cls(np.stack(targets).astype(np.float32))
        if layers:
            cache.hidden = np.concatenate(hidden)
            cache.offsets = np.concatenate([[0], np.cumsum(data.lengths)])
        return cache

    def save(self, folder: Path) -> None:
        """Each file renamed into place, the targets last: their presence means a whole cache."""
        for name, array in (("teacher_hidden", self.hidden), ("teacher_offsets", self.offsets),
                            ("teacher_targets", self.targets)):
            if array is not None:
                tmp = folder / f".{name}.tmp.npy"
                np.save(tmp, array)
                tmp.replace(folder / f"{name}.npy")

    @classmethod
    def in_folder(cls, folder: Path, teacher_model, data: TokenizedDataset, target_key: str,
                  layers: tuple[int, ...] | None) -> "TeacherCache":
        """The cache saved in ``folder`` (a resumed stage), else computed now and saved there."""
        folder.mkdir(parents=True, exist_ok=True)
        cache = cls.load(folder, data, layers)
        if cache is None:
            cache = cls.compute(teacher_model, data, target_key, layers)
            cache.save(folder)
        return cache

    @classmethod
    def load(cls, folder: Path, data: TokenizedDataset, layers: tuple[int, ...] | None) -> "TeacherCache | None":
        """The cache in ``folder`` if it is whole for ``data`` and ``layers``; None (compute it again)
        when it is missing, cut short by a killed run or edited: the stage would train on it."""
        try:
            cache = cls(np.load(folder / "teacher_targets.npy"))
            if layers:
                cache.hidden = np.load(folder / "teacher_hidden.npy", mmap_mode="r")
                cache.offsets = np.load(folder / "teacher_offsets.npy")
        except (OSError, ValueError, EOFError):  # missing, truncated, not a .npy file
            return None
        whole = cache.targets.ndim == 2 and len(cache.targets) == len(data) and (not layers or (
            cache.hidden.ndim == 3 and cache.hidden.shape[1] == len(layers)
            and np.array_equal(cache.offsets, np.concatenate([[0], np.cumsum(data.lengths)]))
            and len(cache.hidden) == cache.offsets[-1]))
        return cache if whole else None

    def extras(self, batch: Batch) -> dict[str, np.ndarray]:
        out = {"teacher_targets": self.targets[batch.rows]}
        if self.hidden is not None:
            b, s = batch.inputs["input_ids"].shape
            padded = np.zeros((b, s) + self.hidden.shape[1:], np.float32)
            for r, row in enumerate(batch.rows):
                start, end = self.offsets[row], self.offsets[row + 1]
                padded[r, :end - start] = self.hidden[start:end]
            out["teacher_hidden"] = padded
        return out


def distillation_loss(student, section: DistillSection, *, classify: bool, projection=None, teacher_model=None):
    """The per-example loss above; ``projection`` maps a narrower student width to the teacher's."""
    names = tuple(student.input_names)
    temperature, alpha = section.temperature, section.alpha

    def loss_fn(features, training):
        inputs = {n: features[n] for n in names}
        out = student(inputs, training=training)
        target = features["teacher_targets"]
        mask = tf.cast(features["attention_mask"], tf.float32)
        if classify:
            logits = out["logits"]
            p_teacher = tf.nn.softmax(target / temperature)
            log_student = tf.nn.log_softmax(logits / temperature)
            soft = tf.reduce_sum(p_teacher * (tf.math.log(p_teacher + 1e-9) - log_student), -1) * temperature ** 2
            loss = alpha * soft
            if "labels" in features and alpha < 1.0:
                hard = keras.losses.sparse_categorical_crossentropy(features["labels"], logits, from_logits=True)
                loss += (1.0 - alpha) * hard
            score = tf.cast(tf.equal(tf.argmax(logits, -1), tf.argmax(target, -1)), tf.float32)
        else:
            pooled = out["pooled"]
            loss = tf.reduce_mean(tf.square(pooled - target), -1) * 100.0  # sentence-transformers' scale
            score = -keras.losses.cosine_similarity(pooled, target)
        if section.hidden_loss_weight and "teacher_hidden" in features:
            states = tf.stack(out["hidden_states"][1:], axis=2)  # [B, S, k, H_student]
            if projection is not None:
                states = projection(states)
            per_token = tf.reduce_mean(tf.square(states - features["teacher_hidden"]), axis=[2, 3])
            loss += section.hidden_loss_weight * tf.reduce_sum(per_token * mask, -1) / tf.reduce_sum(mask, -1)
        if section.attention_loss_weight and teacher_model is not None:
            loss += section.attention_loss_weight * _attention_kl(teacher_model, out, inputs, mask, section)
        return loss, score

    return loss_fn


def _attention_kl(teacher_model, student_out, inputs, mask, section):
    """Mean KL between teacher and student attention rows of real query tokens (equal head counts)."""
    teacher_att = teacher_model(inputs, training=False)["attentions"]
    student_att = student_out["attentions"]
    total = 0.0
    for i, t in enumerate(section.student.layers_from_teacher):
        p, q = tf.stop_gradient(teacher_att[t]), student_att[i]
        kl = tf.reduce_sum(p * (tf.math.log(p + 1e-9) - tf.math.log(q + 1e-9)), -1)  # [B, N, S]
        total += tf.reduce_sum(tf.reduce_mean(kl, 1) * mask, -1) / tf.reduce_sum(mask, -1)
    return total / len(section.student.layers_from_teacher)


def distill(teacher: Pretrained, student: Pretrained, data: TokenizedDataset, cache: TeacherCache,
            section: DistillSection, *, classify: bool, seed: int, strategy, work_dir: Path | None = None,
            show_progress: bool = True, teacher_attention_model=None, description: str = "distill") -> FitResult:
    """Train ``student`` (built in ``strategy.scope()``, with hidden states if mapped) in place."""
    trackables, projection = {}, None
    if section.hidden_loss_weight and student.config.hidden_size != teacher.config.hidden_size:
        with strategy.scope():
            projection = keras.layers.Dense(teacher.config.hidden_size, use_bias=False, name="hidden_projection")
            projection.build((None, None, None, student.config.hidden_size))
        trackables["projection"] = projection
    loss_fn = distillation_loss(student.model, section, classify=classify, projection=projection,
                                teacher_model=teacher_attention_model)
    return fit(model=student.model, loss_fn=loss_fn, data=data, schedule=section, seed=seed, strategy=strategy,
               description=description, extras=cache.extras, trackables=trackables, work_dir=work_dir,
               show_progress=show_progress)
