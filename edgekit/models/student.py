"""A distillation student's architecture and starting weights from its teacher's (TF-free:
recipe checks build the config before any training; ``train.distill`` builds the model).

The student keeps the teacher's family unless ``distill.student.family`` names another whose
layout the teacher's weights map onto exactly: ``distilbert`` (DistilBERT itself was initialised
from every other BERT layer) drops the token types, folding type 0's row into the position
table, so single-sequence inputs give the same embeddings; its sentence head's dense layer
(ReLU) starts from the teacher's pooler when there is one.
"""

from __future__ import annotations

import numpy as np

from edgekit.errors import ConfigError
from edgekit.models import families
from edgekit.models.bert_config import BertConfig

# Families a student may be converted to, from a teacher of another family.
CONVERTIBLE = ("distilbert",)


def student_config(teacher: BertConfig, student) -> BertConfig:
    """The student of ``teacher`` for a recipe's ``distill.student`` section (``StudentSection``)."""
    if max(student.layers_from_teacher) >= teacher.num_layers:
        raise ConfigError(f"distill.student.layers_from_teacher: expected indices below the teacher's "
                          f"{teacher.num_layers} layers, got {list(student.layers_from_teacher)}")
    changes = {"num_layers": len(student.layers_from_teacher)}
    for key, name in (("hidden_size", "hidden_size"), ("num_heads", "num_attention_heads"),
                      ("intermediate_size", "intermediate_size")):
        if getattr(student, name) is not None:
            changes[key] = getattr(student, name)
    family = student.family or teacher.model_type
    if family != teacher.model_type:
        if family not in CONVERTIBLE:
            raise ConfigError(f"distill.student.family: a {teacher.model_type} teacher's student can be "
                              f"{teacher.model_type} or {', '.join(CONVERTIBLE)}, got {family}")
        if teacher.bottleneck is not None:
            raise ConfigError(f"distill.student.family: a {teacher.model_type} teacher's blocks are bottlenecked; a "
                              f"{family} student cannot start from them (expected {teacher.model_type})")
        if teacher.position_offset or teacher.embedding_size is not None:
            raise ConfigError(f"distill.student.family: a {teacher.model_type} teacher's positions start at "
                              f"{teacher.position_offset} and its embeddings are {teacher.embedding_width} wide; a "
                              f"{family} student needs positions from 0 and embeddings of the hidden size")
        fixed = families.get(family).fixed.get("layer_norm_eps", teacher.layer_norm_eps)
        if fixed != teacher.layer_norm_eps:  # the family's config.json cannot say another epsilon
            raise ConfigError(f"distill.student.family: a {family} model's LayerNorm epsilon is {fixed:g}, the "
                              f"teacher's {teacher.layer_norm_eps:g}")
        changes.update(model_type=family, type_vocab_size=0)
        if teacher.task == "text-classification":
            changes["pooling"] = "pooler"
    return teacher.replace(**changes)


def student_tensors(teacher: BertConfig, config: BertConfig, tensors: dict[str, np.ndarray],
                    layers: tuple[int, ...], seed: int = 0) -> dict[str, np.ndarray]:
    """The student's starting weights (edgekit's names) from the teacher's: teacher layer
    ``layers[i]`` becomes layer i, every tensor sliced to the student's (narrower) shape;
    token types folded into positions and a missing sentence-head dense layer drawn N(0, 0.02)
    when the family changes."""
    from edgekit.models.weight_layout import weight_slots

    layer_map = {t: i for i, t in enumerate(layers)}
    renamed = {}
    for name, value in tensors.items():
        parts = name.split(".")
        if "layer" in parts and parts[parts.index("layer") + 1].isdigit():
            at = parts.index("layer") + 1
            if int(parts[at]) not in layer_map:
                continue
            parts[at] = str(layer_map[int(parts[at])])
        renamed[".".join(parts)] = value
    if teacher.type_vocab_size and not config.type_vocab_size:
        position = "embeddings.position_embeddings.weight"
        renamed[position] = renamed[position] + renamed.pop("embeddings.token_type_embeddings.weight")[0]
    rng = np.random.default_rng(seed)
    out = {}
    for slot in weight_slots(config):
        for name, shape in zip(slot.hf_names, slot.shapes):
            if name in renamed:
                out[name] = renamed[name][tuple(slice(0, d) for d in shape)]
            elif name.startswith("pooler."):  # a new sentence head's dense layer
                out[name] = (rng.normal(0, 0.02, shape) if name.endswith("weight") else np.zeros(shape)).astype(
                    np.float32)
            else:
                raise ConfigError(f"the teacher has no {name} for the student")
    return out
