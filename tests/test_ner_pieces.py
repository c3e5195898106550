"""NER pieces: CoNLL/JSONL reading, the IOB2 entity metric, word windows and on-device decoding."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from edgekit.data.conll import TaggedDataset, read_conll, read_tagged_jsonl
from edgekit.errors import DataError
from edgekit.ondevice import entities
from edgekit.ondevice.entities import decode_entities, first_tokens, softmax, spans, word_windows
from edgekit.tasks import iob
from edgekit.tasks.iob import entity_scores
from edgekit.tasks.word_windows import IGNORE, encode_words, word_tags

CONLL = Path(__file__).resolve().parents[2] / "shared" / "data" / "conll2003"
TAGS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


@pytest.fixture(scope="module")
def minilm():
    from edgekit.models.registry import resolve_model
    from edgekit.models.tokenizer import TextTokenizer

    return TextTokenizer(resolve_model("minilm-l6"))


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def fails(read, path: Path, message: str, **options) -> None:
    with pytest.raises(DataError) as info:
        read(path, **options)
    assert str(info.value) == message and "\n" not in message


# --- reading ----------------------------------------------------------------------------------

def test_conll_skips_docstart_takes_first_and_last_columns_and_allows_crlf(tmp_path):
    text = ("-DOCSTART- -X- -X- O\r\n\r\nEU NNP B-NP B-ORG \r\nrejects VBZ B-VP O\r\n\r\n\r\n"
            "Peter NNP B-NP B-PER\r\nBlackburn NNP I-NP I-PER\r\n\r\n-DOCSTART- -X- -X- O\nBonn I-MISC")
    data = read_conll(write(tmp_path, "train.txt", text))
    assert data.words == (("EU", "rejects"), ("Peter", "Blackburn"), ("Bonn",))
    assert data.lines == (3, 7, 11) and len(data) == 3 and data.source == str(tmp_path / "train.txt")
    # O first, then B-/I- of each type sorted: B-MISC exists though only I-MISC was seen
    assert data.tag_names == ("O", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER")
    assert [t.tolist() for t in data.tags] == [[3, 0], [5, 6], [2]]
    assert data.tags[0].dtype == np.int32 and not data.tags[0].flags.writeable
    assert len(read_conll(tmp_path / "train.txt", max_examples=2)) == 2


def test_given_labels_fix_names_and_order(tmp_path):
    path = write(tmp_path, "a.txt", "Paris B-LOC\nis O\n\nAngela B-PER\n")
    data = read_conll(path, labels=TAGS)
    assert data.tag_names == TAGS and [t.tolist() for t in data.tags] == [[3, 0], [1]]


def test_jsonl_reads_like_conll_and_the_fingerprint_is_the_content(tmp_path):
    conll = read_conll(write(tmp_path, "a.txt", "Paris B-LOC\nis O\n\nAngela B-PER\n"), labels=TAGS)
    jsonl = read_tagged_jsonl(write(tmp_path, "a.jsonl", '{"w": ["Paris", "is"], "t": ["B-LOC", "O"]}\n\n'
                                    '{"w": ["Angela"], "t": ["B-PER"]}\n'), labels=TAGS, tokens_key="w", tags_key="t")
    assert jsonl.words == conll.words and jsonl.lines == (1, 3)
    assert jsonl.fingerprint() == conll.fingerprint()  # source and lines are not content
    other = TaggedDataset(conll.words, (np.array([4, 0]), np.array([1])), TAGS, conll.lines, conll.source)
    assert other.fingerprint() != conll.fingerprint() and len(conll.fingerprint()) == 64


def test_conll_errors_name_file_and_line(tmp_path):
    path = write(tmp_path, "t.txt", "EU B-ORG\nrejects O\nEU\n")
    fails(read_conll, path, f"{path}:3: one column 'EU' (expected a token and its tag, separated by whitespace)")
    path = write(tmp_path, "t.txt", "EU O\nPeter B_PER\n")
    fails(read_conll, path, f"{path}:2: tag 'B_PER' is not IOB2 (expected O, B-TYPE or I-TYPE)")
    path = write(tmp_path, "t.txt", "Peter B-\n")
    fails(read_conll, path, f"{path}:1: tag 'B-' is not IOB2 (expected O, B-TYPE or I-TYPE)")
    path = write(tmp_path, "t.txt", "Angela B-PER\n\nEU O\nBonn B-LOC\n")
    fails(read_conll, path, f"{path}:4: tag 'B-LOC' is not among the labels (expected one of 'O', 'B-PER', "
                            "'I-PER'; name every tag in data.labels)", labels=("O", "B-PER", "I-PER"))
    for empty in ("", "-DOCSTART- -X- O\n\n \n"):
        path = write(tmp_path, "t.txt", empty)
        fails(read_conll, path, f"{path}: no sentences (expected 'token TAG' lines, a blank line between sentences)")
    path = write(tmp_path, "t.txt", b"EU O\nM\xfcnchen B-LOC\n")
    fails(read_conll, path, f"{path}:2: invalid UTF-8 byte 0xfc (expected UTF-8 text)")
    fails(read_conll, tmp_path / "none.txt", f"{tmp_path / 'none.txt'}: no such file (expected an existing UTF-8 "
                                             "text file)")


def test_jsonl_errors_name_file_and_line(tmp_path):
    def check(body: str, message: str) -> None:
        path = write(tmp_path, "t.jsonl", '{"tokens": ["EU"], "tags": ["B-ORG"]}\n' + body)
        fails(read_tagged_jsonl, path, f"{path}:2: {message}")

    check('{"tokens": [], "tags": []}', "empty sentence (expected at least one token in key 'tokens')")
    check('{"tokens": ["a", "b"], "tags": ["O"]}', "key 'tokens' has 2 items and key 'tags' 1 (expected one "
                                                   "tag per token)")
    check('{"tokens": ["a", 5], "tags": ["O", "O"]}', "tokens[1] is int 5 (expected each token a non-blank string)")
    check('{"tokens": ["a", " "], "tags": ["O", "O"]}', "tokens[1] is blank (expected each token a non-blank string)")
    check('{"tokens": "a b", "tags": ["O"]}', "key 'tokens' is str 'a b' (expected a list of token strings)")
    check('{"tokens": ["a"]}', "missing key 'tags' (the object has 'tokens')")
    check('{"tokens": ["a"], "tags": ["X-PER"]}', "tag 'X-PER' is not IOB2 (expected O, B-TYPE or I-TYPE)")
    check('["a"]', "found list ['a'] (expected one JSON object per line)")
    path = write(tmp_path, "t.jsonl", "\n\n")
    fails(read_tagged_jsonl, path, f"{path}: no sentences (expected one JSON object per line)")


@pytest.mark.skipif(not CONLL.is_dir(), reason="CoNLL-2003 is not in shared/data")
@pytest.mark.parametrize("split, count", [("train", 14041), ("dev", 3250), ("test", 3453)])
def test_real_conll_2003(split, count):
    data = read_conll(CONLL / f"{split}.txt")
    assert len(data) == count
    assert data.tag_names == ("O", "B-LOC", "I-LOC", "B-MISC", "I-MISC", "B-ORG", "I-ORG", "B-PER", "I-PER")


# --- the metric -------------------------------------------------------------------------------

@pytest.mark.parametrize("tags, expected", [
    (["B-PER", "I-PER", "O", "B-LOC"], [("PER", 0, 2), ("LOC", 3, 4)]),
    (["O", "I-PER", "I-PER"], [("PER", 1, 3)]),  # an I- without a B- starts an entity
    (["I-LOC"], [("LOC", 0, 1)]),
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),  # another type ends it and starts one
    (["I-PER", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 2)]),
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),  # two adjacent B-X: two entities
    (["O", "B-ORG", "I-ORG"], [("ORG", 1, 3)]),  # at the sentence's end
    (["O", "O"], []),
    ([], []),
])
def test_spans_follow_conlleval(tags, expected):
    assert spans(tags) == expected


def test_spans_refuse_a_tag_that_is_not_iob2():
    with pytest.raises(ValueError, match="'E-PER' is not IOB2"):
        spans(["O", "E-PER"])
    assert iob.spans is entities.spans  # one copy of the rule for the metric and the device


def test_entity_scores_micro_and_per_type():
    gold = [["B-PER", "I-PER", "O", "B-ORG"], ["B-LOC", "O", "B-LOC"]]
    predicted = [["B-PER", "I-PER", "O", "B-LOC"], ["I-LOC", "O", "B-LOC"]]
    scores = entity_scores(gold, predicted)  # 3 of 4 predicted right, 3 of 4 gold found
    assert scores["precision"] == 0.75 and scores["recall"] == 0.75 and scores["f1"] == 0.75
    assert scores["per_type"] == {
        "LOC": {"f1": 0.8, "precision": 2 / 3, "recall": 1.0, "support": 2},
        "ORG": {"f1": 0.0, "precision": 0.0, "recall": 0.0, "support": 1},
        "PER": {"f1": 1.0, "precision": 1.0, "recall": 1.0, "support": 1},
    }


def test_partial_overlap_is_a_false_positive_and_a_false_negative():
    scores = entity_scores([["B-PER", "I-PER", "O", "B-LOC"]], [["B-PER", "O", "O", "B-LOC"]])
    assert (scores["precision"], scores["recall"], scores["f1"]) == (0.5, 0.5, 0.5)
    assert scores["per_type"]["PER"] == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "support": 1}


def test_empty_predictions_and_other_sentences_score_zero():
    nothing = entity_scores([["B-PER", "O"]], [["O", "O"]])
    assert (nothing["precision"], nothing["recall"], nothing["f1"]) == (0.0, 0.0, 0.0)
    assert nothing["per_type"] == {"PER": {"f1": 0.0, "precision": 0.0, "recall": 0.0, "support": 1}}
    elsewhere = entity_scores([["B-PER"], ["O"]], [["O"], ["B-PER"]])  # the same span in another sentence
    assert elsewhere["f1"] == 0.0 and elsewhere["per_type"]["PER"]["precision"] == 0.0
    assert entity_scores([["O"]], [["O"]]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0, "per_type": {}}
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags and 1 predicted"):
        entity_scores([["O", "O"]], [["O"]])


# --- windows ----------------------------------------------------------------------------------

def test_word_windows_cut_between_words():
    assert word_windows([0, 0, 1, 2, 2, 2, 3], 3) == [(0, 3), (3, 6), (6, 7)]
    assert word_windows([0, 1, 2], 5) == [(0, 3)]
    assert word_windows([None, 0, None], 2) == [(0, 2), (2, 3)]  # a None token is a unit of its own
    assert word_windows([], 4) == []
    with pytest.raises(ValueError, match="max_tokens is 0"):
        word_windows([0], 0)


def test_a_word_longer_than_a_window_gets_windows_of_its_own():
    assert word_windows([0, 1, 1, 1, 1, 1, 2, 3], 2) == [(0, 1), (1, 3), (3, 5), (5, 6), (6, 8)]


def test_word_windows_cover_every_token_once_on_random_words():
    rng = np.random.default_rng(0)
    for _ in range(200):
        word_ids = [w for w in range(rng.integers(1, 12)) for _ in range(rng.integers(1, 6))]
        limit = int(rng.integers(1, 8))
        windows = word_windows(word_ids, limit)
        assert [a for a, _ in windows] == [0] + [b for _, b in windows[:-1]] and windows[-1][1] == len(word_ids)
        for a, b in windows:
            assert 0 < b - a <= limit
            whole = a == 0 or word_ids[a - 1] != word_ids[a]
            assert whole or word_ids.count(word_ids[a]) > limit  # cut inside a word only when it cannot fit


def test_first_tokens_and_softmax():
    assert first_tokens([None, 0, 0, 1, None, 2, 2]).tolist() == [-1, 0, -1, 1, -1, 2, -1]
    assert first_tokens([None, 0, 0, 1]).dtype == np.int32
    np.testing.assert_allclose(softmax([[0.0, math.log(3.0)], [1000.0, 1000.0]]), [[0.25, 0.75], [0.5, 0.5]])


def test_encode_words_splits_a_sentence_and_labels_first_sub_tokens(minilm):
    backend = minilm.backend
    cls, sep, unk = (backend.token_to_id(t) for t in ("[CLS]", "[SEP]", "[UNK]"))
    ids = {t: backend.token_to_id(t) for t in ("angela", "mer", "##kel", "visited", "paris", ".", "bonn")}
    sentences = [["Angela", "Merkel", "visited", "Paris", "."], ["Bonn", "\x00", "."]]
    tags = [np.array([1, 2, 0, 3, 0]), np.array([3, 0, 0])]
    w = encode_words(minilm, sentences, max_length=5, tags=tags)  # 3 content tokens a window
    assert [x.tolist() for x in w.ids] == [
        [cls, ids["angela"], ids["mer"], ids["##kel"], sep], [cls, ids["visited"], ids["paris"], ids["."], sep],
        [cls, ids["bonn"], unk, ids["."], sep]]  # the control character, which encodes to nothing, is [UNK]
    assert [x.tolist() for x in w.labels] == [[IGNORE, 1, 2, IGNORE, IGNORE], [IGNORE, 0, 3, 0, IGNORE],
                                              [IGNORE, 3, 0, 0, IGNORE]]
    assert [x.tolist() for x in w.word_index] == [[-1, 0, 1, -1, -1], [-1, 2, 3, 4, -1], [-1, 0, 1, 2, -1]]
    assert all(t.tolist() == [0] * 5 and t.dtype == np.int32 for t in w.type_ids)
    assert w.sentence.tolist() == [0, 0, 1] and w.windowed == 1 and w.num_words.tolist() == [5, 3]
    assert encode_words(minilm, sentences, max_length=8).labels is None


def test_word_tags_stitch_windows_back_to_one_prediction_per_word(minilm):
    sentences = [["Parisxxyyzz", "is", "big"], ["Bonn"]]  # paris ##xx ##y ##y ##zz: cut inside the word
    w = encode_words(minilm, sentences, max_length=4)
    assert [len(x) for x in w.ids] == [4, 4, 3, 4, 3] and w.sentence.tolist() == [0, 0, 0, 0, 1]
    assert [x.tolist() for x in w.word_index][:4] == [[-1, 0, -1, -1], [-1, -1, -1, -1], [-1, -1, -1], [-1, 1, 2, -1]]
    logits = np.zeros((5, 6, 4), np.float32)  # S = 6 > every window: padded rows
    logits[:, :, 0] = 1.0  # tag 0 wherever nothing else is set: a token not read would show as 0
    logits[0, 1, 3] = logits[3, 1, 2] = logits[3, 2, 1] = logits[4, 1, 2] = 5.0
    logits[1, 1, 1] = 9.0  # a later sub-token of word 0 is not its prediction
    assert [t.tolist() for t in word_tags(w, logits)] == [[3, 2, 1], [2]]
    with pytest.raises(ValueError, match=r"logits of shape \(5, 3, 4\) for 5 windows of up to 4 tokens"):
        word_tags(w, logits[:, :3])


# --- on-device decoding -----------------------------------------------------------------------

def test_decode_entities_end_to_end_through_the_minilm_tokenizer(minilm):
    text = "Angela Merkel visited Paris ."
    backend = minilm.backend
    backend.no_truncation()
    backend.no_padding()
    encoding = backend.encode(text)
    content = [i for i, special in enumerate(encoding.special_tokens_mask) if not special]
    word_ids = [encoding.word_ids[i] for i in content]
    offsets = [encoding.offsets[i] for i in content]
    assert [encoding.tokens[i] for i in content] == ["angela", "mer", "##kel", "visited", "paris", "."]
    assert word_windows(word_ids, 2) == [(0, 1), (1, 3), (3, 5), (5, 6)]
    logits = np.zeros((6, len(TAGS)))
    for token, (tag, value) in enumerate([("B-PER", 3.0), ("I-PER", 2.0), ("B-LOC", 9.0), ("O", 2.0),
                                          ("B-LOC", 2.0), ("O", 2.0)]):
        logits[token, TAGS.index(tag)] = value  # "##kel" says B-LOC, but only a word's first token counts
    p2, p3 = math.exp(2) / (math.exp(2) + 4), math.exp(3) / (math.exp(3) + 4)
    assert decode_entities(logits, word_ids, offsets, TAGS, text) == [
        {"type": "PER", "text": "Angela Merkel", "start": 0, "end": 13, "score": round((p3 + p2) / 2, 4)},
        {"type": "LOC", "text": "Paris", "start": 22, "end": 27, "score": round(p2, 4)},
    ]
    with pytest.raises(ValueError, match=r"logits of shape \(6, 4\) and 6 offsets for 6 tokens and 5 labels"):
        decode_entities(logits[:, :4], word_ids, offsets, TAGS, text)


def test_decode_entities_groups_words_with_the_metric_rules():
    text = "New York Bonn"
    word_ids, offsets = [0, 1, 2], [(0, 3), (4, 8), (9, 13)]
    logits = np.log(np.array([[0.1, 0.1, 0.1, 0.1, 0.6], [0.1, 0.1, 0.1, 0.1, 0.6], [0.1, 0.1, 0.1, 0.5, 0.2]]))
    assert decode_entities(logits, word_ids, offsets, TAGS, text) == [  # I-LOC I-LOC B-LOC
        {"type": "LOC", "text": "New York", "start": 0, "end": 8, "score": 0.6},
        {"type": "LOC", "text": "Bonn", "start": 9, "end": 13, "score": 0.5},
    ]
