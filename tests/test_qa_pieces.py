"""SQuAD reading, the official metric, QA windows and span decoding, on hand-made cases and the
real SQuAD v1.1 dev file through MiniLM's tokenizer."""

from __future__ import annotations

import ast
import copy
import json
from pathlib import Path

import numpy as np
import pytest

from edgekit.data.squad import QADataset, read_squad
from edgekit.errors import DataError
from edgekit.ondevice.answers import best_span
from edgekit.tasks.qa_windows import encode_questions, predict_answers
from edgekit.tasks.question_answering import MAX_ANSWER_LENGTH, N_BEST, QuestionAnswering, windows
from edgekit.tasks.squad_metric import exact_match, f1, normalize_answer, squad_scores

SQUAD_DEV = Path("/work/shared/data/squad/dev-v1.1.json")
DECODE = {"n_best": N_BEST, "max_answer_length": MAX_ANSWER_LENGTH}  # best_span's keywords as edgekit scores
CONTEXT = "Denver beat Carolina 24-10 in Santa Clara."
SMALL = {"version": "1.1", "data": [
    {"title": "A", "paragraphs": [{"context": CONTEXT, "qas": [
        {"id": "q1", "question": " Who won? ", "answers": [{"text": "Denver", "answer_start": 0}]},
        {"id": "q2", "question": "Where?", "answers": [{"text": "Santa Clara", "answer_start": 30},
                                                       {"text": "Clara", "answer_start": 36}]}]}]},
    {"title": "B", "paragraphs": [{"context": "Paris is in France.", "qas": [
        {"id": "q3", "question": "Which country?", "answers": [{"text": "France", "answer_start": 12}]}]}]}]}


def write(tmp_path: Path, edit=None, name: str = "squad.json") -> Path:
    data = copy.deepcopy(SMALL)
    if edit is not None:
        edit(data)
    path = tmp_path / name
    path.write_text(json.dumps(data, indent=1))
    return path


def qa(data, article=0, question=1):
    return data["data"][article]["paragraphs"][0]["qas"][question]


@pytest.fixture(scope="module")
def tokenizer():
    from edgekit.models.registry import resolve_model
    from edgekit.models.tokenizer import TextTokenizer

    return TextTokenizer(resolve_model("minilm-l6"))


@pytest.fixture(scope="module")
def dev():
    return read_squad(SQUAD_DEV)


# -- reading ---------------------------------------------------------------------------------------

def test_read_small_file_keeps_every_answer_and_selects_articles(tmp_path):
    path = write(tmp_path)
    ds = read_squad(path)
    assert ds.ids == ("q1", "q2", "q3") and len(ds) == 3
    assert ds.questions == ("Who won?", "Where?", "Which country?")
    assert ds.contexts[0] is ds.contexts[1] and ds.contexts[2] == "Paris is in France."
    assert ds.answers[1] == ("Santa Clara", "Clara") and ds.answer_starts[1] == (30, 36)
    assert ds.articles == (0, 0, 1) and ds.source == str(path)
    assert read_squad(path, articles=(1, 2)).ids == ("q3",)
    assert read_squad(path, articles=(-1, None)).articles == (1,)
    assert read_squad(path, articles=(0, 99), max_examples=2).ids == ("q1", "q2")


def test_fingerprint_follows_content_not_path(tmp_path):
    a = read_squad(write(tmp_path, name="a.json"))
    b = read_squad(write(tmp_path, name="b.json"))
    c = read_squad(write(tmp_path, lambda d: qa(d).update(question="Where, then?"), name="c.json"))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 64
    assert read_squad(write(tmp_path), articles=(0, 1)).fingerprint() != a.fingerprint()


@pytest.mark.parametrize("edit, message", [
    (lambda d: qa(d)["answers"][0].update(answer_start=29),
     "question q2: answer 'Santa Clara' is not at answer_start 29 (the context there reads ' Santa Clar')"),
    (lambda d: qa(d)["answers"][1].update(answer_start=40),
     "question q2: answer 'Clara' at answer_start 40 does not fit in the 42-character context "
     "(expected 0 <= answer_start <= 37)"),
    (lambda d: qa(d).update(answers=[]),
     "question q2: no answers (expected at least one gold answer, as in SQuAD v1.1; SQuAD v2's "
     "unanswerable questions are not supported)"),
    (lambda d: qa(d).update(question="  "), "question q2: empty question (expected the question's text)"),
    (lambda d: qa(d, 1, 0).update(id="q1"),
     "question q1: data[1].paragraphs[0].qas[0] reuses the id of data[0].paragraphs[0].qas[0] "
     "(expected each question id once)"),
    (lambda d: qa(d).pop("id"),
     "data[0].paragraphs[0].qas[1]: missing key 'id' (the object has 'question', 'answers')"),
    (lambda d: qa(d)["answers"][0].update(answer_start="30"),
     "question q2: data[0].paragraphs[0].qas[1].answers[0].answer_start is str '30' (expected an integer)"),
    (lambda d: qa(d)["answers"][0].update(text=""),
     "question q2: data[0].paragraphs[0].qas[1].answers[0]: empty answer text "
     "(expected the answer as it reads in the context)"),
    (lambda d: d["data"][1].update(paragraphs={}), "data[1].paragraphs is dict {} (expected a list)"),
    (lambda d: d.pop("data"), "missing key 'data' (the object has 'version')"),
    (lambda d: d.update(data=[[]]), "data[0] is list [] (expected a JSON object)"),
])
def test_bad_files_are_one_line_naming_the_question(tmp_path, edit, message):
    path = write(tmp_path, edit)
    with pytest.raises(DataError) as err:
        read_squad(path)
    assert str(err.value) == f"{path}: {message}"


def test_errors_outside_the_selected_articles_still_count(tmp_path):
    path = write(tmp_path, lambda d: qa(d, 1, 0)["answers"][0].update(text="Spain"))
    with pytest.raises(DataError, match="question q3: answer 'Spain' is not at answer_start 12 "):
        read_squad(path, articles=(0, 1))


def test_unreadable_files_and_empty_selections(tmp_path):
    cases = {"missing.json": None, "bytes.json": b'{"data": [\n"\xff"]}', "broken.json": b'{"data": [\n{"x": 1,}]}'}
    for name, raw in cases.items():
        if raw is not None:
            (tmp_path / name).write_bytes(raw)
    messages = []
    for name in cases:
        with pytest.raises(DataError) as err:
            read_squad(tmp_path / name)
        messages.append(str(err.value).removeprefix(str(tmp_path) + "/"))
    assert messages == [
        "missing.json: no such file (expected an existing UTF-8 text file)",
        "bytes.json:2: invalid UTF-8 byte 0xff (expected UTF-8 text)",
        "broken.json:2: invalid JSON: Expecting property name enclosed in double quotes at column 9 "
        "(expected a SQuAD v1.1 JSON file)"]
    path = write(tmp_path)
    with pytest.raises(DataError) as err:
        read_squad(path, articles=(2, 5))
    assert str(err.value) == f"{path}: articles (2, 5) hold no questions (expected questions; the file has " \
                             "2 articles, numbered from 0)"


def test_real_dev_set_counts_and_offsets(dev):
    assert len(dev) == 10_570 and len(set(dev.ids)) == 10_570 and set(dev.articles) == set(range(48))
    assert len({c for c in dev.contexts}) == 2_067
    assert all(c[s:s + len(t)] == t for c, texts, starts in zip(dev.contexts, dev.answers, dev.answer_starts)
               for t, s in zip(texts, starts))
    train, test = read_squad(SQUAD_DEV, articles=(0, 32)), read_squad(SQUAD_DEV, articles=(32, 48))
    assert (len(train), len(test)) == (7_235, 3_335) and not set(train.ids) & set(test.ids)
    assert train.ids + test.ids == dev.ids


# -- the official metric ---------------------------------------------------------------------------

def test_normalize_answer_follows_the_official_order():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple a day\tthe end") == "apple day end"
    assert normalize_answer("Theatre, anna, another") == "theatre anna another"  # whole words only
    assert normalize_answer("a-team") == "ateam"  # punctuation goes before articles
    assert normalize_answer("U.S.A.") == "usa" and normalize_answer("The") == ""


def test_exact_match_and_f1_by_hand():
    assert exact_match("the Denver Broncos.", ["Broncos", "Denver  broncos"]) == 1.0
    assert exact_match("Denver", ["Denver Broncos"]) == 0.0
    # 2 shared tokens of 3 predicted and 2 gold: P 2/3, R 1, F1 = 2 * 2/3 / (5/3) = 0.8
    assert f1("the Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)
    assert exact_match("the Denver Broncos team", ["Denver Broncos"]) == 0.0
    # multiplicity counts: "x x y" vs "x y y" share one x and one y: P = R = 2/3
    assert f1("x x y", ["x y y"]) == pytest.approx(2 / 3)
    assert f1("Broncos", ["Denver Broncos", "the Broncos"]) == 1.0  # best gold
    assert f1("Denver", ["Denver Broncos", "Carolina"]) == pytest.approx(2 / 3)
    assert exact_match("", ["Denver"]) == 0.0 and f1("", ["Denver"]) == 0.0
    assert f1("Carolina Panthers", ["Denver Broncos"]) == 0.0


def test_squad_scores_counts_missing_predictions_as_zero(tmp_path):
    ds = read_squad(write(tmp_path))
    scores = squad_scores({"q1": "Denver!", "q2": "in Santa Clara", "other": "x"}, ds)
    # q1 EM 1 F1 1; q2 vs "Santa Clara": P 2/3 R 1 -> 0.8 (vs "Clara": P 1/3 R 1 -> 0.5); q3 missing
    assert scores == pytest.approx({"exact_match": 1 / 3, "f1": 1.8 / 3})


# -- span decoding ---------------------------------------------------------------------------------

def _offsets(n: int, context: range) -> np.ndarray:
    """[1, n, 2]: token t of the context at characters (10 t, 10 t + 5); (-1, -1) elsewhere."""
    out = np.full((1, n, 2), -1)
    for t in context:
        out[0, t] = (10 * t, 10 * t + 5)
    return out


def test_best_span_skips_an_end_before_its_start():
    offsets = _offsets(8, range(3, 8))
    start = np.array([[0, 0, 0, .5, 0, 0, 5, 0.]])  # best start (6) is after the best end (4)
    end = np.array([[0, 0, 0, 0, 6, 0, 0, 2.]])
    assert best_span(start, end, offsets, **DECODE) == {"start": 60, "end": 75, "score": 7.0, "window": 0}
    # with only the top start and end paired, (6, 4) is the only pair and it is refused
    assert best_span(start, end, offsets, **{**DECODE, "n_best": 1}) is None


def test_best_span_stays_in_the_context_and_under_the_length_limit():
    offsets = _offsets(10, range(4, 9))  # tokens 0-3 question and specials, 9 padding
    start = np.array([[9, 8, 0, 0, 3, 0, 0, 0, 0, 9.]])  # the question and the padding score highest
    end = np.array([[0, 0, 0, 0, 0, 0, 2, 0, 4, 9.]])
    assert best_span(start, end, offsets, **DECODE) == {"start": 40, "end": 85, "score": 7.0, "window": 0}
    # 4..8 is 5 tokens; at most 3: the best is start 4 with end 6
    assert best_span(start, end, offsets, **{**DECODE, "max_answer_length": 3}) == {"start": 40, "end": 65,
                                                                                     "score": 5.0, "window": 0}


def test_best_span_over_two_windows():
    offsets = np.concatenate([_offsets(6, range(2, 6)), _offsets(6, range(2, 5))])
    offsets[1, 2:5] += 30  # window 1 starts 3 tokens further into the context
    start = np.array([[0, 0, 2, 0, 0, 0], [0, 0, 0, 3, 0, 9.]])
    end = np.array([[0, 0, 0, 2, 0, 0], [0, 0, 0, 0, 2, 0.]])
    assert best_span(start, end, offsets, **DECODE) == {"start": 60, "end": 75, "score": 5.0, "window": 1}
    assert best_span(start[:1], end[:1], offsets[:1], **DECODE) == {"start": 20, "end": 35, "score": 4.0,
                                                                     "window": 0}
    assert best_span(start, end, np.full((2, 6, 2), -1), **DECODE) is None
    with pytest.raises(ValueError, match=r"offsets \[W, S, 2\]"):
        best_span(start, end, offsets[:, :5], **DECODE)


def test_answers_module_runs_without_edgekit():
    from edgekit.ondevice import answers

    tree = ast.parse(Path(answers.__file__).read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert roots == {"__future__", "numpy"}


# -- windows ---------------------------------------------------------------------------------------

def _dataset(question: str, context: str, answers: tuple[str, ...], starts: tuple[int, ...]) -> QADataset:
    return QADataset(("q",), (question,), (context,), (answers,), (starts,), (0,), "hand")


def _context_tokens(windows, i) -> list[tuple[int, int]]:
    return [tuple(o) for o in windows.offsets[i].tolist() if o[0] >= 0]


def test_windows_overlap_by_the_stride_and_label_the_answer(tokenizer):
    context = "one two three four five six seven eight nine ten eleven twelve"
    ds = _dataset("what number?", context, ("five six",), (context.index("five six"),))
    # [CLS] what number ? [SEP] + 6 context tokens + [SEP] = 12; windows over context tokens 0-5, 4-9, 8-11
    w = encode_questions(tokenizer, ds, max_length=12, doc_stride=2, max_query_length=4)
    assert len(w) == 3 and w.windowed == 1 and w.example.tolist() == [0, 0, 0]
    words = [context[a:b] for i in range(3) for a, b in _context_tokens(w, i)]
    assert words == context.split()[0:6] + context.split()[4:10] + context.split()[8:12]
    assert w.type_ids[0].tolist() == [0] * 5 + [1] * 7 and w.offsets[0][:5].tolist() == [[-1, -1]] * 5
    assert w.start_positions.tolist() == [9, 5, 0] and w.end_positions.tolist() == [10, 6, 0]
    assert w.ids[0].dtype == np.int32 and w.example.dtype == np.int64 and w.offsets[0].shape == (12, 2)
    with pytest.raises(ValueError, match="leaves 2 context tokens after a 7-token question; expected more than"):
        encode_questions(tokenizer, ds, max_length=12, doc_stride=2, max_query_length=7)


def test_long_questions_are_cut_and_mid_word_answers_give_way(tokenizer):
    # the first gold '8' is the 8 of '18': the target is the second, 'eighteen'
    ds = _dataset("one two three four five six seven", "they won 20-18 . eighteen fans came .", ("8", "eighteen"),
                  (13, 17))
    w = encode_questions(tokenizer, ds, max_length=32, doc_stride=4, max_query_length=4)
    question = [tokenizer.backend.id_to_token(i) for i, t in zip(w.ids[0].tolist(), w.type_ids[0]) if t == 0]
    assert question == ["[CLS]", "one", "two", "three", "four", "[SEP]"]
    first, last = w.start_positions[0], w.end_positions[0]
    assert ds.contexts[0][w.offsets[0][first, 0]:w.offsets[0][last, 1]] == "eighteen"


def _oracle_logits(w) -> tuple[np.ndarray, np.ndarray]:
    """[N, S] logits 10 at each window's gold start / end, 0 elsewhere (the [CLS] label is masked)."""
    size = max(len(i) for i in w.ids) + 3  # padding past the longest window is ignored
    start, end = np.zeros((len(w), size)), np.zeros((len(w), size))
    rows = np.arange(len(w))
    start[rows, w.start_positions] = end[rows, w.end_positions] = 10.0
    return start, end


@pytest.mark.parametrize("max_length, stride, query, windows, windowed, lost", [
    (384, 128, 64, 1_077, 20, 17), (64, 16, 24, 4_739, 994, 3_397)])
def test_real_windows_decode_to_gold_answers(tokenizer, max_length, stride, query, windows, windowed, lost):
    ds = read_squad(SQUAD_DEV, articles=(0, 2))
    w = encode_questions(tokenizer, ds, max_length, stride, query)
    assert len(ds) == 1_057 and (len(w), w.windowed, int((w.start_positions == 0).sum())) == (windows, windowed, lost)
    for i in range(len(w)):  # every context token is in a window, in order, each next one sharing `stride`
        if i and w.example[i] == w.example[i - 1]:
            before, now = _context_tokens(w, i - 1), _context_tokens(w, i)
            assert now[:stride] == before[-stride:] and now[stride] > before[-1]
    assert max(int((t == 0).sum()) for t in w.type_ids) <= query + 2
    for i in np.flatnonzero(w.start_positions):
        q, spans = w.example[i], w.offsets[i]
        text = ds.contexts[q][spans[w.start_positions[i], 0]:spans[w.end_positions[i], 1]]
        assert normalize_answer(text) in {normalize_answer(t) for t in ds.answers[q]}
    answers = predict_answers(w, ds, *_oracle_logits(w), **DECODE)
    assert squad_scores(answers, ds) == {"exact_match": 1.0, "f1": 1.0}


def test_windows_cover_whole_contexts(tokenizer):
    ds = read_squad(SQUAD_DEV, articles=(0, 1))
    w = encode_questions(tokenizer, ds, 64, 16, 24)
    tokenizer.backend.no_truncation()
    for q in (0, 100, len(ds) - 1):
        alone = [tuple(o) for o in tokenizer.backend.encode(ds.contexts[q], add_special_tokens=False).offsets]
        covered = sorted({t for i in np.flatnonzero(w.example == q) for t in _context_tokens(w, i)})
        assert covered == alone


def test_predict_answers_checks_shapes(tokenizer, tmp_path):
    ds = read_squad(write(tmp_path))
    w = encode_questions(tokenizer, ds, 32, 8, 8)
    start, end = _oracle_logits(w)
    assert predict_answers(w, ds, start, end, **DECODE) == {"q1": "Denver", "q2": "Santa Clara", "q3": "France"}
    # "Santa Clara" is 2 tokens; at most 1: "Santa" (10 + 0) and "Clara" (0 + 10) tie, the earlier wins
    assert predict_answers(w, ds, start, end, **{**DECODE, "max_answer_length": 1}) == {
        "q1": "Denver", "q2": "Santa", "q3": "France"}
    longest = max(len(i) for i in w.ids)
    with pytest.raises(ValueError, match=rf"expected start and end logits \[3, >= {longest}\]"):
        predict_answers(w, ds, start[:, :longest - 1], end[:, :longest - 1], **DECODE)


@pytest.mark.parametrize("max_length, stride, query", [(384, 128, 64), (128, 46, 32), (64, 22, 16), (32, 10, 8)])
def test_window_settings_shrink_for_short_windows_and_are_what_features_use(tokenizer, max_length, stride, query):
    """BERT's 128-token stride and 64-token question for 384-token windows; shorter windows keep
    at most a quarter for the question and share at most half of the context's room."""
    assert windows(max_length) == {"doc_stride": stride, "max_query_length": query, **DECODE}
    long_question = " ".join(["which"] * 70)  # 70 tokens: cut to the query cap
    context = " ".join(f"w{i}" for i in range(400))
    ds = QADataset(("a", "b"), ("what?", long_question), (context,) * 2, ((),) * 2, ((),) * 2, (0, 0), "hand")
    w = QuestionAnswering().features(ds, tokenizer, max_length, ("input_ids",)).meta
    assert max(int((t == 0).sum()) for t in w.type_ids) == query + 2  # [CLS] question [SEP]
    shared = [len(set(_context_tokens(w, i - 1)) & set(_context_tokens(w, i)))
              for i in range(1, len(w)) if w.example[i] == w.example[i - 1]]
    assert shared and set(shared) == {stride}
