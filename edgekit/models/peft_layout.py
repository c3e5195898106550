"""The PEFT library's LoRA adapter files, as peft writes and reads them (no TensorFlow).

``adapter_config.json`` + ``adapter_model.safetensors``: per adapted module ``m`` (its name in
transformers' model, e.g. ``bert.encoder.layer.0.attention.self.query``) the tensors
``base_model.model.m.lora_A.weight`` [r, in] and ``.lora_B.weight`` [out, r]; modules trained
whole (``modules_to_save``: the task head, the sentence head's dense layer) under their own
tensor names. A PyTorch user loads such a folder with ``PeftModel.from_pretrained(base, folder)``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgekit.errors import ModelLoadError
from edgekit.models.bert_config import BertConfig
from edgekit.models.checkpoint import hf_tensors

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
PREFIX = "base_model.model."
_A, _B = ".lora_A.weight", ".lora_B.weight"
PEFT_TASK = {"text-classification": "SEQ_CLS", "token-classification": "TOKEN_CLS",
             "question-answering": "QUESTION_ANS", "feature-extraction": "FEATURE_EXTRACTION"}
_UNSUPPORTED = {"use_dora": False, "use_rslora": False, "fan_in_fan_out": False, "bias": "none",
                "rank_pattern": {}, "alpha_pattern": {}}  # peft options edgekit's adapters do not have


@dataclass(frozen=True)
class PeftAdapter:
    """One adapter folder's content: ``lora`` maps a module to (A [r, in], B [out, r]); ``saved``
    maps HF tensor names of modules trained whole to their values."""

    rank: int
    alpha: float
    dropout: float
    task: str  # edgekit's task name
    lora: dict[str, tuple[np.ndarray, np.ndarray]]
    saved: dict[str, np.ndarray]
    base: str | None  # base_model_name_or_path

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def hf_names(config: BertConfig, names: list[str]) -> dict[str, str]:
    """edgekit tensor names -> the names transformers' class for ``config`` gives them."""
    return dict(zip(names, hf_tensors(config, dict.fromkeys(names, 0))))


def saved_modules(hf: list[str], base_prefix: str) -> list[str]:
    """``modules_to_save`` for these HF tensor names: a module inside the base model by its own
    name (``bert.pooler.dense``), a head by its top-level name (``classifier``: peft adds it for
    every classification task, and a module inside it would be wrapped twice)."""
    modules = []
    for name in hf:
        module = name.rsplit(".", 1)[0]
        module = module if module.startswith(f"{base_prefix}.") else module.split(".")[0]
        if module not in modules:
            modules.append(module)
    return modules


def write_adapter(folder: Path, adapter: PeftAdapter, base_prefix: str) -> None:
    """The two files of ``adapter`` into an existing ``folder``."""
    from safetensors.numpy import save_file

    tensors = {}
    for module, (a, b) in adapter.lora.items():
        tensors[PREFIX + module + _A], tensors[PREFIX + module + _B] = a, b
    tensors.update({PREFIX + name: value for name, value in adapter.saved.items()})
    config = {"peft_type": "LORA", "task_type": PEFT_TASK[adapter.task], "r": adapter.rank,
              "lora_alpha": adapter.alpha, "lora_dropout": adapter.dropout, "target_modules": sorted(adapter.lora),
              "modules_to_save": saved_modules(list(adapter.saved), base_prefix) or None,
              "base_model_name_or_path": adapter.base, "inference_mode": True, "init_lora_weights": True,
              "layers_to_transform": None, "layers_pattern": None, "revision": None, **_UNSUPPORTED}
    (folder / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
              str(folder / WEIGHTS_FILE), metadata={"format": "pt"})


def read_adapter(folder: Path) -> PeftAdapter:
    """A LoRA adapter folder written by peft or edgekit; anything else is refused in one line."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    folder = Path(folder)
    path = folder / CONFIG_FILE
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
        tensors = load_file(str(folder / WEIGHTS_FILE))
    except (OSError, ValueError, SafetensorError) as err:
        raise ModelLoadError(f"{folder}: expected a PEFT LoRA adapter ({CONFIG_FILE} + {WEIGHTS_FILE}): "
                             f"{type(err).__name__}: {err}".splitlines()[0]) from None
    if not isinstance(config, dict) or config.get("peft_type") != "LORA":
        raise ModelLoadError(f"{path}: peft_type: expected 'LORA', got {config.get('peft_type')!r}"
                             if isinstance(config, dict) else f"{path}: expected a JSON object")
    for key, plain in _UNSUPPORTED.items():
        if config.get(key, plain) not in (plain, None):
            raise ModelLoadError(f"{path}: {key}: edgekit reads plain LoRA adapters (expected {plain!r}, "
                                 f"got {config[key]!r})")
    tasks = {v: k for k, v in PEFT_TASK.items()}
    rank, alpha = config.get("r"), config.get("lora_alpha")
    if config.get("task_type") not in tasks:
        raise ModelLoadError(f"{path}: task_type: expected one of {', '.join(tasks)}, got {config.get('task_type')!r}")
    if not (isinstance(rank, int) and rank > 0 and isinstance(alpha, (int, float)) and alpha > 0):
        raise ModelLoadError(f"{path}: r, lora_alpha: expected positive numbers, got {rank!r}, {alpha!r}")
    odd = next((k for k in tensors if not k.startswith(PREFIX)), None)
    if odd is not None:
        raise ModelLoadError(f"{folder / WEIGHTS_FILE}: tensor {odd!r}: expected names under {PREFIX!r}")
    lora, saved = {}, {}
    for name, value in tensors.items():
        name = name[len(PREFIX):]
        if name.endswith(_A):
            module = name[:-len(_A)]
            b = tensors.get(PREFIX + module + _B)
            if b is None or value.ndim != 2 or b.ndim != 2 or value.shape[0] != rank or b.shape[1] != rank:
                raise ModelLoadError(f"{folder / WEIGHTS_FILE}: {module}: expected lora_A [{rank}, in] and "
                                     f"lora_B [out, {rank}], got {value.shape} and {None if b is None else b.shape}")
            lora[module] = (value.astype(np.float32), b.astype(np.float32))
        elif not name.endswith(_B):
            saved[name] = value.astype(np.float32)
    missing = next((k for k in tensors if k.endswith(_B) and k[len(PREFIX):-len(_B)] not in lora), None)
    if missing is not None:
        raise ModelLoadError(f"{folder / WEIGHTS_FILE}: tensor {missing!r} has no lora_A beside it")
    return PeftAdapter(rank=rank, alpha=float(alpha), dropout=float(config.get("lora_dropout") or 0.0),
                       task=tasks[config["task_type"]], lora=lora, saved=saved,
                       base=config.get("base_model_name_or_path"))
