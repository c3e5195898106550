"""Vocabulary pruning (``export.vocabulary: {keep: from-data}``): a model whose word-embedding
table holds only the rows its task uses.

The word embeddings are half of MiniLM's weights (30,522 × 384 floats), and a task's data uses a
fraction of the tokens. ``pruned`` keeps, in the model's own order (new id = rank of the old id,
so [PAD] stays 0):

- the special tokens: every added token, [UNK], the pad token and what the post-processor adds;
- every id the task's own tokenisation (``task.features``: texts, pairs, words, question/context
  windows, truncated as the model sees them) gives at least ``min_count`` times over the counted
  splits: train and validation, never test nor the evaluation split (whose [UNK] share it
  would flatter);
- the "frequent tokens": for every character of a token the data uses, its single-character
  token and its ``##`` continuation. WordPiece turns a whole word into [UNK] as soon as one of
  its pieces is missing; with these, a word the counted splits never held is still spelled out
  piece by piece when it is written in their characters. Measured with the packaged MiniLM on
  SST-2 (train + validation counted, test evaluated): they add 27 tokens to 11,575, the test
  split has no [UNK] with or without them (English text soon holds every letter piece) and the
  pruned model's mean cosine to the unpruned one goes from 0.9685 to 0.9688 (0.8172 to 0.8190
  with 1,000 rows per split): cheap insurance for rare characters, no gain on English words;
- ``frequent``: the vocabulary's first ids, whatever the data. WordPiece (and BPE) vocabularies
  list their tokens by frequency in the corpus the tokenizer was built on (MiniLM's: id 1997
  "the", 1998 "of", ... after [unused] and single characters), so these are general text's
  commonest words, which a test sentence may use where the counted splits never did;
- the recipe's ``extra`` tokens.

It writes an HF-layout checkpoint into a temporary folder: config.json (``vocab_size``,
``pad_token_id``), model.safetensors with the kept rows of the word embeddings, tokenizer.json
(WordPiece vocab, added tokens, post-processor and padding ids remapped), vocab.txt in the new
order (the two agree) and tokenizer_config.json's ``added_tokens_decoder`` remapped; then it
loads that with ``load_pretrained``, so every backend, the evaluation, the exported tokenizer
files, the manifest and the demo see one smaller model. The user's model folder is only read.
"""

from __future__ import annotations

import contextlib
import copy
import json
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from edgekit.errors import ConfigError
from edgekit.models.files import is_file, read_json_object

KEY = "export.vocabulary"
EMBEDDINGS = "embeddings.word_embeddings.weight"


def counted_splits(exporter, where: Path | None = None) -> tuple[str, ...]:
    """The splits whose tokens are counted: train and validation, less the evaluation split."""
    split = exporter.recipe.evaluation.split
    names = tuple(s for s in ("train", "validation") if s != split and s in exporter.splits)
    if not names:
        raise ConfigError(f"{where or 'recipe'}: {KEY}.keep: expected a train or validation split other than the "
                          f"evaluation split ({split}) to count the tokens 'from-data' keeps")
    return names


def token_counts(exporter, splits: tuple[str, ...]) -> np.ndarray:
    """int64 [vocabulary size]: how often the task's tokenisation of ``splits`` gives each id."""
    rows = [ids for s in splits for ids in exporter.features(exporter.splits[s]).ids]
    size = exporter.pretrained.tokenizer.max_id + 1
    return np.bincount(np.concatenate(rows), minlength=size) if rows else np.zeros(size, np.int64)


def special_ids(tokenizer) -> set[int]:
    """Ids every text needs: added tokens, [UNK], padding and the post-processor's [CLS] / [SEP]."""
    backend = tokenizer.backend
    unk = backend.token_to_id(backend.model.unk_token)
    return {*backend.get_added_tokens_decoder(), *backend.encode("", "").ids, tokenizer.pad_id, unk}


def spelling_ids(tokenizer, used) -> set[int]:
    """The single-character tokens, bare and ``##``, of every character of the tokens ``used``."""
    backend = tokenizer.backend
    prefix = backend.model.continuing_subword_prefix
    chars = {c for i in used for c in backend.id_to_token(int(i)).removeprefix(prefix)}
    pieces = (backend.token_to_id(piece) for c in chars for piece in (c, prefix + c))
    return {i for i in pieces if i is not None}


def kept_ids(exporter, section, counts: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
    """(sorted old ids to keep, how many tokens each rule adds beyond the rules before it)."""
    tokenizer = exporter.pretrained.tokenizer
    special = special_ids(tokenizer) | {exporter.pretrained.config.pad_token_id}
    rules = {"special": special,
             "data": set(np.flatnonzero(counts >= section.min_count).tolist()),
             "spelling": spelling_ids(tokenizer, set(np.flatnonzero(counts).tolist()) - special),
             "frequent": set(range(min(section.frequent, len(counts)))),
             "extra": {tokenizer.backend.token_to_id(t) for t in section.extra}}
    kept: set[int] = set()
    added = {}
    for name, ids in rules.items():
        added[name] = len(ids - kept)
        kept |= ids
    return np.array(sorted(kept), dtype=np.int64), added


def _remap_processor(node, ids: dict[str, int]) -> None:
    """The post-processor's special-token ids (TemplateProcessing, Bert/RobertaProcessing,
    Sequence) set from ``ids`` (token -> new id), in place."""
    if not isinstance(node, dict):
        return
    for spec in (node.get("special_tokens") or {}).values():
        spec["ids"] = [ids[t] for t in spec["tokens"]]
    for key in ("sep", "cls"):
        if key in node:
            node[key] = [node[key][0], ids[node[key][0]]]
    for inner in node.get("processors") or ():
        _remap_processor(inner, ids)


def _tokenizer_definition(tokenizer) -> dict:
    """tokenizer.json's content: the folder's own file (padding, truncation as written), else the
    tokenizer built from vocab.txt without any padding or truncation state."""
    if tokenizer.file.name == "tokenizer.json":
        return read_json_object(tokenizer.file)
    return {**json.loads(tokenizer.backend.to_str()), "truncation": None, "padding": None}


def write_tokenizer(tokenizer, kept: np.ndarray, folder: Path) -> None:
    """tokenizer.json, vocab.txt (same tokens, same ids), tokenizer_config.json and
    special_tokens_map.json for the ``kept`` old ids, renumbered 0..len(kept)-1."""
    new = {int(old): i for i, old in enumerate(kept)}
    definition = copy.deepcopy(_tokenizer_definition(tokenizer))
    model = definition["model"]
    if model.get("type") != "WordPiece":
        raise ConfigError(f"{KEY}.keep: 'from-data' expected a WordPiece tokenizer, {tokenizer.file} has a "
                          f"{model.get('type')} model")
    model["vocab"] = {t: new[i] for t, i in sorted(model["vocab"].items(), key=lambda kv: kv[1]) if i in new}
    for token in definition.get("added_tokens") or ():
        token["id"] = new[token["id"]]
    by_token = {tokenizer.backend.id_to_token(old): i for old, i in new.items()}
    _remap_processor(definition.get("post_processor"), by_token)
    if definition.get("padding"):
        definition["padding"]["pad_id"] = by_token[definition["padding"]["pad_token"]]
    (folder / "tokenizer.json").write_text(json.dumps(definition, ensure_ascii=False, indent=2), encoding="utf-8")
    (folder / "vocab.txt").write_text("".join(f"{t}\n" for t in model["vocab"]), encoding="utf-8")
    source = Path(tokenizer.folder)
    if is_file(source / "tokenizer_config.json"):
        settings = read_json_object(source / "tokenizer_config.json")
        decoder = settings.get("added_tokens_decoder")
        if decoder is not None:
            settings["added_tokens_decoder"] = {str(new[int(k)]): v for k, v in decoder.items()}
        (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2), encoding="utf-8")
    if is_file(source / "special_tokens_map.json"):
        shutil.copyfile(source / "special_tokens_map.json", folder / "special_tokens_map.json")


def write_pruned(pretrained, kept: np.ndarray, folder: Path) -> Path:
    """An HF-layout checkpoint of ``pretrained`` with only the ``kept`` word-embedding rows."""
    from edgekit.models.checkpoint import collect_weights, write_tensors

    folder.mkdir(parents=True)
    tensors = collect_weights(pretrained.model, pretrained.config)
    name = next(k for k in tensors if k.removeprefix("bert.") == EMBEDDINGS)
    tensors[name] = np.ascontiguousarray(tensors[name][kept])
    pad = int(np.searchsorted(kept, pretrained.config.pad_token_id))
    config = pretrained.config.replace(vocab_size=len(kept), pad_token_id=pad)
    write_tensors(folder, config, tensors)
    write_tokenizer(pretrained.tokenizer, kept, folder)
    return folder


def _real_tokens(rows: list[np.ndarray], tokenizer) -> list[np.ndarray]:
    """Each row's ids without the special tokens."""
    special = np.array(sorted(special_ids(tokenizer)))
    return [np.asarray(r, np.int64)[~np.isin(r, special)] for r in rows]


def evaluation_facts(unpruned, pruned, kept: np.ndarray) -> dict:
    """Tokens and words of the evaluation split: [UNK] share before and after, and the share of
    words (a piece and its ``##`` continuations) that the pruned vocabulary splits otherwise."""
    before, after = unpruned.pretrained.tokenizer, pruned.pretrained.tokenizer
    prefix = before.backend.model.continuing_subword_prefix
    continues = np.array([(before.backend.id_to_token(i) or "").startswith(prefix) for i in range(before.max_id + 1)])
    present = np.zeros(before.max_id + 1, bool)
    present[kept] = True
    words = changed = 0
    rows = _real_tokens(unpruned.data.ids, before)
    for ids in rows:
        if len(ids):
            starts = ~continues[ids]
            starts[0] = True  # a window may begin inside a word
            word = np.cumsum(starts) - 1
            words += int(word[-1]) + 1
            changed += len(np.unique(word[~present[ids]]))
    tokens_before = np.concatenate(rows)
    tokens_after = np.concatenate(_real_tokens(pruned.data.ids, after))
    unk_before, unk_after = (t.backend.token_to_id(t.backend.model.unk_token) for t in (before, after))
    return {"split": unpruned.recipe.evaluation.split, "tokens": len(tokens_before), "words": words,
            "unk_share_unpruned": float(np.mean(tokens_before == unk_before)) if len(tokens_before) else 0.0,
            "unk_share": float(np.mean(tokens_after == unk_after)) if len(tokens_after) else 0.0,
            "words_retokenized_share": changed / max(words, 1)}


def metric_facts(unpruned, pruned) -> dict:
    """The unpruned fp32 TensorFlow model on the evaluation split, and (tasks with one output
    row per text) the pruned fp32 TensorFlow model scored against it: its labels' accuracy and
    agreement, or its embeddings' cosine."""
    facts = {"unpruned_fp32_tensorflow": unpruned.task.score(unpruned.evaluation, unpruned.data,
                                                             unpruned.reference, None)}
    if not any(o.per_token for o in pruned.outputs):  # per-token rows differ once words split differently
        facts["fp32_tensorflow_vs_unpruned"] = pruned.task.score(pruned.evaluation, pruned.data, pruned.reference,
                                                                 unpruned.reference)
    return facts


@contextlib.contextmanager
def pruned(exporter, where: Path | None = None) -> Iterator[tuple[object, dict]]:
    """(an ``Exporter`` of the pruned model, the manifest's ``vocabulary`` facts) for the
    ``Exporter`` of the unpruned one; the pruned folder lives until the ``with`` ends (the export
    copies its tokenizer files), and the unpruned model is let go before the artifacts are made."""
    from edgekit.export.pipeline import Exporter
    from edgekit.models.pretrained import load_pretrained

    section = exporter.recipe.export.vocabulary
    splits = counted_splits(exporter, where)
    counts = token_counts(exporter, splits)
    kept, added = kept_ids(exporter, section, counts)
    exporter.log(f"vocabulary: keeping {len(kept):,} of {exporter.pretrained.config.vocab_size:,} tokens "
                 f"({', '.join(f'{n:,} {k}' for k, n in added.items())}), counted on {' + '.join(splits)}")
    with tempfile.TemporaryDirectory(prefix="edgekit-vocabulary-") as tmp:
        folder = write_pruned(exporter.pretrained, kept, Path(tmp) / Path(exporter.pretrained.source).name)
        smaller = Exporter(exporter.recipe, load_pretrained(folder), threads=exporter.threads, log=exporter.log)
        facts = {"keep": section.keep.value, "min_count": section.min_count, "frequent": section.frequent,
                 "extra": list(section.extra),
                 "counted_on": {s: len(exporter.splits[s]) for s in splits},
                 "tokens_kept": len(kept), "tokens_total": exporter.pretrained.config.vocab_size, "kept_by": added,
                 "evaluation": evaluation_facts(exporter, smaller, kept), **metric_facts(exporter, smaller)}
        del exporter
        yield smaller, facts
