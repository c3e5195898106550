"""A loaded checkpoint: config + tf-keras model + tokenizer, and saving it back in HF layout."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.atomic import atomic_dir
from edgekit.models.bert_config import BertConfig
from edgekit.models.checkpoint import (CONFIG_FILE, assign_weights, check_weights, read_config, read_weights,
                                       write_checkpoint)
from edgekit.models.registry import resolve_model
from edgekit.models.tokenizer import TextTokenizer


@dataclass(frozen=True)
class Pretrained:
    """What ``load_pretrained`` returns; ``model`` is a tf-keras functional model. Its tokenizer
    always fits its word-embedding table (checked here, so that every way of making one checks)."""

    config: BertConfig
    model: Any
    tokenizer: TextTokenizer
    source: Path

    def __post_init__(self) -> None:
        self.tokenizer.check_fits(self.config.vocab_size, Path(self.source) / CONFIG_FILE)

    def save(self, folder: str | Path, *, pad_pruned_heads: bool = False) -> Path:
        """Write a HF-layout folder (config.json, model.safetensors, tokenizer files) atomically.

        A head-pruned model is written with transformers' ``pruned_heads`` (smaller tensors,
        loaded by edgekit and transformers 4.x); ``pad_pruned_heads=True`` writes the removed
        heads as zeros instead (full-size tensors, identical outputs), which transformers 5
        needs because it no longer supports head pruning.
        """
        with atomic_dir(folder) as tmp:
            write_checkpoint(tmp, self.model, self.config, pad_pruned_heads=pad_pruned_heads)
            self.tokenizer.save(tmp)
        return Path(folder)


def load_pretrained(
    source: str | Path,
    *,
    pooling: str | None = None,
    output_hidden_states: bool = False,
    output_attentions: bool = False,
) -> Pretrained:
    """Load a built-in alias (``minilm-l6``) or a HF folder into edgekit's tf-keras encoder."""
    folder = resolve_model(source)
    weights = read_weights(folder)
    config = read_config(folder, weights, pooling=pooling)
    tokenizer = TextTokenizer(folder)
    tokenizer.check_fits(config.vocab_size, folder / CONFIG_FILE)
    check_weights(config, weights, folder)
    from edgekit.models.encoder import build_encoder  # TensorFlow only once the files check out
    model = build_encoder(config, output_hidden_states=output_hidden_states, output_attentions=output_attentions)
    assign_weights(model, config, weights)
    return Pretrained(config=config, model=model, tokenizer=tokenizer, source=folder)
