"""Load a checkpoint for a task, attaching a fresh head when it has none (or other labels)."""

from __future__ import annotations

import numpy as np

from edgekit import tasks
from edgekit.config.enums import Task
from edgekit.models import families
from edgekit.models.checkpoint import assign_weights, check_weights, read_config, read_weights
from edgekit.models.pretrained import Pretrained
from edgekit.models.registry import resolve_model
from edgekit.models.tokenizer import TextTokenizer


def load_task_model(source, task: Task | str, labels: tuple[str, ...] = (), *, pooling: str | None = None,
                    seed: int = 0, output_hidden_states: bool = False, output_attentions: bool = False) -> Pretrained:
    """A model for ``task`` (over ``labels`` for the classification tasks) from any BERT-class checkpoint.

    A head of the same task and labels is kept; otherwise a new one is drawn N(0, 0.02) with
    ``seed``. A sentence-transformers encoder becomes a sentence classifier on BERT's pooler (so
    transformers' BertForSequenceClassification computes the same logits) unless ``pooling`` says
    otherwise; its L2 normalisation is dropped, since it would cap the logits' scale. A family whose
    sentence head has its own dense layer (DistilBERT's pre_classifier) gets a fresh one. Per-token
    heads read token states, so their models carry no pooler.
    """
    spec = tasks.get(task)
    folder = resolve_model(source)
    weights = read_weights(folder)
    config = read_config(folder, weights, pooling=pooling)
    family_head = families.get(config.model_type).sentence_dense
    if (config.task, config.id2label) != (spec.name, tuple(labels)):
        weights = {k: v for k, v in weights.items() if not k.startswith(("classifier.", "qa_outputs."))}
        changes = {"task": spec.name, "num_labels": len(labels), "id2label": tuple(labels)}
        if spec.task is Task.TEXT_CLASSIFICATION:
            changes["pooling"] = pooling or ("pooler" if "pooler.dense.weight" in weights or family_head
                                             else config.pooling)
            changes["normalize"] = False
        elif spec.task is not Task.FEATURE_EXTRACTION:  # per-token heads
            changes.update(pooling="cls", normalize=False)
            weights = {k: v for k, v in weights.items() if not k.startswith("pooler.")}
        config = config.replace(**changes)
        head = spec.head(config)
        rng = np.random.default_rng(seed)
        if config.pooling == "pooler" and "pooler.dense.weight" not in weights:
            weights["pooler.dense.weight"] = rng.normal(0, 0.02, (config.hidden_size,) * 2).astype(np.float32)
            weights["pooler.dense.bias"] = np.zeros(config.hidden_size, np.float32)
        if head is not None:
            weights[f"{head.layer}.weight"] = rng.normal(0, 0.02, (head.width, config.hidden_size)).astype(np.float32)
            weights[f"{head.layer}.bias"] = np.zeros(head.width, np.float32)
    check_weights(config, weights, folder)
    from edgekit.models.encoder import build_encoder  # TensorFlow only once the files check out

    model = build_encoder(config, output_hidden_states=output_hidden_states, output_attentions=output_attentions)
    assign_weights(model, config, weights)
    return Pretrained(config=config, model=model, tokenizer=TextTokenizer(folder), source=folder)

