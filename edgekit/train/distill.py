"""Distil a teacher into a smaller BERT-class student.

Loss per example, for a task with labels:
``alpha·soft + (1−alpha)·hard + w_h·MSE(hidden) + w_a·KL(attention)``, where ``soft`` is the
task's loss toward the teacher's outputs (``TaskSpec.soft_loss``: T²·KL per sentence, per token,
per start/end position) and ``hard`` its supervised loss on the labels. Feature extraction:
``soft`` alone (MSE to the teacher's sentence vectors) plus the same layer terms.
The teacher's outputs and the hidden states of the mapped layers are computed once
(``TeacherCache``); attention maps ([heads, S, S] per example) are too large to keep and are
recomputed by the teacher in the step when their weight is non-zero.
"""

from __future__ import annotations

import dataclasses
import os
import zipfile
from pathlib import Path

import numpy as np

from edgekit import tasks
from edgekit._tf import tf_modules
from edgekit.config import DistillSection
from edgekit.models.checkpoint import assign_weights, collect_weights
from edgekit.models.encoder import build_encoder
from edgekit.models.pretrained import Pretrained
from edgekit.models.student import student_config, student_tensors
from edgekit.train.batching import Batch, TokenizedDataset, collect
from edgekit.train.loop import FitResult, fit

tf, keras = tf_modules()


def build_student(teacher: Pretrained, section: DistillSection) -> Pretrained:
    """The student (``models.student``: the teacher's chosen layers, sliced to a narrower width,
    in the student's family); it outputs hidden states / attentions when the section's
    layer-transfer weights need them."""
    config = student_config(teacher.config, section.student)
    model = build_encoder(config, output_hidden_states=bool(section.hidden_loss_weight),
                          output_attentions=bool(section.attention_loss_weight))
    weights = student_tensors(teacher.config, config, collect_weights(teacher.model, teacher.config),
                              section.student.layers_from_teacher)
    assign_weights(model, config, weights)
    return Pretrained(config=config, model=model, tokenizer=teacher.tokenizer, source=teacher.source)


class HiddenFile:
    """Teacher hidden states [T, k, H] float16 in a .npy file, read one row's tokens at a time
    with ``os.pread``: a distillation epoch touches every row, and a memory map would count each
    page it touched in the process's resident memory (RSS grows with the data; reads do not)."""

    def __init__(self, path: Path):
        mapped = np.load(path, mmap_mode="r")  # header only: no page of the data is read
        shape, header = mapped.shape, mapped.offset
        if mapped.dtype != np.float16 or mapped.ndim != 3 or not mapped.flags.c_contiguous:
            raise ValueError(f"{path}: not a C-order float16 [T, k, H] array")
        del mapped
        self.header, self.shape = header, tuple(shape)
        self.row_bytes = shape[1] * shape[2] * 2
        if path.stat().st_size != self.header + shape[0] * self.row_bytes:
            raise ValueError(f"{path}: cut short")
        self._fd = os.open(path, os.O_RDONLY)

    @staticmethod
    def create(path: Path, shape: tuple[int, int, int]) -> int:
        """Write the .npy header of a float16 ``shape`` array and size the file (sparse: no data
        written); returns the header's length, where token 0 starts."""
        with open(path, "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f2", "fortran_order": False, "shape": shape})
            header = f.tell()
            f.truncate(header + shape[0] * shape[1] * shape[2] * 2)
        return header

    def __len__(self) -> int:
        return self.shape[0]

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def tokens(self, start: int, end: int) -> np.ndarray:
        """Tokens start..end-1: float16 [end - start, k, H]."""
        data = os.pread(self._fd, (end - start) * self.row_bytes, self.header + start * self.row_bytes)
        return np.frombuffer(data, np.float16).reshape((end - start,) + self.shape[1:])


@dataclasses.dataclass
class TeacherCache:
    """Teacher outputs for every training row: ``targets`` {output name: [N, ...]} (per-token
    outputs padded to the longest row) and, when layers are mapped, hidden states as concatenated
    real tokens in ``hidden`` ([T, k, H] float16 on disk, ``HiddenFile``) with ``offsets`` [N + 1]
    into it. Size on disk: T × k × H × 2 bytes (SST-2's 60,614 rows, 3 layers of 384: see README)."""

    targets: dict[str, np.ndarray]
    per_token: tuple[str, ...] = ()  # targets that are [N, S, ...]: cut or padded to each batch's S
    hidden: HiddenFile | None = None
    offsets: np.ndarray | None = None

    @classmethod
    def compute(cls, teacher: Pretrained, data: TokenizedDataset, layers: tuple[int, ...] | None,
                folder: Path, batch_size: int = 128) -> "TeacherCache":
        """One teacher pass over ``data`` saved in ``folder``: its task outputs and, when layers are
        mapped, their hidden states, written batch by batch into the file (never whole in RAM).
        Each file is renamed into place, the targets last: their presence means a whole cache."""
        outputs = tasks.for_config(teacher.config).outputs(teacher.config)
        fn = tf.function(lambda x: teacher.model(x, training=False), reduce_retracing=True)
        offsets = np.concatenate([[0], np.cumsum(data.lengths)]).astype(np.int64)
        folder.mkdir(parents=True, exist_ok=True)
        if layers:
            hidden_tmp = folder / ".teacher_hidden.tmp.npy"
            shape = (int(offsets[-1]), len(layers), teacher.config.hidden_size)
            row_bytes = shape[1] * shape[2] * 2
            header = HiddenFile.create(hidden_tmp, shape)
            fd = os.open(hidden_tmp, os.O_WRONLY)

        def write_hidden(batch: Batch, out) -> None:  # pwrite: a memory map's dirty pages count in RSS
            state = np.stack([out["hidden_states"][j + 1].numpy() for j in layers], axis=2).astype(np.float16)
            for r, row in enumerate(batch.rows):
                os.pwrite(fd, state[r, :data.lengths[row]].tobytes(), header + int(offsets[row]) * row_bytes)

        try:
            targets = collect(lambda x: fn({k: tf.constant(v) for k, v in x.items()}), data, outputs, batch_size,
                              on_batch=write_hidden if layers else None)
            if layers:
                os.fsync(fd)
        finally:
            if layers:
                os.close(fd)
        if layers:
            hidden_tmp.replace(folder / "teacher_hidden.npy")
            tmp = folder / ".teacher_offsets.tmp.npy"
            np.save(tmp, offsets)
            tmp.replace(folder / "teacher_offsets.npy")
        tmp = folder / ".teacher_targets.tmp.npz"
        np.savez(tmp, **targets)  # collect's outputs: float32
        tmp.replace(folder / "teacher_targets.npz")
        return cls.load(folder, data, outputs, layers)

    @classmethod
    def in_folder(cls, folder: Path, teacher: Pretrained, data: TokenizedDataset,
                  layers: tuple[int, ...] | None) -> "TeacherCache":
        """The cache saved in ``folder`` (a resumed stage), else computed now and saved there."""
        outputs = tasks.for_config(teacher.config).outputs(teacher.config)
        cache = cls.load(folder, data, outputs, layers)
        return cache if cache is not None else cls.compute(teacher, data, layers, folder)

    @classmethod
    def load(cls, folder: Path, data: TokenizedDataset, outputs, layers: tuple[int, ...] | None
             ) -> "TeacherCache | None":
        """The cache in ``folder`` if it is whole for ``data``, the task's ``outputs`` and ``layers``;
        None (compute it again) when it is missing, cut short by a killed run or edited: the stage
        would train on it."""
        try:
            with np.load(folder / "teacher_targets.npz") as saved:
                cache = cls({name: saved[name] for name in saved.files}, tuple(o.name for o in outputs if o.per_token))
            if layers:
                cache.hidden = HiddenFile(folder / "teacher_hidden.npy")
                cache.offsets = np.load(folder / "teacher_offsets.npy")
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):  # missing, truncated, not .npy/.npz
            return None
        whole = sorted(cache.targets) == sorted(o.name for o in outputs) and all(
            len(t) == len(data) for t in cache.targets.values()) and (not layers or (
                cache.hidden.shape[1] == len(layers)
                and np.array_equal(cache.offsets, np.concatenate([[0], np.cumsum(data.lengths)]))
                and len(cache.hidden) == cache.offsets[-1]))
        return cache if whole else None

    def extras(self, batch: Batch) -> dict[str, np.ndarray]:
        b, s = batch.inputs["input_ids"].shape
        out = {}
        for name, values in self.targets.items():
            value = values[batch.rows]
            if name in self.per_token:
                value = np.pad(value[:, :s], [(0, 0), (0, max(0, s - value.shape[1]))] + [(0, 0)] * (value.ndim - 2))
            out[f"teacher_{name}"] = value
        if self.hidden is not None:
            padded = np.zeros((b, s) + self.hidden.shape[1:], np.float32)
            for r, row in enumerate(batch.rows):
                start, end = int(self.offsets[row]), int(self.offsets[row + 1])
                padded[r, :end - start] = self.hidden.tokens(start, end)
            out["teacher_hidden"] = padded
        return out


def distillation_loss(student: Pretrained, section: DistillSection, *, projection=None, teacher_model=None):
    """The per-example loss above; ``projection`` maps a narrower student width to the teacher's."""
    model, task = student.model, tasks.for_config(student.config)
    names = tuple(model.input_names)
    temperature, alpha = section.temperature, section.alpha

    def loss_fn(features, training):
        inputs = {n: features[n] for n in names}
        out = model(inputs, training=training)
        mask = tf.cast(features["attention_mask"], tf.float32)
        loss = task.soft_loss(out, features, temperature)
        if task.needs_labels:
            loss *= alpha
            if alpha < 1.0 and any(k in features for k in ("labels", "token_labels", "start_positions")):
                loss += (1.0 - alpha) * task.loss(out, features)[0]
        score = task.agreement(out, features)
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
            section: DistillSection, *, seed: int, strategy, work_dir: Path | None = None,
            show_progress: bool = True, teacher_attention_model=None, description: str = "distill") -> FitResult:
    """Train ``student`` (built in ``strategy.scope()``, with hidden states if mapped) in place."""
    trackables, projection = {}, None
    if section.hidden_loss_weight and student.config.hidden_size != teacher.config.hidden_size:
        with strategy.scope():
            projection = keras.layers.Dense(teacher.config.hidden_size, use_bias=False, name="hidden_projection")
            projection.build((None, None, None, student.config.hidden_size))
        trackables["projection"] = projection
    loss_fn = distillation_loss(student, section, projection=projection,
                                teacher_model=teacher_attention_model)
    return fit(model=student.model, loss_fn=loss_fn, data=data, schedule=section, seed=seed, strategy=strategy,
               description=description, extras=cache.extras, trackables=trackables, work_dir=work_dir,
               show_progress=show_progress)
