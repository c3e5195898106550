"""Read and write Hugging Face BERT-class checkpoints (config.json + safetensors) without torch.

Reading accepts each family's base model and task layouts (``families``: encoder tensors with or
without the family's prefix, e.g. ``bert.``; the head of {Family}For{Sequence,Token}Classification
or {Family}ForQuestionAnswering, told apart by ``architectures``) and sharded safetensors, and
renames every tensor to edgekit's names (``weight_layout``). Writing produces the layout
transformers loads for the family and task (the prefix under a head). Head-pruned models are
written with transformers' ``pruned_heads`` (smaller tensors), which transformers 4.x loads;
transformers 5 dropped head pruning and refuses those tensor shapes, so
``pad_pruned_heads=True`` writes the removed heads back as zeros (full-size tensors, same
outputs, no ``pruned_heads``) for it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit import tasks
from edgekit.config.enums import Task
from edgekit.errors import ModelLoadError
from edgekit.models import families
from edgekit.models.bert_config import BertConfig
from edgekit.models.families import sharing
from edgekit.models.files import check_readable, first_line, is_file, read_json, read_json_object
from edgekit.models.weight_layout import weight_slots

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"
_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")

_PICKLE_REFUSAL = (
    "{path}: refusing to load a pickled PyTorch checkpoint: unpickling can run arbitrary code "
    "from the file. Convert it once, where you trust it, with transformers: "
    "python -c \"from transformers import AutoModel as M; "
    "M.from_pretrained('{folder}').save_pretrained('{folder}', safe_serialization=True)\""
)


def folder_family(folder: Path) -> families.Family:
    """The family its config.json names (BERT without one: loading refuses the folder later)."""
    path = folder / CONFIG_FILE
    model_type = read_json_object(path).get("model_type", "bert") if is_file(path) else "bert"
    try:
        return families.get(model_type)
    except ModelLoadError as err:
        raise ModelLoadError(f"{path}: {err}") from None


def read_weights(folder: Path) -> dict[str, np.ndarray]:
    """The tensors of ``folder`` edgekit uses, as float32 numpy arrays keyed by edgekit's names
    (the family's, e.g. DistilBERT's ``transformer.layer.0.ffn.lin1.weight``, renamed; tensors
    the family's models carry for other heads, such as a masked-LM head, left out)."""
    from safetensors.numpy import load_file

    family = folder_family(folder)
    if is_file(folder / WEIGHTS_FILE):
        files = [folder / WEIGHTS_FILE]
    elif is_file(folder / WEIGHTS_INDEX):
        files = shard_files(folder / WEIGHTS_INDEX)
    else:
        for name in _PICKLES:
            if is_file(folder / name):
                raise ModelLoadError(_PICKLE_REFUSAL.format(path=folder / name, folder=folder))
        raise ModelLoadError(f"{folder}: no {WEIGHTS_FILE} (edgekit reads safetensors checkpoints)")
    weights: dict[str, np.ndarray] = {}
    for path in files:
        check_readable(path)
        try:
            tensors = load_file(str(path))
        except Exception as err:  # safetensors raises several types for corrupt files
            raise ModelLoadError(f"{path}: cannot read safetensors file ({first_line(err)})") from None
        for name, value in tensors.items():
            if family.ignores(name):
                continue
            key = family.to_edgekit(name)
            if key in weights:  # which of the two would fill the model depends on the order of reading
                raise ModelLoadError(f"{path}: tensor {name!r} is in the checkpoint twice (with and without the "
                                     f"'{family.base_prefix}.' prefix, under another name, or in two shards); "
                                     "expected it once")
            floating = value.dtype.kind == "f" or value.dtype.name == "bfloat16"  # numpy has no bf16 kind
            weights[key] = value.astype(np.float32) if floating else value
    if family.shared_layers:
        try:
            weights = sharing.unshare(weights, read_json_object(folder / CONFIG_FILE))
        except ModelLoadError as err:
            raise ModelLoadError(f"{folder / CONFIG_FILE}: {err}") from None
    return weights


def shard_files(index_path: Path) -> list[Path]:
    """The shard files named by a sharded checkpoint's index (each must exist)."""
    weight_map = read_json_object(index_path).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map or not all(
            isinstance(name, str) for name in weight_map.values()):
        raise ModelLoadError(f"{index_path}: weight_map: expected an object mapping tensor names to shard files")
    files = [index_path.parent / name for name in sorted(set(weight_map.values()))]
    for path in files:
        if not is_file(path):
            raise ModelLoadError(f"{path}: no such file (a shard named in {index_path.name})")
    return files


def _sentence_transformers_pooling(folder: Path) -> tuple[str, bool] | None:
    """(pooling, normalize) from a sentence-transformers folder (modules.json), if it is one."""
    modules_path = folder / "modules.json"
    if not is_file(modules_path):
        return None
    modules = read_json(modules_path)
    if not isinstance(modules, list) or not all(
            isinstance(m, dict) and isinstance(m.get("type", ""), str) and isinstance(m.get("path", ""), str)
            for m in modules):
        raise ModelLoadError(f"{modules_path}: expected an array of objects with \"type\" and \"path\" strings")
    types = {m.get("type", "").rsplit(".", 1)[-1]: m.get("path", "") for m in modules}
    pooling = "cls"
    if "Pooling" in types:
        pooling_config = folder / types["Pooling"] / "config.json"
        if not is_file(pooling_config):
            raise ModelLoadError(f"{pooling_config}: no such file (the Pooling module named in {modules_path.name})")
        settings = read_json_object(pooling_config)
        if settings.get("pooling_mode_mean_tokens"):
            pooling = "mean"
        elif not settings.get("pooling_mode_cls_token"):
            raise ModelLoadError(f"{folder}: only cls or mean sentence-transformers pooling is supported")
    return pooling, "Normalize" in types


def _task(path: Path, family: families.Family, architectures: list[str], weights: dict[str, np.ndarray]):
    """The task whose head the weights hold, checked against ``architectures``: either alone could
    answer silently wrongly (embeddings instead of labels, a per-token head read as a sentence one)."""
    declared = architectures[0] if architectures else None
    task = tasks.by_architecture(declared) if declared else None
    if declared and task is None:
        raise ModelLoadError(f"{path}: architectures: {declared} is not a head edgekit builds (expected one of "
                             f"{', '.join(family.architecture(tasks.get(t).architecture) for t in Task)})")
    found = {name.split(".")[0] for name in weights} & {"classifier", "qa_outputs"}
    if len(found) > 1:
        raise ModelLoadError(f"{path}: the weights hold both a classifier and a qa_outputs head (expected one)")
    if task is None:  # no architectures: the head's tensors say
        task = tasks.get(Task.QUESTION_ANSWERING if "qa_outputs" in found else
                         Task.TEXT_CLASSIFICATION if "classifier" in found else Task.FEATURE_EXTRACTION)
    if task.head_layer not in found | {None}:
        raise ModelLoadError(f"{path}: architectures: {declared} needs a {task.head_layer} head, but the weights "
                             f"have no {task.head_layer}.weight (expected {family.architecture('BertModel')} "
                             "for an encoder)")
    if found - {task.head_layer}:
        raise ModelLoadError(f"{path}: architectures: {declared}: its {found.pop()}.weight is not the head of "
                             f"this architecture (expected {task.head_layer or 'no head'})")
    return task


def read_config(folder: Path, weights: dict[str, np.ndarray], pooling: str | None = None) -> BertConfig:
    """The BertConfig of a checkpoint: labels from the classifier tensor, pooling from (in
    order) the ``pooling`` argument, edgekit's own key, sentence-transformers files, or BERT's
    pooler when its weights are present (else the first token)."""
    path = folder / CONFIG_FILE
    if not is_file(path):
        raise ModelLoadError(f"{folder}: no {CONFIG_FILE}")
    hf = read_json_object(path)
    architectures = [a for a in hf.get("architectures") or [] if isinstance(a, str)]
    family = folder_family(folder)
    task = _task(path, family, architectures, weights)
    if family.shared_layers:
        hf = sharing.pruned_heads_by_block(hf)
    head = weights.get("classifier.weight") if task.head_layer == "classifier" else None
    try:
        config = BertConfig.from_hf(hf, num_labels=0 if head is None else int(head.shape[0]), task=task.name)
    except ModelLoadError as err:
        raise ModelLoadError(f"{path}: {err}") from None
    if "pooling" not in hf.get("edgekit", {}):
        found = _sentence_transformers_pooling(folder)
        if found is not None:
            config = config.replace(pooling=found[0], normalize=found[1])
        elif "pooler.dense.weight" not in weights:
            config = config.replace(pooling="cls")
    if pooling is not None:
        config = config.replace(pooling=pooling)
    return config


def check_weights(config: BertConfig, weights: dict[str, np.ndarray], source: Path) -> None:
    """Refuse, before TensorFlow builds (and allocates) the model that ``config`` describes, HF
    tensors that would not fill it exactly: each one present, of its shape, float and finite
    (integer weights would be cast without their scales, NaN would make every output NaN), and
    every tensor used."""
    used = set()
    for slot in weight_slots(config):
        for name, shape in zip(slot.hf_names, slot.shapes):
            if name not in weights:
                raise ModelLoadError(f"{source}: missing tensor {name!r} for a {config.num_layers}-layer model")
            value = weights[name]
            if value.shape != shape:
                raise ModelLoadError(f"{source}: tensor {name!r} has shape {tuple(value.shape)}, config.json "
                                     f"implies {shape}")
            if value.dtype.kind != "f":
                raise ModelLoadError(f"{source}: tensor {name!r} is {value.dtype}, expected floating point weights")
            if not np.isfinite(value).all():
                raise ModelLoadError(f"{source}: tensor {name!r} holds NaN or infinite values")
            used.add(name)
    unused = sorted(n for n in weights if n not in used and not n.startswith("pooler."))
    if unused:
        prefix = families.get(config.model_type).class_prefix
        raise ModelLoadError(
            f"{source}: unexpected tensors {', '.join(unused[:4])}{' ...' if len(unused) > 4 else ''} "
            f"(edgekit reads {prefix}Model and {prefix}For{{Sequence,Token}}Classification / QuestionAnswering "
            "checkpoints)"
        )


def assign_weights(model, config: BertConfig, weights: dict[str, np.ndarray]) -> None:
    """Fill ``model`` (from ``build_encoder(config)``) with HF tensors that fit it (``check_weights``)."""
    for slot in weight_slots(config):
        values = [weights[name].T if slot.transpose else weights[name] for name in slot.hf_names]
        model.get_layer(slot.layer).set_weights(values)


def unpruned_config(config: BertConfig) -> BertConfig:
    """``config`` with its pruned heads back (as written by ``pad_pruned_heads=True``)."""
    return config.replace(num_heads=config.original_num_heads, attention_head_size=None, pruned_heads=())


def _pad_heads(value: np.ndarray, axis: int, removed: tuple[int, ...], config: BertConfig) -> np.ndarray:
    """Insert zero blocks for the removed heads along ``axis`` (Keras layout, kept heads in order)."""
    size = config.head_size
    kept = [h for h in range(config.original_num_heads) if h not in removed]
    shape = list(value.shape)
    shape[axis] = config.original_num_heads * size
    full = np.zeros(shape, dtype=value.dtype)
    for j, head in enumerate(kept):
        target = [slice(None)] * value.ndim
        source = [slice(None)] * value.ndim
        target[axis], source[axis] = slice(head * size, (head + 1) * size), slice(j * size, (j + 1) * size)
        full[tuple(target)] = value[tuple(source)]
    return full


def collect_weights(model, config: BertConfig, *, pad_pruned_heads: bool = False) -> dict[str, np.ndarray]:
    """The model's tensors by edgekit's names (with ``pad_pruned_heads``: pruned heads as zero
    blocks, shaped for ``unpruned_config``); ``write_tensors`` gives them the family's names."""
    pad = pad_pruned_heads and bool(config.pruned_heads)
    tensors = {}
    for slot in weight_slots(config):
        values = model.get_layer(slot.layer).get_weights()
        if pad and slot.layer.rsplit("_", 1)[-1] in ("query", "key", "value"):
            removed = config.pruned_heads[int(slot.layer.split("_")[1])]
            values = [_pad_heads(v, v.ndim - 1, removed, config) for v in values]  # kernel columns, bias
        elif pad and slot.layer.endswith("_attention_output"):
            removed = config.pruned_heads[int(slot.layer.split("_")[1])]
            values = [_pad_heads(values[0], 0, removed, config), values[1]]  # kernel rows
        for name, value in zip(slot.hf_names, values):
            tensors[name] = np.ascontiguousarray(value.T if slot.transpose else value, dtype=np.float32)
    return tensors


def hf_tensors(config: BertConfig, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Tensors by edgekit's names -> by the names transformers' class for ``config`` loads."""
    family, spec = families.get(config.model_type), tasks.for_config(config)
    task_model = spec.head(config) is not None
    heads = {slot.hf_names[0].rsplit(".", 1)[0] for slot in weight_slots(config) if not slot.in_base_model}
    return {family.to_hf(name, in_base_model=name.rsplit(".", 1)[0] not in heads, task_model=task_model,
                         task=spec.name): value for name, value in tensors.items()}


def write_checkpoint(folder: Path, model, config: BertConfig, *, pad_pruned_heads: bool = False) -> None:
    """Write config.json + model.safetensors for ``model`` into an existing ``folder``."""
    written = unpruned_config(config) if pad_pruned_heads and config.pruned_heads else config
    write_tensors(folder, written, collect_weights(model, config, pad_pruned_heads=pad_pruned_heads))


def write_tensors(folder: Path, config: BertConfig, tensors: dict[str, np.ndarray]) -> None:
    """config.json + model.safetensors (edgekit's tensor names -> arrays) into an existing ``folder``."""
    from safetensors.numpy import save_file

    hf = config.to_hf()
    if families.get(config.model_type).shared_layers:
        groups, tensors = sharing.share(tensors, config.num_layers)
        hf.update(num_hidden_groups=groups, inner_group_num=1)
        if "pruned_heads" in hf:  # transformers 4.x prunes the stored layers
            hf["pruned_heads"] = sharing.pruned_heads_by_group(hf["pruned_heads"], groups, config.num_layers)
    tensors = hf_tensors(config, tensors)
    (folder / CONFIG_FILE).write_text(json.dumps(hf, indent=2) + "\n", encoding="utf-8")
    # transformers refuses safetensors files without a "format" entry in their metadata.
    save_file(tensors, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
