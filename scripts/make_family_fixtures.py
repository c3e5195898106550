"""Tiny random fixtures for each BERT-class family, with transformers (PyTorch) reference outputs.

Needs torch + transformers (v5: tokenizer classes backed by `tokenizers`), which edgekit never installs:
    python3 -m venv /tmp/famvenv && /tmp/famvenv/bin/pip install torch==2.13.0 transformers tokenizers safetensors numpy
    /tmp/famvenv/bin/python scripts/make_family_fixtures.py make
writes tests/fixtures/families/F/ (F*ForSequenceClassification, 3 labels), F-token/ (5 labels) and F-qa/
for F in bert distilbert roberta xlm-roberta electra albert mobilebert: small seeded random weights with
every bias and norm parameter perturbed, a tokenizer of the family's own kind trained on CORPUS below,
reference.npz in each folder (inputs, hidden_states_0..N, last_hidden_state, head outputs, float32, eager
attention) and summary.json (the config keys and head layout a port must match).
`tokenizers` trainers break ties in hash order, so a retrained WordPiece vocabulary differs from run to run:
make keeps the tokenizer files already under families/F/ (models and references are then byte-identical)
and trains only where there are none, or everywhere with --retrain-tokenizers.
    /tmp/famvenv/bin/python scripts/make_family_fixtures.py check FOLDER REFERENCE.npz
loads FOLDER with transformers Auto classes, reruns the reference inputs and prints max |diff| per output.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, trainers
from transformers import (
    AlbertConfig, AlbertTokenizer, AutoModelForQuestionAnswering, AutoModelForSequenceClassification,
    AutoModelForTokenClassification, AutoTokenizer, BertConfig, BertTokenizer, DistilBertConfig,
    DistilBertTokenizer, ElectraConfig, MobileBertConfig, MobileBertTokenizer, RobertaConfig, RobertaTokenizer,
    XLMRobertaConfig, XLMRobertaTokenizer,
)
from transformers.utils import logging as hf_logging

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "families"
CORPUS = [
    "The movie was great, and the music was even better!", "I didn't like the ending at all.",
    "She paid $12.50 for two coffees at the café.", "Our train leaves at 7:45 tomorrow morning.",
    "Is this the right way to the station?", "He scored 3 goals in the 2nd half.",
    "The weather in Paris is lovely in May.", "Please send the report by Friday, June 14.",
    "What a wonderful, sunny day it is!", "The naïve plan failed within a week.",
    "They sold 1,024 tickets in under an hour.", "My résumé lists five years of experience.",
    "Don't forget to water the plants.", "The cat sat quietly on the warm windowsill.",
    "Why would anyone build a house there?", "The museum opens at 10 a.m. on weekdays.",
    "Alice met Bob in London last year.", "Turn left at the second light, then go straight.",
    "This phone's battery lasts about 36 hours.", "The recipe needs 2 cups of flour and 3 eggs.",
    "We won! We actually won the final!", "It rained all weekend; the picnic was cancelled.",
    "The new update fixed most of the bugs.", "Can you recommend a good book about history?",
    "Prices rose by 4.5% in the last quarter.", "The children laughed at the clown's tricks.",
    "Maria works as a nurse in Madrid.", "The service was slow, but the food was excellent.",
    "Our flight to Tokyo was delayed by 90 minutes.", "The river flows north toward the sea.",
    "I'm not sure this is a good idea.", "The old bridge was rebuilt in 1998.",
    "He plays the piano beautifully.", "Keep the receipt in case you need a refund.",
    "The lecture covered networks, graphs and trees.", "A small dog barked at the mail carrier.",
    "Where did you park the car?", "The hotel room was clean and quiet.",
    "Sales in Berlin doubled after the launch.", "The soup was too salty for my taste.",
    "Her garden is full of roses and tulips.", "The meeting moved to room 204.",
    "Nobody expected the match to end 0-0.", "The actors were brilliant; the script was weak.",
    "He ran 42 kilometres in just over three hours.", "Our team meets every Monday at noon.",
    "The bakery on Main Street sells fresh bread.", "Is the museum free on Sundays?",
    "The doctor said to rest for a few days.", "We watched the sunset from the hill.",
    "The laptop overheats when I play games.", "John and Emma moved to Canada in 2015.",
    "This is the worst pizza I have ever eaten.", "The library closes early on holidays.",
    "Snow covered the mountains by October.", "The app crashed twice during the demo.",
    "My brother lives near the lake in Geneva.", "The concert was loud, crowded and fun.",
    "How many people live in this city?", "The film's plot was hard to follow.",
]
# Reference inputs: one unseen emoji (WordPiece/Unigram unknown, byte-level bytes), digits, accents.
SINGLES = ["The café was great!", "It's not good, sadly 🙂", "Alice paid $3.50 in Paris on Monday."]
PAIR = ("Was the food good?", "The food was excellent.")
QA = [
    ("Where did Alice meet Bob?", "Alice met Bob in London."),
    ("When?", "It was rebuilt in 1998."),
    ("Who is a nurse?", "Maria works as a nurse in Madrid."),
]
SEQ_LABELS = ["negative", "neutral", "positive"]
TOKEN_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
TASKS = {"": AutoModelForSequenceClassification, "-token": AutoModelForTokenClassification,
         "-qa": AutoModelForQuestionAnswering}
SIZE = dict(hidden_size=32, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64,
            initializer_range=0.2)
ACTIVATIONS = {"gelu": "exact erf GELU", "gelu_new": "tanh-approximation GELU", "relu": "ReLU"}
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # <mask> goes last, as in roberta-base / xlm-roberta-base
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "merges.txt")

# Per family: config, tokenizer class and trainer, and what the ForSequenceClassification head does.
# layer_norm_eps follows the pretrained checkpoints (roberta-base, xlm-roberta-base: 1e-5; others 1e-12).
FAMILIES = {
    "bert": dict(
        config=lambda v: BertConfig(vocab_size=v, num_hidden_layers=2, **SIZE),
        tokenizer=BertTokenizer, kind="wordpiece", vocab_size=200, specials=BERT_SPECIALS,
        seq_head="pooler (dense + tanh on [CLS]) -> dropout -> classifier"),
    "distilbert": dict(
        config=lambda v: DistilBertConfig(
            vocab_size=v, n_layers=2, dim=32, n_heads=4, hidden_dim=64, max_position_embeddings=64,
            sinusoidal_pos_embds=False, initializer_range=0.2),
        tokenizer=DistilBertTokenizer, kind="wordpiece", vocab_size=200, specials=BERT_SPECIALS,
        seq_head="hidden[:, 0] -> pre_classifier -> ReLU -> dropout -> classifier (no pooler)"),
    "roberta": dict(
        config=lambda v: RobertaConfig(vocab_size=v, num_hidden_layers=2, type_vocab_size=1, pad_token_id=1,
                                       bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **SIZE),
        tokenizer=RobertaTokenizer, kind="byte-level-bpe", vocab_size=400, specials=ROBERTA_SPECIALS,
        seq_head="classifier.dense on <s> -> tanh -> classifier.out_proj (no pooler)"),
    "xlm-roberta": dict(
        config=lambda v: XLMRobertaConfig(vocab_size=v, num_hidden_layers=2, type_vocab_size=1, pad_token_id=1,
                                          bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5, **SIZE),
        tokenizer=XLMRobertaTokenizer, kind="unigram", vocab_size=200, specials=ROBERTA_SPECIALS,
        seq_head="classifier.dense on <s> -> tanh -> classifier.out_proj (no pooler)"),
    "electra": dict(
        config=lambda v: ElectraConfig(vocab_size=v, num_hidden_layers=2, embedding_size=16, **SIZE),
        tokenizer=BertTokenizer, kind="wordpiece", vocab_size=200, specials=BERT_SPECIALS,
        seq_head="classifier.dense on [CLS] -> exact GELU (fixed, not hidden_act) -> classifier.out_proj"),
    "albert": dict(
        config=lambda v: AlbertConfig(vocab_size=v, num_hidden_layers=3, num_hidden_groups=1, inner_group_num=1,
                                      embedding_size=16, hidden_act="gelu_new", **SIZE),
        tokenizer=AlbertTokenizer, kind="unigram", vocab_size=200, specials=["<pad>", "<unk>", *BERT_SPECIALS[2:]],
        seq_head="pooler (dense + tanh on [CLS]) -> dropout -> classifier"),
    "mobilebert": dict(
        config=lambda v: MobileBertConfig(
            vocab_size=v, num_hidden_layers=2, embedding_size=16, trigram_input=True, use_bottleneck=True,
            intra_bottleneck_size=16, use_bottleneck_attention=False, key_query_shared_bottleneck=True,
            num_feedforward_networks=3, normalization_type="no_norm", hidden_act="relu",
            classifier_activation=True, **SIZE),
        tokenizer=MobileBertTokenizer, kind="wordpiece", vocab_size=200, specials=BERT_SPECIALS,
        seq_head="pooler (dense + tanh on [CLS], classifier_activation) -> dropout -> classifier"),
}


def train_tokenizer(family: str, folder: Path):
    """Train the family's tokenizer kind through its transformers class's own normalizer and pre-tokenizer."""
    spec = FAMILIES[family]
    cls, kind = spec["tokenizer"], spec["kind"]
    template = cls().backend_tokenizer
    model, trainer_cls = {"wordpiece": (models.WordPiece(unk_token="[UNK]"), trainers.WordPieceTrainer),
                          "byte-level-bpe": (models.BPE(), trainers.BpeTrainer),
                          "unigram": (models.Unigram(), trainers.UnigramTrainer)}[kind]
    tok = Tokenizer(model)
    if template.normalizer is not None:
        tok.normalizer = template.normalizer
    tok.pre_tokenizer = template.pre_tokenizer
    options = dict(vocab_size=spec["vocab_size"], special_tokens=spec["specials"])
    if kind == "byte-level-bpe":
        options["initial_alphabet"] = pre_tokenizers.ByteLevel.alphabet()
    if kind == "unigram":
        options["unk_token"] = "<unk>"
    tok.train_from_iterator(CORPUS, trainer_cls(**options))
    trained = json.loads(tok.to_str())["model"]
    max_length = 62 if family in ("roberta", "xlm-roberta") else 64  # RoBERTa positions start at pad+1 = 2
    if kind == "wordpiece":
        built = cls(vocab=trained["vocab"], model_max_length=max_length)
    elif kind == "byte-level-bpe":
        vocab = {**trained["vocab"], "<mask>": len(trained["vocab"])}
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
        built = cls(vocab=vocab, merges=merges, model_max_length=max_length)
    else:
        vocab = [tuple(piece) for piece in trained["vocab"]]
        if family == "xlm-roberta":
            vocab.append(("<mask>", 0.0))
        built = cls(vocab=vocab, model_max_length=max_length)
    built.save_pretrained(folder)
    write_vocab_files(built, kind, folder)
    return verify_tokenizer(folder, cls)


def write_vocab_files(tokenizer, kind: str, folder: Path) -> None:
    """The per-kind vocabulary files transformers v5 no longer writes: vocab.txt, or vocab.json + merges.txt."""
    vocab = sorted(tokenizer.backend_tokenizer.get_vocab(with_added_tokens=False).items(), key=lambda kv: kv[1])
    if kind == "wordpiece":
        (folder / "vocab.txt").write_text("".join(f"{token}\n" for token, _ in vocab), encoding="utf-8")
    elif kind == "byte-level-bpe":
        (folder / "vocab.json").write_text(json.dumps(dict(vocab), ensure_ascii=False), encoding="utf-8")
        merges = json.loads(tokenizer.backend_tokenizer.to_str())["model"]["merges"]
        lines = [m if isinstance(m, str) else " ".join(m) for m in merges]
        (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(lines) + "\n", encoding="utf-8")


def verify_tokenizer(folder: Path, cls):
    """AutoTokenizer must load the folder as cls, give offsets, and agree with plain tokenizer.json."""
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(tokenizer) is cls, (type(tokenizer), cls)
    raw = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for text in [*SINGLES, *CORPUS[:5]]:
        got = tokenizer(text, return_offsets_mapping=True)
        assert got["input_ids"] == raw.encode(text).ids, (folder.name, text)
        assert len(got["offset_mapping"]) == len(got["input_ids"]) and max(e for _, e in got["offset_mapping"]) > 0
    pair = tokenizer(*PAIR)
    assert pair["input_ids"] == raw.encode(*PAIR).ids, folder.name
    return tokenizer


def perturb(model) -> None:
    """Add N(0, 0.1) to every bias and every LayerNorm / NoNorm weight, so a wrong bias or norm shows."""
    with torch.no_grad():
        for module in model.modules():
            is_norm = isinstance(module, torch.nn.LayerNorm) or type(module).__name__ == "NoNorm"
            for name, param in module.named_parameters(recurse=False):
                if name == "bias" or is_norm:
                    param.add_(torch.randn_like(param) * 0.1)


def build_models(family: str, vocab_size: int) -> dict:
    """The seq-classification base and token / QA models sharing its encoder weights, each head random."""
    built = {}
    for index, (suffix, auto) in enumerate(TASKS.items()):
        config = FAMILIES[family]["config"](vocab_size)
        labels = {"": SEQ_LABELS, "-token": TOKEN_LABELS, "-qa": None}[suffix]
        if labels:
            config.id2label = dict(enumerate(labels))
            config.label2id = {label: i for i, label in enumerate(labels)}
        torch.manual_seed(1000 * list(FAMILIES).index(family) + index)
        model = auto.from_config(config, attn_implementation="eager").eval()
        perturb(model)
        if suffix:
            encoder = built[""].base_model.state_dict()
            result = model.base_model.load_state_dict(encoder, strict=False)
            assert not result.missing_keys and all(k.startswith("pooler") for k in result.unexpected_keys), result
        built[suffix] = model
    return built


def inputs_for(suffix: str, tokenizer, token_types: bool) -> tuple[dict, dict]:
    """Model inputs (padded batch of 3) and extra arrays (texts, offsets) for one task folder.

    token_types: ask for token_type_ids even where the v5 tokenizer class leaves them out (AlbertTokenizer).
    """
    options = dict(return_token_type_ids=token_types)
    if suffix == "":
        rows = [tokenizer(SINGLES[0], **options), tokenizer(SINGLES[1], **options), tokenizer(*PAIR, **options)]
        batch = tokenizer.pad(rows, padding=True, return_tensors="pt")
        extra = {"texts": np.array([SINGLES[0], SINGLES[1], PAIR[0]]), "text_pairs": np.array(["", "", PAIR[1]])}
    elif suffix == "-token":
        batch = tokenizer(SINGLES, padding=True, return_offsets_mapping=True, return_tensors="pt", **options)
        extra = {"texts": np.array(SINGLES)}
    else:
        questions, contexts = zip(*QA)
        batch = tokenizer(list(questions), list(contexts), padding=True, return_offsets_mapping=True,
                          return_tensors="pt", **options)
        extra = {"texts": np.array(questions), "text_pairs": np.array(contexts)}
    if "offset_mapping" in batch:
        extra["offset_mapping"] = batch.pop("offset_mapping").numpy().astype(np.int32)
    return dict(batch), extra


def run_outputs(model, batch: dict) -> dict[str, np.ndarray]:
    """Every hidden state, the encoder's last_hidden_state (+ pooler_output) and the head's outputs."""
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
        base = model.base_model(**batch)
    result = {f"hidden_states_{i}": h.numpy() for i, h in enumerate(out.hidden_states)}
    result["last_hidden_state"] = base.last_hidden_state.numpy()
    assert np.array_equal(result["last_hidden_state"], out.hidden_states[-1].numpy())
    if getattr(base, "pooler_output", None) is not None:
        result["pooler_output"] = base.pooler_output.numpy()
    for key in ("logits", "start_logits", "end_logits"):
        if getattr(out, key, None) is not None:
            result[key] = getattr(out, key).numpy()
    assert all(np.isfinite(v).all() for v in result.values())
    return {k: v.astype(np.float32) for k, v in result.items()}


def describe(folder: Path, model, tokenizer, family: str, inputs: list[str]) -> dict:
    """summary.json entry: the config keys and head layout a port must reproduce, and file sizes."""
    config, spec = model.config, FAMILIES[family]
    act = getattr(config, "hidden_act", None) or config.activation
    roberta_like = family in ("roberta", "xlm-roberta")
    entry = {
        "model_type": config.model_type, "architecture": type(model).__name__,
        "hidden_act": act, "hidden_act_formula": ACTIVATIONS[act],
        "layer_norm_eps": getattr(config, "layer_norm_eps", 1e-12),  # DistilBERT hard-codes 1e-12
        "hidden_size": config.hidden_size, "num_hidden_layers": config.num_hidden_layers,
        "embedding_size": getattr(config, "embedding_size", config.hidden_size),
        "vocab_size": config.vocab_size, "max_position_embeddings": config.max_position_embeddings,
        "pad_token_id": config.pad_token_id, "type_vocab_size": getattr(config, "type_vocab_size", None),
        "position_offset": config.pad_token_id + 1 if roberta_like else 0,
        "num_labels": config.num_labels, "tokenizer_kind": spec["kind"], "tokenizer_class": type(tokenizer).__name__,
        "model_input_names": tokenizer.model_input_names, "reference_inputs": inputs,
        "model_max_length": tokenizer.model_max_length,
        "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir())},
    }
    if folder.name == family:
        entry["seq_head"] = spec["seq_head"]
    for key in ("num_hidden_groups", "inner_group_num", "trigram_input", "use_bottleneck", "intra_bottleneck_size",
                "true_hidden_size", "key_query_shared_bottleneck", "use_bottleneck_attention",
                "num_feedforward_networks", "normalization_type", "classifier_activation", "sinusoidal_pos_embds"):
        if hasattr(config, key):
            entry[key] = getattr(config, key)
    return entry


def make(retrain_tokenizers: bool) -> None:
    """Write every family's three folders, their reference.npz files and summary.json."""
    kept = {} if retrain_tokenizers else {
        family: {name: (OUT / family / name).read_bytes() for name in TOKENIZER_FILES if (OUT / family / name).exists()}
        for family in FAMILIES if (OUT / family / "tokenizer.json").exists()}
    if OUT.exists():
        shutil.rmtree(OUT)
    summary = {}
    for family in FAMILIES:
        base_dir = OUT / family
        base_dir.mkdir(parents=True)
        for name, data in kept.get(family, {}).items():
            (base_dir / name).write_bytes(data)
        cls = FAMILIES[family]["tokenizer"]
        tokenizer = verify_tokenizer(base_dir, cls) if family in kept else train_tokenizer(family, base_dir)
        tokenizer_files = sorted(base_dir.iterdir())
        for suffix, model in build_models(family, len(tokenizer)).items():
            assert tokenizer.pad_token_id == model.config.pad_token_id, family
            folder = OUT / f"{family}{suffix}"
            model.save_pretrained(folder)  # transformers v5 always writes model.safetensors
            for path in tokenizer_files if suffix else []:
                shutil.copy(path, folder / path.name)
            batch, extra = inputs_for(suffix, tokenizer, getattr(model.config, "type_vocab_size", 1) > 1)
            np.savez_compressed(folder / "reference.npz", **{k: v.numpy() for k, v in batch.items()}, **extra,
                                **run_outputs(model, batch))
            summary[folder.name] = describe(folder, model, tokenizer, family, list(batch))
            print(f"{folder.name}: {type(model).__name__}, vocab {len(tokenizer)}, inputs {list(batch)}")
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def check(folder: Path, reference: Path, atol: float) -> None:
    """Load FOLDER with transformers and compare its outputs on the reference inputs; token outputs on real tokens."""
    ref = dict(np.load(reference))
    auto = (AutoModelForQuestionAnswering if "start_logits" in ref else
            AutoModelForTokenClassification if ref["logits"].ndim == 3 else AutoModelForSequenceClassification)
    model = auto.from_pretrained(folder, attn_implementation="eager").eval()
    batch = {n: torch.from_numpy(ref[n]) for n in ("input_ids", "attention_mask", "token_type_ids") if n in ref}
    got = run_outputs(model, batch)
    real = ref["attention_mask"].astype(bool)
    worst = 0.0
    for key in sorted(k for k in got if k in ref):
        diff = np.abs(got[key] - ref[key])
        diff = diff[real] if diff.shape[:2] == real.shape else diff
        worst = max(worst, float(diff.max()))
        print(f"{key}: max |diff| {diff.max():.2e}")
    missing = sorted(k for k in ref if k.startswith("hidden_states_") or k.endswith("logits") if k not in got)
    assert not missing, f"outputs not produced: {missing}"
    assert worst <= atol, f"max |diff| {worst:.2e} > {atol}"
    print(f"transformers loaded {folder} ({type(model).__name__}) and matched {reference.name}: max |diff| {worst:.2e}")


def main() -> None:
    hf_logging.disable_progress_bar()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    mk = sub.add_parser("make")
    mk.add_argument("--retrain-tokenizers", action="store_true", help="train new tokenizers even where kept")
    chk = sub.add_parser("check")
    chk.add_argument("folder", type=Path)
    chk.add_argument("reference", type=Path)
    chk.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    if args.command == "make":
        make(args.retrain_tokenizers)
    else:
        check(args.folder, args.reference, args.atol)


if __name__ == "__main__":
    main()
