"""PEFT LoRA adapters on the tiny family fixtures, with the outputs peft computes (the reference
edgekit's adapter reader and writer are tested against).

Needs torch + transformers + peft, which edgekit never installs (torch: the local CPU wheel only):
    python3 -m venv /tmp/famvenv && /tmp/famvenv/bin/pip install torch==2.13.0 transformers safetensors numpy
    /tmp/famvenv/bin/pip install --no-deps peft accelerate
    /tmp/famvenv/bin/python scripts/make_lora_fixtures.py make
writes tests/fixtures/lora/F/ for F in bert, distilbert, albert (the sentence classifiers under
tests/fixtures/families/F as base): adapter_config.json + adapter_model.safetensors as peft saves them
(rank 4, alpha 8; every LoRA B drawn at random so the adapters change the outputs; the classifier and
the sentence head's dense layer saved whole as ``modules_to_save``, perturbed) and reference.npz (the
base fixture's inputs, the adapted model's logits, and the merged model's, float32, eager attention).
    /tmp/famvenv/bin/python scripts/make_lora_fixtures.py check STAGE
loads a LoRA stage's adapter (STAGE/adapter, written by edgekit) with peft onto its base
(base_model_name_or_path) and prints max |diff| of its logits, unmerged and after
``merge_and_unload``, to the merged checkpoint STAGE as transformers loads it, on seeded random
inputs (a head-pruned stage needs transformers 4: its base keeps ``pruned_heads``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.distributed.tensor  # peft 0.21 reads it; transformers 4 does not import it
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoModelForSequenceClassification

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
# family -> (LoRA target modules by their suffix, the sentence head's modules saved whole)
TARGETS = {
    "bert": (["query", "value", "attention.output.dense"], ["classifier", "bert.pooler.dense"]),
    "distilbert": (["q_lin", "v_lin", "ffn.lin1"], ["classifier", "pre_classifier"]),
    "albert": (["query", "value"], ["classifier", "albert.pooler"]),  # one adapter per stored layer group
}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _inputs(reference: dict, model) -> dict:
    names = [n for n in INPUTS if n in reference and (n != "token_type_ids" or model.config.type_vocab_size > 0)]
    if model.config.model_type == "distilbert":
        names = names[:2]
    return {n: torch.from_numpy(reference[n].astype(np.int64)) for n in names}


def _logits(model, inputs: dict) -> np.ndarray:
    with torch.no_grad():
        return model(**inputs).logits.numpy().astype(np.float32)


def make(family: str) -> None:
    base = FIXTURES / "families" / family
    out = FIXTURES / "lora" / family
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(7)
    model = AutoModelForSequenceClassification.from_pretrained(base, attn_implementation="eager").eval()
    targets, saved = TARGETS[family]
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets,
                        modules_to_save=saved, init_lora_weights=False)  # False: B random, not zeros
    peft_model = get_peft_model(model, config).eval()
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "modules_to_save" in name:  # the whole-trained head: moved off the base's values
                param.add_(0.05 * torch.randn_like(param))
    reference = dict(np.load(base / "reference.npz"))
    inputs = _inputs(reference, model)
    logits = _logits(peft_model, inputs)
    peft_model.save_pretrained(out)
    (out / "README.md").unlink()  # peft's model card
    saved = json.loads((out / "adapter_config.json").read_text())
    saved["base_model_name_or_path"] = str(base.relative_to(FIXTURES.parents[1]))  # not this machine's path
    (out / "adapter_config.json").write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n")
    merged = _logits(peft_model.merge_and_unload(), inputs)
    base_logits = _logits(AutoModelForSequenceClassification.from_pretrained(base, attn_implementation="eager")
                          .eval(), inputs)
    np.savez(out / "reference.npz", **{n: reference[n] for n in INPUTS if n in reference},
             logits=logits, merged_logits=merged)
    print(f"{family}: adapted vs merged {np.abs(logits - merged).max():.2e}, "
          f"adapted vs base {np.abs(logits - base_logits).max():.2e}")


def check(stage: Path) -> None:
    merged = AutoModelForSequenceClassification.from_pretrained(stage, attn_implementation="eager").eval()
    base_path = json.loads((stage / "adapter" / "adapter_config.json").read_text())["base_model_name_or_path"]
    base = AutoModelForSequenceClassification.from_pretrained(
        base_path, num_labels=merged.config.num_labels, ignore_mismatched_sizes=True, attn_implementation="eager")
    peft_model = PeftModel.from_pretrained(base.eval(), stage / "adapter").eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(5, merged.config.vocab_size, (4, 12))
    mask = np.ones_like(ids)
    mask[1, 7:] = 0
    reference = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
    inputs = _inputs(reference, merged)
    expected = _logits(merged, inputs)
    logits = _logits(peft_model, inputs)
    unloaded = _logits(peft_model.merge_and_unload(), inputs)
    print(f"{stage.name}: peft vs merged checkpoint max |diff| {np.abs(logits - expected).max():.2e}, "
          f"after merge_and_unload {np.abs(unloaded - expected).max():.2e} (logits up to {np.abs(expected).max():.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("make")
    sub.add_parser("check").add_argument("stage", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        for family in TARGETS:
            make(family)
    else:
        check(args.stage)


if __name__ == "__main__":
    main()
