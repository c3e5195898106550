"""Vocabulary pruning (``export.vocabulary``) on the tiny fixture model and its toy sentiment task.

The toy training split is written without the word ``good``: pruning drops it, and a test text
holding it is spelled ``g ##o ##o ##d`` (pieces the training words give); ``not`` is in no text
and no kept token has an ``n``, so it becomes [UNK].
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from toy_data import export_folder, write_recipe, write_toy_task

TARGETS = "export:\n  seq_len: 16\n  targets: [{format: onnx}, {format: tflite}]\n  vocabulary: %s\n" \
          "evaluation: {split: test}\n"
FROM_DATA = "{keep: from-data}"
HIDDEN = 32  # the fixture's hidden size: bytes per fp32 embedding row / 4


def _toy(tmp_path: Path) -> Path:
    toy = write_toy_task(tmp_path / "toy", train=64, test=24)
    train = (toy / "train.tsv").read_text().splitlines()
    (toy / "train.tsv").write_text("\n".join(line for line in train if "good" not in line.split()) + "\n")
    return toy


def _vocab_txt(folder: Path) -> list[str]:
    return (folder / "vocab.txt").read_text(encoding="utf-8").splitlines()


def _json_vocab(folder: Path) -> list[str]:
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    assert sorted(vocab.values()) == list(range(len(vocab)))
    return sorted(vocab, key=vocab.get)


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_pruned_model_keeps_the_data_tokens_and_their_rows(tmp_path):
    from edgekit.config import load_recipe
    from edgekit.export.pipeline import Exporter
    from edgekit.export.vocabulary import pruned
    from edgekit.models.checkpoint import read_weights
    from edgekit.models.pretrained import load_pretrained

    toy = _toy(tmp_path)
    model = toy / "model"
    before = _digests(model)
    recipe = load_recipe(write_recipe(toy, TARGETS % FROM_DATA))
    unpruned = Exporter(recipe, load_pretrained(model), threads=1, log=lambda line: None)
    whole = unpruned.pretrained.tokenizer.backend
    reference = unpruned.reference["logits"]
    test_texts = list(unpruned.evaluation.texts)
    with pruned(unpruned) as (smaller, facts):
        folder = Path(smaller.pretrained.tokenizer.folder)
        tokens = _vocab_txt(folder)
        assert tokens == _json_vocab(folder)  # vocab.txt and tokenizer.json: same tokens, same ids
        assert json.loads((folder / "config.json").read_text())["vocab_size"] == len(tokens) == facts["tokens_kept"]
        assert facts["tokens_total"] == 69 and len(tokens) < 69
        assert tokens[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        assert "good" not in tokens and "not" not in tokens and {"g", "##o", "##d", "movie"} <= set(tokens)

        small = smaller.pretrained.tokenizer.backend
        sentence = "the movie was great , bad !"
        old, new = whole.encode(sentence), small.encode(sentence)
        assert new.tokens == old.tokens
        assert new.ids == [tokens.index(t) for t in old.tokens] and new.ids != old.ids  # renumbered
        assert whole.encode("good").tokens[1:-1] == ["good"] and small.encode("good").tokens[1:-1] == ["g", "##o",
                                                                                                        "##o", "##d"]
        assert small.encode("not bad").tokens[1:-1] == ["[UNK]", "bad"]

        rows = read_weights(folder)["embeddings.word_embeddings.weight"]
        original = read_weights(model)["embeddings.word_embeddings.weight"]
        assert rows.shape == (len(tokens), HIDDEN)
        np.testing.assert_array_equal(rows, original[[whole.token_to_id(t) for t in tokens]])

        # texts of kept words: the same logits; the retokenised share is the test's "good"s among its words
        same = np.array(["good" not in t.split() for t in test_texts])
        assert 0 < same.sum() < len(same)
        np.testing.assert_allclose(smaller.reference["logits"][same], reference[same], atol=1e-5)
        words = [w for t in test_texts for w in t.split()]
        evaluation = facts["evaluation"]
        assert evaluation["words"] == len(words) and evaluation["unk_share"] == 0.0
        assert evaluation["words_retokenized_share"] == pytest.approx(words.count("good") / len(words))
        agreement = float((smaller.reference["logits"].argmax(-1) == reference.argmax(-1)).mean())
        assert facts["fp32_tensorflow_vs_unpruned"]["agreement"] == pytest.approx(agreement)
        assert facts["counted_on"] == {"train": len(unpruned.splits["train"])}
    assert not folder.exists()  # the temporary checkpoint is gone, the user's folder untouched
    assert _digests(model) == before


def test_frequent_keeps_the_vocabularys_first_ids_whatever_the_data(tmp_path):
    from edgekit.config import load_recipe
    from edgekit.config.enums import VocabularyKeep
    from edgekit.config.recipe import VocabularySection
    from edgekit.export.pipeline import Exporter
    from edgekit.export.vocabulary import counted_splits, kept_ids, token_counts
    from edgekit.models.pretrained import load_pretrained

    toy = _toy(tmp_path)
    exporter = Exporter(load_recipe(write_recipe(toy, TARGETS % FROM_DATA)), load_pretrained(toy / "model"),
                        threads=1, log=lambda line: None)
    counts = token_counts(exporter, counted_splits(exporter))
    data_only, _ = kept_ids(exporter, VocabularySection(keep=VocabularyKeep.FROM_DATA), counts)
    kept, added = kept_ids(exporter, VocabularySection(keep=VocabularyKeep.FROM_DATA, frequent=40), counts)
    assert set(kept) == set(data_only) | set(range(40))
    assert added["frequent"] == len(set(range(40)) - set(data_only)) > 0
    assert kept_ids(exporter, VocabularySection(keep=VocabularyKeep.FROM_DATA, frequent=10**6), counts)[0].size == 69


def test_export_is_smaller_and_ships_the_pruned_tokenizer(tmp_path):
    from edgekit.models.tokenizer import TextTokenizer

    toy = _toy(tmp_path)
    whole = export_folder(write_recipe(toy, TARGETS % "{keep: all}"), toy / "model", toy / "whole")
    recipe = toy / "recipe.yaml"
    recipe.write_text(recipe.read_text().replace("vocabulary: {keep: all}", "vocabulary: {keep: from-data, "
                                                                            "extra: [not]}"))
    small = export_folder(recipe, toy / "model", toy / "small")
    manifest = json.loads((small / "edgekit.json").read_text())
    facts = manifest["vocabulary"]
    tokens = _vocab_txt(small)
    assert tokens == _json_vocab(small) and "not" in tokens and "good" not in tokens
    assert len(tokens) == facts["tokens_kept"] and facts["kept_by"]["extra"] == 1
    assert TextTokenizer(small).vocab_size == len(tokens)
    assert "vocabulary" not in json.loads((whole / "edgekit.json").read_text())
    removed = 69 - len(tokens)
    sizes = {a["format"]: a["bytes"] for a in manifest["artifacts"]}
    for row in json.loads((whole / "edgekit.json").read_text())["artifacts"]:
        saved = row["bytes"] - sizes[row["format"]]
        assert removed * HIDDEN * 4 <= saved < (removed * HIDDEN * 4) * 1.5, (row["format"], saved, removed)
    report = (small / "report.md").read_text()
    assert f"{len(tokens):,} of 69 tokens kept" in report and "The unpruned model, fp32 TensorFlow" in report


@pytest.mark.parametrize(("vocabulary", "message"), [
    ("{keep: some}", "export.vocabulary.keep: expected one of 'all', 'from-data', got str 'some'"),
    ("{keep: all, extra: [good]}", "export.vocabulary.extra: expected only with keep 'from-data'"),
    ("{keep: from-data, min_count: 0}", "export.vocabulary.min_count: expected 1..2147483647, got 0"),
    ("{keep: from-data, frequent: -1}", "export.vocabulary.frequent: expected 0..2147483647, got -1"),
    ("{keep: all, frequent: 5000}", "export.vocabulary.frequent: expected only with keep 'from-data'"),
    ("{keep: from-data, extra: [bad, bad]}", "export.vocabulary.extra: expected each token once, got 'bad' twice"),
    ("{keep: from-data, mincount: 2}", "export.vocabulary.mincount: unknown key (did you mean 'min_count'?)"),
    ("{keep: from-data, extra: bad}", "export.vocabulary.extra: expected a list of text, got str 'bad'"),
])
def test_bad_vocabulary_settings_are_one_line_errors(tmp_path, vocabulary, message):
    from edgekit.config import load_recipe
    from edgekit.errors import ConfigError

    recipe = write_recipe(write_toy_task(tmp_path / "toy", train=4, test=4), TARGETS % vocabulary)
    with pytest.raises(ConfigError) as info:
        load_recipe(recipe)
    assert str(info.value).startswith(f"{recipe}: {message}") and "\n" not in str(info.value)


def test_from_data_needs_a_split_besides_the_evaluation_one(tmp_path):
    from edgekit.config import load_recipe
    from edgekit.errors import ConfigError

    recipe = write_recipe(write_toy_task(tmp_path / "toy", train=4, test=4), TARGETS % FROM_DATA)
    recipe.write_text(recipe.read_text().replace("train: train.tsv, ", ""))
    with pytest.raises(ConfigError, match=r"recipe.yaml: export.vocabulary.keep: expected a data.train or "
                                          r"data.validation file \(other than the evaluation split, test\)"):
        load_recipe(recipe)


def test_an_extra_token_outside_the_vocabulary_stops_the_export_first(tmp_path):
    from edgekit.cli import main

    toy = write_toy_task(tmp_path / "toy", train=4, test=4)
    recipe = write_recipe(toy, TARGETS % "{keep: from-data, extra: [bad, zebra]}")
    result = CliRunner().invoke(main, ["export", str(recipe), "--model", str(toy / "model"), "--out",
                                       str(toy / "out"), "--quiet"])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: {recipe}: export.vocabulary.extra[1]: expected a token of the model's "
                                     f"vocabulary ({toy / 'model' / 'vocab.txt'}), got 'zebra'")
    assert not (toy / "out").exists()
    checked = CliRunner().invoke(main, ["check", str(recipe)])  # the recipe loader refuses it, for every command
    assert checked.exit_code == 1 and "export.vocabulary.extra[1]: expected a token" in checked.output
