"""Load a checkpoint as a classifier, attaching a fresh head when it has none (or other labels)."""

from __future__ import annotations

import numpy as np

from edgekit.models.checkpoint import assign_weights, check_weights, read_config, read_weights
from edgekit.models.pretrained import Pretrained
from edgekit.models.registry import resolve_model
from edgekit.models.tokenizer import TextTokenizer


def load_classifier(source, labels: tuple[str, ...], *, pooling: str | None = None, seed: int = 0,
                    output_hidden_states: bool = False, output_attentions: bool = False) -> Pretrained:
    """A ``text-classification`` model over ``labels`` from any BERT-class checkpoint.

    A head with the same labels is kept; otherwise a new one is drawn N(0, 0.02) with ``seed``.
    A sentence-transformers encoder becomes a classifier on BERT's pooler (so transformers'
    BertForSequenceClassification computes the same logits) unless ``pooling`` says otherwise;
    its L2 normalisation is dropped, since it would cap the logits' scale.
    """
    folder = resolve_model(source)
    weights = read_weights(folder)
    config = read_config(folder, weights, pooling=pooling)
    if config.id2label != tuple(labels):
        weights = {k: v for k, v in weights.items() if not k.startswith("classifier.")}
        rng = np.random.default_rng(seed)
        weights["classifier.weight"] = rng.normal(0, 0.02, (len(labels), config.hidden_size)).astype(np.float32)
        weights["classifier.bias"] = np.zeros(len(labels), np.float32)
        head_pooling = pooling or ("pooler" if "pooler.dense.weight" in weights else config.pooling)
        config = config.replace(num_labels=len(labels), id2label=tuple(labels), normalize=False, pooling=head_pooling)
    check_weights(config, weights, folder)
    from edgekit.models.encoder import build_encoder  # TensorFlow only once the files check out
    model = build_encoder(config, output_hidden_states=output_hidden_states, output_attentions=output_attentions)
    assign_weights(model, config, weights)
    return Pretrained(config=config, model=model, tokenizer=TextTokenizer(folder), source=folder)
