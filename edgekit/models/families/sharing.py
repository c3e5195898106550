"""ALBERT's cross-layer sharing. Its checkpoints store ``num_hidden_groups`` layers; block ``i``
of ``num_hidden_layers`` runs group ``i * groups // layers`` (transformers' ``AlbertTransformer``).
edgekit's builders see one tensor set per block: reading repeats each group for its blocks,
writing stores each run of identical blocks once (the fewest groups the tensors allow: one for an
untouched ALBERT, one per block once fine-tuning or pruning made them differ)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgekit.errors import ModelLoadError

LAYER = "encoder.layer."


def _group(block: int, groups: int, layers: int) -> int:
    return block * groups // layers


def unshare(weights: dict[str, np.ndarray], hf: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Group tensors (``encoder.layer.{group}.``) -> one set per block (the arrays are shared)."""
    layers, groups, inner = (hf.get(k, d) for k, d in
                             (("num_hidden_layers", None), ("num_hidden_groups", 1), ("inner_group_num", 1)))
    for key, value in (("num_hidden_layers", layers), ("num_hidden_groups", groups), ("inner_group_num", inner)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ModelLoadError(f"{key}: expected a positive integer, got {value!r}")
    if inner != 1:
        raise ModelLoadError(f"inner_group_num {inner}: edgekit reads ALBERT layer groups of one layer (expected 1)")
    if groups > layers:
        raise ModelLoadError(f"num_hidden_groups {groups}: expected at most num_hidden_layers ({layers})")
    blocks: dict[int, list[int]] = {}
    for i in range(layers):
        blocks.setdefault(_group(i, groups, layers), []).append(i)
    out = {name: value for name, value in weights.items() if not name.startswith(LAYER)}
    for name, value in weights.items():
        if name.startswith(LAYER):
            group, _, rest = name[len(LAYER):].partition(".")
            if not group.isdigit() or int(group) not in blocks:
                raise ModelLoadError(f"tensor {name!r}: expected layer groups 0..{groups - 1} (num_hidden_groups)")
            out.update({f"{LAYER}{i}.{rest}": value for i in blocks[int(group)]})
    return out


def share(tensors: dict[str, np.ndarray], layers: int) -> tuple[int, dict[str, np.ndarray]]:
    """(num_hidden_groups, tensors with ``encoder.layer.{group}.`` names) storing each distinct run once."""
    per_block = [{k[len(f"{LAYER}{i}."):]: v for k, v in tensors.items() if k.startswith(f"{LAYER}{i}.")}
                 for i in range(layers)]

    def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
        return a.keys() == b.keys() and all(a[k].shape == b[k].shape and np.array_equal(a[k], b[k]) for k in a)

    def first(group: int, groups: int) -> dict[str, np.ndarray]:  # the first block of a group
        return per_block[group * layers // groups]

    groups = next(g for g in range(1, layers + 1) if layers % g == 0 and all(
        same(per_block[i], first(_group(i, g, layers), g)) for i in range(layers)))
    out = {k: v for k, v in tensors.items() if not k.startswith(LAYER)}
    for g in range(groups):
        out.update({f"{LAYER}{g}.{rest}": v for rest, v in first(g, groups).items()})
    return groups, out


def pruned_heads_by_group(pruned: Mapping[str, Any], groups: int, layers: int) -> dict[str, Any]:
    """transformers 4.x prunes ALBERT heads per stored layer (``pruned_heads`` keyed by group):
    block-keyed heads -> the heads of each group's first block."""
    return {str(g): pruned[str(g * layers // groups)] for g in range(groups) if str(g * layers // groups) in pruned}


def pruned_heads_by_block(hf: dict[str, Any]) -> dict[str, Any]:
    """config.json with group-keyed ``pruned_heads`` (fewer groups than layers) keyed by block."""
    pruned, layers, groups = hf.get("pruned_heads"), hf.get("num_hidden_layers"), hf.get("num_hidden_groups", 1)
    if not pruned or not isinstance(pruned, dict) or not all(isinstance(v, int) for v in (layers, groups)) \
            or not 0 < groups < layers:
        return hf
    by_block = {str(i): pruned[str(_group(i, groups, layers))] for i in range(layers)
                if str(_group(i, groups, layers)) in pruned}
    return {**hf, "pruned_heads": by_block}
