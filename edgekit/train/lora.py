"""LoRA: train low-rank adapters on a frozen encoder, then merge them into its weights.

``add_adapters`` wraps each target dense of ``build_encoder``'s graph (``lora.targets``) so it
computes ``W x + b + (alpha / r) · dropout(x) A B`` (Keras layout: A [in, r], B [r, out]; A drawn
as peft draws it, B zeros, so training starts at the base model). Every other weight is frozen
but the task head and the sentence head's dense layer, which train whole. The blocks of an ALBERT
layer group share one adapter, as they share their weights, so merging keeps the groups and the
adapter has peft's names (``models.peft_layout``). ``Adapted.merge`` folds ``A B · alpha / r``
into the kernels: the stage publishes that plain model, with the adapter beside it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit import tasks
from edgekit._tf import tf_modules
from edgekit.config import LoraSection, LoraTarget
from edgekit.errors import ConfigError, ModelLoadError
from edgekit.models import families
from edgekit.models.checkpoint import assign_weights, collect_weights
from edgekit.models.families import sharing
from edgekit.models.peft_layout import PeftAdapter, hf_names, read_adapter, write_adapter
from edgekit.models.pretrained import Pretrained
from edgekit.models.weight_layout import weight_slots

tf, keras = tf_modules()

# Keras layer names (``layer_<i>_...``) each target matches; MobileBERT's stacked FFNs are ``ffn_<j>_...``.
_TARGETS = {LoraTarget.QUERY: "query", LoraTarget.KEY: "key", LoraTarget.VALUE: "value",
            LoraTarget.ATTENTION_OUTPUT: "attention_output", LoraTarget.FFN_IN: r"(?:ffn_\d+_)?intermediate",
            LoraTarget.FFN_OUT: r"(?:ffn_\d+_)?output"}


class LowRank(keras.layers.Layer):
    """``dropout(x) A B · scale``: [..., in] -> [..., units]."""

    def __init__(self, rank: int, units: int, scale: float, dropout: float, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.rank, self.units, self.scale, self.seed = rank, units, scale, seed
        self.dropout = keras.layers.Dropout(dropout)

    def build(self, input_shape):
        bound = 1.0 / float(input_shape[-1]) ** 0.5  # peft: kaiming_uniform_(a=sqrt(5)) on [r, in]
        self.a = self.add_weight("lora_a", (input_shape[-1], self.rank),
                                 initializer=keras.initializers.RandomUniform(-bound, bound, seed=self.seed))
        self.b = self.add_weight("lora_b", (self.rank, self.units), initializer="zeros")
        super().build(input_shape)

    def call(self, x, training=None):
        low = tf.einsum("...i,ir->...r", self.dropout(x, training=training), self.a)
        return tf.einsum("...r,ro->...o", low, self.b) * self.scale

    def delta(self) -> np.ndarray:
        """``A B · scale`` [in, out]: what merging adds to the kernel."""
        return (self.a.numpy() @ self.b.numpy()) * self.scale


class AdaptedDense(keras.layers.Layer):
    """A frozen Dense (the base model's own layer) plus its adapter; same name as the Dense."""

    def __init__(self, dense, adapter: LowRank, **kwargs):
        super().__init__(name=dense.name, **kwargs)
        self.dense, self.adapter = dense, adapter

    def call(self, x, training=None):
        return self.dense(x) + self.adapter(x, training=training)


@dataclass
class Adapted:
    """A model training adapters: ``model`` shares every layer with ``base.model`` but the
    wrapped dense ones. ``layers``: Keras layer -> HF module; ``adapters``: HF module -> LowRank."""

    base: Pretrained
    model: object
    settings: LoraSection
    layers: dict[str, str]
    adapters: dict[str, LowRank]
    head_layers: tuple[str, ...]

    @property
    def pretrained(self) -> Pretrained:
        """The adapted model as a ``Pretrained`` (what the training loops take)."""
        return dataclasses.replace(self.base, model=self.model)

    def counts(self) -> dict:
        """Trainable and total parameters (the base's, without the adapters)."""
        trainable = int(sum(np.prod(v.shape) for v in self.model.trainable_variables))
        total = int(self.base.model.count_params())
        return {"trainable_params": trainable, "base_params": total, "trainable_share": round(trainable / total, 5),
                "adapted_layers": len(self.layers), "adapters": len(self.adapters)}

    def adapter(self, base: str | None) -> PeftAdapter:
        """The adapters and the whole-trained heads in peft's layout (``base``: the base checkpoint)."""
        config = self.base.config
        lora = {module: (a.a.numpy().T, a.b.numpy().T) for module, a in self.adapters.items()}
        heads = {s.layer: s for s in weight_slots(config)}
        tensors = {}
        for layer in self.head_layers:
            values = self.base.model.get_layer(layer).get_weights()
            for name, value in zip(heads[layer].hf_names, values):
                tensors[name] = value.T if heads[layer].transpose else value
        saved = {hf: tensors[name] for name, hf in hf_names(config, list(tensors)).items()}
        s = self.settings
        return PeftAdapter(rank=s.rank, alpha=s.alpha, dropout=s.dropout, task=config.task, lora=lora, saved=saved,
                           base=base)

    def save_adapter(self, folder: Path, base: str | None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        write_adapter(folder, self.adapter(base), families.get(self.base.config.model_type).base_prefix)
        return folder

    def merge(self) -> Pretrained:
        """The base model with every adapter folded into its kernels, all layers trainable again.
        ``model`` must not be used after this (it would add the adapters twice)."""
        for layer, module in self.layers.items():
            kernel = self.base.model.get_layer(layer).kernel
            kernel.assign(kernel.numpy() + self.adapters[module].delta())
        for layer in self.base.model.layers:
            layer.trainable = True
        return self.base


def target_layers(config, targets) -> list[str]:
    """The Keras layers of ``build_encoder(config)`` that ``targets`` name, in graph order."""
    names = "|".join(_TARGETS[LoraTarget(t)] for t in targets)
    pattern = re.compile(rf"layer_\d+_(?:{names})")
    return [s.layer for s in weight_slots(config) if pattern.fullmatch(s.layer)]


def _modules(pretrained: Pretrained, layers: list[str]) -> dict[str, str]:
    """Keras layer -> the HF module peft names its adapter by (ALBERT: its group's stored layer)."""
    config = pretrained.config
    slots = {s.layer: s for s in weight_slots(config)}
    names = {layer: slots[layer].hf_names[0] for layer in layers}
    if families.get(config.model_type).shared_layers:
        groups, _ = sharing.share(collect_weights(pretrained.model, config), config.num_layers)
        for layer, name in names.items():
            block = int(layer.split("_")[1])
            names[layer] = name.replace(f"{sharing.LAYER}{block}.",
                                        f"{sharing.LAYER}{block * groups // config.num_layers}.", 1)
    hf = hf_names(config, sorted(set(names.values())))
    return {layer: hf[name].removesuffix(".weight") for layer, name in names.items()}


def _head_layers(config) -> tuple[str, ...]:
    head = tasks.for_config(config).head(config)
    return tuple(n for n in (("pooler",) if config.pooling == "pooler" else ()) + ((head.layer,) if head else ()))


def add_adapters(pretrained: Pretrained, settings: LoraSection, *, seed: int, key: str = "lora") -> Adapted:
    """``pretrained`` with adapters on ``settings.targets``; call inside the strategy's scope.
    ``key`` names the recipe section in errors (``distill.lora``)."""
    layers = target_layers(pretrained.config, settings.targets)
    model = pretrained.model
    narrowest = min(min(model.get_layer(n).kernel.shape) for n in layers)
    if settings.rank > narrowest:
        raise ConfigError(f"{key}.rank: expected at most {narrowest} (the narrowest target layer's width), "
                          f"got {settings.rank}")
    modules = _modules(pretrained, layers)
    adapters: dict[str, LowRank] = {}
    for i, layer in enumerate(layers):
        if modules[layer] not in adapters:
            dense = model.get_layer(layer)
            adapters[modules[layer]] = LowRank(settings.rank, dense.units, settings.alpha / settings.rank,
                                               settings.dropout, seed + i, name=f"{layer}_lora")
    heads = _head_layers(pretrained.config)
    for layer in model.layers:
        layer.trainable = layer.name in heads
    wrapped = keras.models.clone_model(model, clone_function=lambda layer: AdaptedDense(
        layer, adapters[modules[layer.name]]) if layer.name in modules else layer)
    return Adapted(base=pretrained, model=wrapped, settings=settings, layers=modules, adapters=adapters,
                   head_layers=heads)


def load_adapter(pretrained: Pretrained, folder: Path) -> Adapted:
    """``pretrained`` (the adapter's base) with a peft LoRA adapter folder applied: its
    adapters on their layers, its whole-trained modules in place of the base's."""
    adapter = read_adapter(folder)
    config = pretrained.config
    if adapter.task != config.task:
        raise ModelLoadError(f"{folder}: a {adapter.task} adapter on a {config.task} model (expected the same task)")
    every = target_layers(config, list(LoraTarget))
    by_module: dict[str, list[str]] = {}
    for layer, module in _modules(pretrained, every).items():
        by_module.setdefault(module, []).append(layer)
    unknown = sorted(set(adapter.lora) - set(by_module))
    if unknown:
        raise ModelLoadError(f"{folder}: adapter module {unknown[0]!r} is not a dense layer edgekit adapts in this "
                             f"{config.model_type} model (expected e.g. {next(iter(by_module))!r})")
    tensors = collect_weights(pretrained.model, config)
    hf = {v: k for k, v in hf_names(config, list(tensors)).items()}
    odd = next((n for n in adapter.saved if n not in hf), None)
    if odd is not None:
        raise ModelLoadError(f"{folder}: saved tensor {odd!r} is not one of this {config.model_type} model's")
    for name, value in adapter.saved.items():
        if value.shape != tensors[hf[name]].shape:
            raise ModelLoadError(f"{folder}: saved tensor {name!r}: expected shape {tensors[hf[name]].shape}, "
                                 f"got {value.shape}")
        tensors[hf[name]] = value
    assign_weights(pretrained.model, config, tensors)
    targets = tuple(t for t in LoraTarget if any(layer in target_layers(config, [t]) for m in adapter.lora
                                                 for layer in by_module[m]))
    settings = LoraSection(rank=adapter.rank, alpha=adapter.alpha, dropout=adapter.dropout, targets=targets)
    adapted = add_adapters(pretrained, settings, seed=0)
    for module, (a, b) in adapter.lora.items():
        lowrank = adapted.adapters[module]
        if lowrank.a.shape != a.T.shape or lowrank.b.shape != b.T.shape:
            raise ModelLoadError(f"{folder}: {module}: expected lora_A {tuple(lowrank.a.shape[::-1])} and lora_B "
                                 f"{tuple(lowrank.b.shape[::-1])}, got {a.shape} and {b.shape}")
        lowrank.a.assign(a.T)
        lowrank.b.assign(b.T)
    for module in set(adapted.adapters) - set(adapter.lora):  # a target the adapter leaves out: no update
        adapted.adapters[module].b.assign(np.zeros(adapted.adapters[module].b.shape, np.float32))
    return adapted
