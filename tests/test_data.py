"""edgekit.data: splits load with one set of label names; every bad file fails with one FILE:LINE line."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from edgekit.config import DataFormat, DataSection
from edgekit.data import TextDataset, load_split, load_splits, load_unlabeled
from edgekit.errors import DataError, MissingDependencyError

SST2 = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def tsv(folder: Path, data: bytes | str, name: str = "train.tsv", **options) -> DataSection:
    return DataSection(train=write(folder, name, data), **options)


def fails(section: DataSection, message: str) -> None:
    """Loading ``section`` raises exactly ``message`` (one line), however it is loaded."""
    for load in (load_splits, lambda s: load_split(s, "train")):
        with pytest.raises(DataError) as info:
            load(section)
        assert str(info.value) == message
        assert "\n" not in message


# --- happy paths ------------------------------------------------------------------------------

def test_tsv_keeps_raw_quotes_strips_whitespace_and_infers_integer_labels(tmp_path):
    section = tsv(tmp_path, 'sentence\tlabel\n"quoted" start \t1\n\nit \'s fine\t0\r\n')
    data = load_splits(section)
    assert list(data) == ["train"]
    train = data["train"]
    assert train.texts == ('"quoted" start', "it 's fine")
    assert train.labels.dtype == np.int32 and train.labels.tolist() == [1, 0]
    assert train.label_names == ("0", "1")
    assert train.source == str(tmp_path / "train.tsv") and train.text_pairs is None and len(train) == 2


def test_label_names_map_names_and_indices_in_given_order(tmp_path):
    section = tsv(tmp_path, "sentence\tlabel\na\tpositive\nb\t0\nc\t1\nd\tnegative\n", labels=("negative", "positive"))
    train = load_split(section, "train")
    assert train.labels.tolist() == [1, 0, 1, 0]
    assert train.label_names == ("negative", "positive")


def test_a_label_equal_to_a_name_wins_over_the_same_index(tmp_path):
    section = tsv(tmp_path, "sentence\tlabel\na\t1\nb\t2\nc\t0\n", labels=("1", "2"))
    assert load_split(section, "train").labels.tolist() == [0, 1, 0]


def test_inferred_labels_sort_integers_numerically_and_strings_alphabetically(tmp_path):
    ints = tsv(tmp_path, "sentence\tlabel\na\t10\nb\t2\nc\t-1\n", name="ints.tsv")
    assert load_split(ints, "train").label_names == ("-1", "2", "10")
    assert load_split(ints, "train").labels.tolist() == [2, 1, 0]
    words = tsv(tmp_path, "sentence\tlabel\na\tpos\nb\tneg\nc\t01\n", name="words.tsv")
    assert load_split(words, "train").label_names == ("01", "neg", "pos")


def test_every_split_shares_the_label_names_inferred_from_train(tmp_path):
    section = DataSection(
        train=write(tmp_path, "train.tsv", "sentence\tlabel\na\tspam\nb\tham\nc\teggs\n"),
        test=write(tmp_path, "test.tsv", "sentence\tlabel\nd\tspam\n"),
    )
    data = load_splits(section)
    assert list(data) == ["train", "test"]
    assert data["test"].label_names == data["train"].label_names == ("eggs", "ham", "spam")
    assert data["test"].labels.tolist() == [2]
    assert load_split(section, "test").labels.tolist() == [2]  # alone, still train's names
    assert load_split(section, "validation") is None


def test_names_are_inferred_from_the_first_split_present_when_there_is_no_train(tmp_path):
    section = DataSection(validation=write(tmp_path, "dev.tsv", "sentence\tlabel\na\tb\nb\ty\n"),
                          test=write(tmp_path, "test.tsv", "sentence\tlabel\nc\tz\n"))
    fails_message = (f"{tmp_path / 'test.tsv'}:2: unknown label 'z' (expected one of the validation split's "
                     f"labels 'b', 'y'; name every label in data.labels)")
    for load in (load_splits, lambda s: load_split(s, "test")):
        with pytest.raises(DataError) as info:
            load(section)
        assert str(info.value) == fails_message


def test_text_pairs_and_unlabeled_splits(tmp_path):
    section = tsv(tmp_path, "q\tp\tlabel\nwho ?\tme .\tyes\nwhy ?\tbecause\tno\n",
                  text_column="q", text_pair_column="p")
    train = load_split(section, "train")
    assert train.texts == ("who ?", "why ?") and train.text_pairs == ("me .", "because")
    unlabeled = tsv(tmp_path, "text\nhello\n", name="u.tsv", text_column="text", label_column=None)
    data = load_split(unlabeled, "train")
    assert data.labels is None and data.label_names == () and data.texts == ("hello",)


def test_max_examples_keeps_the_first_rows_and_ignores_the_rest(tmp_path):
    section = tsv(tmp_path, "sentence\tlabel\na\t0\nb\t1\nc\t0\nbroken row\n", max_examples=2)
    assert load_split(section, "train").texts == ("a", "b")


def test_csv_is_quoted_and_may_span_lines(tmp_path):
    data = 'label,text\npos,"Hello, ""world"""\nneg,"two\nlines"\n'
    section = DataSection(format=DataFormat.CSV, train=write(tmp_path, "t.csv", data), text_column="text")
    train = load_split(section, "train")
    assert train.texts == ('Hello, "world"', "two\nlines")
    assert train.labels.tolist() == [1, 0] and train.label_names == ("neg", "pos")
    bad = DataSection(format=DataFormat.CSV, train=write(tmp_path, "b.csv", data + "meh,x\n"), text_column="text",
                      labels=("neg", "pos"))
    fails(bad, f"{tmp_path / 'b.csv'}:5: unknown label 'meh' (expected one of 'neg', 'pos' or an index 0..1)")


def test_jsonl_accepts_string_and_integer_labels(tmp_path):
    data = '{"sentence": " good ", "label": 1}\n\n{"sentence": "bad", "label": "negative", "x": 3}\n'
    section = DataSection(format=DataFormat.JSONL, train=write(tmp_path, "t.jsonl", data),
                          labels=("negative", "positive"))
    train = load_split(section, "train")
    assert train.texts == ("good", "bad") and train.labels.tolist() == [1, 0]


def test_unlabeled_text_one_per_line(tmp_path):
    path = write(tmp_path, "u.txt", "\ufefffirst line \n\n  second\r\nthird\n")
    data = load_unlabeled(path)
    assert data.texts == ("first line", "second", "third")
    assert data.labels is None and data.label_names == () and data.source == str(path)
    assert load_unlabeled(path, max_examples=2).texts == ("first line", "second")


# --- TextDataset ------------------------------------------------------------------------------

def make(texts=("a", "b", "c"), labels=(0, 1, 1), names=("neg", "pos"), pairs=None) -> TextDataset:
    return TextDataset(tuple(texts), None if labels is None else np.array(labels), names, "mem", pairs)


def test_subset_keeps_the_given_order_and_all_fields():
    data = make(pairs=("x", "y", "z"))
    picked = data.subset([2, 0, -1])
    assert picked.texts == ("c", "a", "c") and picked.text_pairs == ("z", "x", "z")
    assert picked.labels.tolist() == [1, 0, 1] and picked.labels.dtype == np.int32
    assert picked.label_names == data.label_names and picked.source == "mem"
    assert len(data.subset([])) == 0 and data.subset(np.array([1])).texts == ("b",)
    with pytest.raises(TypeError):
        data.subset([True, False, True])


def test_labels_are_read_only_int32_copies():
    source = np.array([0, 1, 1], dtype=np.int64)
    data = make(labels=source)
    source[0] = 1
    assert data.labels.tolist() == [0, 1, 1] and data.labels.dtype == np.int32
    with pytest.raises(ValueError):
        data.labels[0] = 1
    with pytest.raises(ValueError, match="label indices outside 0..1"):
        make(labels=(0, 2, 1))


def test_fingerprint_is_stable_and_sensitive_to_content():
    base = make().fingerprint()
    assert len(base) == 64 and base == make().fingerprint()
    assert base == TextDataset(("a", "b", "c"), [0, 1, 1], ("neg", "pos"), "elsewhere").fingerprint()
    changed = [make(texts=("a", "b", "d")), make(labels=(0, 1, 0)), make(names=("pos", "neg")),
               make(pairs=("x", "y", "z")), make(labels=None, names=()), make().subset([1, 0, 2])]
    prints = {d.fingerprint() for d in changed}
    assert base not in prints and len(prints) == len(changed)


# --- one-line errors --------------------------------------------------------------------------

def test_missing_file(tmp_path):
    section = DataSection(train=tmp_path / "gone.tsv")
    fails(section, f"{tmp_path / 'gone.tsv'}: no such file (expected an existing UTF-8 text file)")
    with pytest.raises(DataError, match=r"^.*gone\.txt: no such file"):
        load_unlabeled(tmp_path / "gone.txt")


def test_missing_column_names_it_and_lists_the_header(tmp_path):
    section = tsv(tmp_path, "text\ttarget\na\t1\n")
    fails(section, f"{tmp_path / 'train.tsv'}:1: missing column 'sentence' (the header has 'text', 'target')")


def test_unknown_label_shows_value_and_allowed_names(tmp_path):
    section = tsv(tmp_path, "sentence\tlabel\na\t1\nb\tneutral\n", labels=("negative", "positive"))
    fails(section, f"{tmp_path / 'train.tsv'}:3: unknown label 'neutral' "
                   f"(expected one of 'negative', 'positive' or an index 0..1)")
    out_of_range = tsv(tmp_path, "sentence\tlabel\na\t2\n", name="r.tsv", labels=("negative", "positive"))
    fails(out_of_range, f"{tmp_path / 'r.tsv'}:2: unknown label '2' "
                        f"(expected one of 'negative', 'positive' or an index 0..1)")


def test_label_outside_the_inferred_names(tmp_path):
    section = DataSection(train=write(tmp_path, "train.tsv", "sentence\tlabel\na\t0\nb\t1\n"),
                          validation=write(tmp_path, "dev.tsv", "sentence\tlabel\nc\t1\n\nd\t2\n"))
    message = (f"{tmp_path / 'dev.tsv'}:4: unknown label '2' (expected one of the train split's labels "
               f"'0', '1'; name every label in data.labels)")
    for load in (load_splits, lambda s: load_split(s, "validation")):
        with pytest.raises(DataError) as info:
            load(section)
        assert str(info.value) == message


def test_empty_label_and_empty_text(tmp_path):
    fails(tsv(tmp_path, "sentence\tlabel\na\t1\nb\t  \n"),
          f"{tmp_path / 'train.tsv'}:3: empty label (expected a label in column 'label')")
    fails(tsv(tmp_path, "sentence\tlabel\n \t1\n", name="t.tsv"),
          f"{tmp_path / 't.tsv'}:2: empty text (expected text in column 'sentence')")
    fails(tsv(tmp_path, "s\tp\tlabel\na\t\t1\n", name="p.tsv", text_column="s", text_pair_column="p"),
          f"{tmp_path / 'p.tsv'}:2: empty text (expected text in column 'p')")


def test_wrong_number_of_tsv_fields(tmp_path):
    fails(tsv(tmp_path, "sentence\tlabel\na\t1\nb\tc\t1\n"),
          f"{tmp_path / 'train.tsv'}:3: found 3 tab-separated fields (expected 2, as in the header)")


def test_non_utf8_byte_reports_its_line(tmp_path):
    fails(tsv(tmp_path, b"sentence\tlabel\nok\t1\nbad \xff\t0\n"),
          f"{tmp_path / 'train.tsv'}:3: invalid UTF-8 byte 0xff (expected UTF-8 text)")
    path = write(tmp_path, "u.txt", b"fine\n\n\xe9t\xe9\n")
    with pytest.raises(DataError) as info:
        load_unlabeled(path)
    assert str(info.value) == f"{path}:3: invalid UTF-8 byte 0xe9 (expected UTF-8 text)"


def test_empty_files(tmp_path):
    fails(tsv(tmp_path, ""), f"{tmp_path / 'train.tsv'}:1: empty file (expected a header line naming the columns)")
    fails(tsv(tmp_path, "sentence\tlabel\n\n", name="h.tsv"),
          f"{tmp_path / 'h.tsv'}: no examples (expected at least one row of text)")
    with pytest.raises(DataError, match=r"u\.txt: no text \(expected one text per line\)$"):
        load_unlabeled(write(tmp_path, "u.txt", "\n  \n"))


def test_malformed_csv(tmp_path):
    section = DataSection(format=DataFormat.CSV, train=write(tmp_path, "t.csv", 'sentence,label\n"a"b,1\n'))
    fails(section, f"{tmp_path / 't.csv'}:2: malformed CSV: ',' expected after '\"' (expected standard quoted CSV)")
    short = DataSection(format=DataFormat.CSV, train=write(tmp_path, "s.csv", "sentence,label\na\n"))
    fails(short, f"{tmp_path / 's.csv'}:2: found 1 comma-separated field (expected 2, as in the header)")


def jsonl(folder: Path, data: str, **options) -> DataSection:
    return DataSection(format=DataFormat.JSONL, train=write(folder, "t.jsonl", data), **options)


def test_malformed_json_line(tmp_path):
    fails(jsonl(tmp_path, '{"sentence": "a", "label": 1}\n{"sentence": "b" "label": 0}\n'),
          f"{tmp_path / 't.jsonl'}:2: invalid JSON: Expecting ',' delimiter at column 18 "
          f"(expected one JSON object per line)")
    fails(jsonl(tmp_path, '["a", 1]\n'),
          f"{tmp_path / 't.jsonl'}:1: found list ['a', 1] (expected one JSON object per line)")


def test_jsonl_object_missing_a_key_or_with_wrong_types(tmp_path):
    fails(jsonl(tmp_path, '{"sentence": "a", "label": 1}\n{"sentence": "b"}\n'),
          f"{tmp_path / 't.jsonl'}:2: missing key 'label' (the object has 'sentence')")
    fails(jsonl(tmp_path, '{"sentence": "a", "label": null}\n'),
          f"{tmp_path / 't.jsonl'}:1: empty label (expected a label in key 'label')")
    fails(jsonl(tmp_path, '{"sentence": "a", "label": 1.5}\n'),
          f"{tmp_path / 't.jsonl'}:1: label is float 1.5 (expected a string or an integer in key 'label')")
    fails(jsonl(tmp_path, '{"sentence": 7, "label": 1}\n'),
          f"{tmp_path / 't.jsonl'}:1: text is int 7 (expected a string in key 'sentence')")


def test_unknown_split_name_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_split(tsv(tmp_path, "sentence\tlabel\na\t1\n"), "dev")


def test_hf_without_the_datasets_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail even if installed
    section = DataSection(format=DataFormat.HF, hf_dataset="glue", hf_config="sst2")
    for load in (load_splits, lambda s: load_split(s, "train")):
        with pytest.raises(MissingDependencyError) as info:
            load(section)
        assert str(info.value) == "format 'hf' needs the datasets package: pip install datasets"


def test_importing_edgekit_data_does_not_import_tensorflow_or_datasets():
    code = "import sys, edgekit.data; print(sorted({'tensorflow', 'datasets'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the real SST-2 files ---------------------------------------------------------------------

@pytest.mark.skipif(not SST2.is_dir(), reason=f"SST-2 is not in {SST2} (the shared data folder of this checkout)")
def test_sst2_splits():
    section = DataSection(train=SST2 / "train.tsv", validation=SST2 / "dev.tsv", test=SST2 / "test.tsv",
                          labels=("negative", "positive"))
    start = time.perf_counter()
    data = load_splits(section)
    seconds = time.perf_counter() - start
    assert {name: len(d) for name, d in data.items()} == {"train": 60_614, "validation": 6_735, "test": 872}
    for split in data.values():
        assert split.label_names == ("negative", "positive")
        assert set(np.unique(split.labels).tolist()) == {0, 1}
        assert all(text == text.strip() and text for text in split.texts)
    print(f"SST-2: three splits loaded in {seconds:.3f} s")
