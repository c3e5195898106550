"""The bad-input catalogue: careless inputs a new user tried, each run as a real process.

One row per case in ``CASES``: ``Bad(id, setup, command, first_line)``.

- ``setup``: bash run first in a fresh copy of the sandbox (may be ""): it holds ``model/``
  (the tiny 3-label classifier), ``recipe.yaml`` with ``train.tsv`` / ``test.tsv`` (a toy task
  exported to ONNX fp32), ``export/`` (that recipe's real export, made once) and ``notes.txt``.
- ``command``: words split like a shell; ``edgekit`` runs ``python -m edgekit``, ``demo`` the demo
  app (``python -I demo_app``), ``ondevice`` the standalone on-device script, ``py`` this Python.
- ``first_line``: text the first line of stderr must contain (so TensorFlow's start-up noise,
  which would come first, fails the case).

Every case must exit with ``code`` (1 by default), print no traceback, and leave every file of
the sandbox as the setup left it (paths, bytes and symlinks hashed before and after), unless
``writes=True``. A new case joins the table in one line.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO
from toy_data import export_folder, write_recipe, write_toy_task

TARGETS = "export:\n  seq_len: 16\n  targets:\n    - {format: onnx, precision: fp32}\nevaluation: {split: test}\n"
PROGRAMS = {
    "edgekit": [sys.executable, "-m", "edgekit"],
    "demo": [sys.executable, "-I", str(REPO / "demo_app")],
    "ondevice": [sys.executable, "-I", str(REPO / "edgekit" / "ondevice" / "bench.py")],
    "py": [sys.executable],
}
FLIP_ONNX = "printf XX | dd of=export/onnx-fp32.onnx bs=1 seek=1000 conv=notrunc status=none"  # same size
CHANGED = "sha256 does not match edgekit.json (changed after export; re-export, or pass --no-verify)"


NER = ("printf 'name: n\\ntask: token-classification\\nmodel: {source: model, max_length: 16}\\ndata: {format: conll, "
       "train: n.txt, labels: [O, B-PER, I-PER]}\\nfinetune: {epochs: 1}\\n' > n.yaml")  # a tagger recipe on n.txt


def squad(answers: str) -> str:
    """Setup writing q.json (one SQuAD question, q1, with ``answers`` as JSON) and q.yaml training on it."""
    doc = ('{"data": [{"title": "t", "paragraphs": [{"context": "Paris is in France.", "qas": [{"id": "q1", '
           f'"question": "Where?", "answers": {answers}}}]}}]}}]}}')
    return (f"printf '%s' {shlex.quote(doc)} > q.json && printf 'name: q\\ntask: question-answering\\nmodel: {{source: "
            "model, max_length: 16}\\ndata: {format: squad, train: q.json}\\nfinetune: {epochs: 1}\\n' > q.yaml")


@dataclass(frozen=True)
class Bad:
    id: str
    setup: str
    command: str
    first_line: str
    code: int = 1
    stdin: bytes | None = None
    writes: bool = False  # the command may change the sandbox (e.g. it sweeps stale temp folders)


CASES = [
    # --- models and predict ---
    Bad("predict-config-list", "echo '[1, 2]' > model/config.json", "edgekit predict model hi",
        "Error: model/config.json: expected a JSON object, got an array"),
    Bad("predict-config-not-utf8", "printf '\\xff{}' > model/config.json", "edgekit predict model hi",
        "Error: model/config.json:1: invalid UTF-8 byte 0xff at byte offset 0"),
    Bad("predict-config-wrong-type", "sed -i 's/\"hidden_size\": 32/\"hidden_size\": \"32\"/' model/config.json",
        "edgekit predict model hi", "Error: model/config.json: hidden_size: expected an integer, got \"32\""),
    Bad("predict-config-missing-key", "sed -i 's/\"num_hidden_layers\": 2, //' model/config.json",
        "edgekit predict model hi", "Error: model/config.json: no num_hidden_layers (expected in a BERT config.json)"),
    Bad("predict-not-bert", "sed -i 's/\"model_type\": \"bert\"/\"model_type\": \"gpt2\"/' model/config.json",
        "edgekit predict model hi", "Error: model/config.json: model_type 'gpt2' is not supported"),
    Bad("predict-tokenizer-json-corrupt", "echo '{}' > model/tokenizer.json", "edgekit predict model hi",
        "Error: model/tokenizer.json: not a tokenizers file"),
    Bad("predict-tokenizer-config-list", "echo '[]' > model/tokenizer_config.json", "edgekit predict model hi",
        "Error: model/tokenizer_config.json: expected a JSON object, got an array"),
    Bad("predict-stdin-not-utf8", "", "edgekit predict model -",
        "Error: stdin:2: invalid UTF-8 byte 0xff at byte offset 16", stdin=b"a good text\nbad \xff byte\n"),
    Bad("predict-no-model", "", "edgekit predict no/such/model hi",
        "Error: no/such/model: no such folder and not a built-in model"),
    Bad("predict-no-text", "", "edgekit predict model -", "Error: no text given", stdin=b""),
    Bad("predict-max-length", "", "edgekit predict model hi --max-length 500", "--max-length 500 is outside 2..64"),
    Bad("predict-id2label-gap", "sed -i 's/\"1\": \"neutral\"/\"5\": \"neutral\"/' model/config.json",
        "edgekit predict model hi",
        "Error: model/config.json: id2label: expected the ids 0..2 (the classifier's 3 rows), got 0, 5, 2"),
    Bad("predict-id2label-duplicate", "sed -i 's/\"1\": \"neutral\"/\"1\": \"negative\"/' model/config.json",
        "edgekit predict model hi", "Error: model/config.json: id2label.1: 'negative' also names label 0"),
    Bad("predict-mask-bias-nan", "sed -i 's/\"vocab_size\": 69/\"vocab_size\": 69, \"edgekit\": {\"mask_bias\": NaN}/' "
        "model/config.json", "edgekit predict model hi",
        "Error: model/config.json: edgekit.mask_bias must be in [-1e+09, 0), got nan"),
    Bad("predict-positions-huge", "sed -i 's/\"max_position_embeddings\": 64/\"max_position_embeddings\": 1000000000/' "
        "model/config.json", "edgekit predict model hi", "Error: model: tensor 'embeddings.position_embeddings.weight' "
        "has shape (64, 32), config.json implies (1000000000, 32)"),
    Bad("predict-text-not-utf8", "", "edgekit predict model ok 'bad \udcff byte'",
        "Error: text argument 2: invalid UTF-8 byte 0xff at character 4 (expected UTF-8 text)"),
    Bad("predict-text-empty", "", "edgekit predict model ok ''", "Error: text argument 2 is empty"),
    # --- recipes and check ---
    Bad("check-export-without-its-evaluation-split", "sed 's/, test: test.tsv//' recipe.yaml > noeval.yaml",
        "edgekit check noeval.yaml", "Error: noeval.yaml: evaluation.split: expected a data.test file"),
    Bad("check-layers-past-teacher", "printf 'finetune: {epochs: 1}\\ndistill: {student: {layers_from_teacher: [1, 2]}}\\n'"
        " >> recipe.yaml", "edgekit check recipe.yaml", "Error: recipe.yaml: distill.student.layers_from_teacher: "
        "expected indices 0..1 (the teacher's 2 layers, counted from 0), got [1, 2]"),
    Bad("train-layers-past-teacher", "printf 'finetune: {epochs: 1}\\ndistill: {student: {layers_from_teacher: [2]}}\\n'"
        " >> recipe.yaml", "edgekit train recipe.yaml", "Error: recipe.yaml: distill.student.layers_from_teacher:"),
    Bad("check-not-bert", "cp -r model gpt && sed -i 's/\"model_type\": \"bert\"/\"model_type\": \"gpt2\"/' "
        "gpt/config.json && sed 's/source: model/source: gpt/' recipe.yaml > gpt.yaml", "edgekit check gpt.yaml",
        "Error: gpt.yaml: model.source: "),
    Bad("check-max-length-past-positions", "sed 's/max_length: 16/max_length: 100/' recipe.yaml > long.yaml",
        "edgekit check long.yaml", "Error: long.yaml: model.max_length: expected at most the model's 64 positions"),
    Bad("check-labels-not-the-models", "printf 'prune: {head_sparsity: 0.5}\\n' >> recipe.yaml",
        "edgekit check recipe.yaml", "Error: recipe.yaml: data.labels: expected the model's 3 labels"),
    Bad("check-prune-removes-no-head", "printf 'finetune: {epochs: 1}\\nprune: {head_sparsity: 0.1}\\n' >> recipe.yaml",
        "edgekit check recipe.yaml", "prune.head_sparsity: 0.1 of the model's 4 heads per layer removes none"),
    Bad("check-recipe-missing", "", "edgekit check nothere.yaml", "nothere.yaml"),
    Bad("recipe-duplicate-key", "printf 'seed: 5\\n' >> recipe.yaml", "edgekit check recipe.yaml",
        "Error: recipe.yaml: invalid YAML: line 11, column 1: duplicate key 'seed' (first at line 3"),
    Bad("recipe-duplicate-nested-key", "printf 'finetune: {epochs: 1, epochs: 3}\\n' >> recipe.yaml",
        "edgekit check recipe.yaml", "Error: recipe.yaml: invalid YAML: line 11, column 23: duplicate key 'epochs'"),
    Bad("recipe-nested-too-deeply", "{ printf 'name: '; head -c 5000 /dev/zero | tr '\\0' '['; } > deep.yaml",
        "edgekit check deep.yaml", "Error: deep.yaml: invalid YAML: nested too deeply"),
    Bad("recipe-alias-bomb",  # 9 levels of 10 aliases: a billion items once printed
        "printf 'name: toy\\ntask: text-classification\\ndescription:\\n  - &a [x,x,x,x,x,x,x,x,x,x]\\n' > bomb.yaml"
        " && p=a && for n in b c d e f g h i; do printf \"  - &$n [%s]\\n\" \"$(printf \"*$p,%.0s\" $(seq 10))\" "
        ">> bomb.yaml; p=$n; done", "edgekit check bomb.yaml",
        "Error: bomb.yaml: description: expected text, got list"),
    Bad("device-empty-name", "", "edgekit check recipe.yaml --device ''", "Error: --device: unknown device ''"),
    Bad("check-seq-len-past-positions", "sed -i 's/seq_len: 16/seq_len: 100/' recipe.yaml", "edgekit check recipe.yaml",
        "Error: recipe.yaml: export.seq_len: expected at most the model's 64 positions (max_position_embeddings)"),
    Bad("export-model-seq-len-past-positions", "cp -r model big && sed -i 's/\"max_position_embeddings\": 64/"
        "\"max_position_embeddings\": 128/' big/config.json && sed -i 's/source: model/source: big/; "
        "s/seq_len: 16/seq_len: 100/' recipe.yaml", "edgekit export recipe.yaml --model model --out new",
        "Error: recipe.yaml: export.seq_len: expected at most --model model's 64 positions"),
    Bad("recipe-one-label", "sed -i 's/labels: \\[negative, positive\\]/labels: [positive]/' recipe.yaml",
        "edgekit check recipe.yaml", "Error: recipe.yaml: data.labels: expected at least 2 label names"),
    Bad("recipe-unlabeled-text-ignored", "cut -f1 train.tsv > u.txt && printf 'distill: {student: "
        "{layers_from_teacher: [0]}, unlabeled_text: u.txt}\\n' >> recipe.yaml", "edgekit check recipe.yaml",
        "Error: recipe.yaml: distill.unlabeled_text: expected only without data.train"),
    Bad("check-labels-out-of-order", "printf 'distill: {student: {layers_from_teacher: [0]}}\\n' >> recipe.yaml && "
        "sed -i 's/labels: \\[negative, positive\\]/labels: [positive, neutral, negative]/' recipe.yaml",
        "edgekit check recipe.yaml", "Error: recipe.yaml: data.labels: expected the model's labels in the order of "
        "its classifier rows (negative, neutral, positive), got positive, neutral, negative"),
    Bad("recipe-name-a-path", "sed -i 's|^name: toy|name: ../elsewhere|' recipe.yaml",
        "edgekit export recipe.yaml --model model", "Error: recipe.yaml: name: expected a plain name without slashes"),
    Bad("recipe-name-empty", "sed -i 's|^name: toy|name: \"\"|' recipe.yaml",
        "edgekit export recipe.yaml --model model",
        "Error: recipe.yaml: name: expected a plain name without slashes (the export goes to edgekit-out/<name>), "
        "got ''"),
    Bad("check-recipe-upper-case-suffix", "sed -i 's/seed: 3/seed: -1/' recipe.yaml && mv recipe.yaml R.YAML",
        "edgekit check R.YAML", "Error: R.YAML: seed: expected 0..4294967295, got -1"),
    Bad("recipe-model-source-empty", "sed -i 's/source: model/source: \"\"/' recipe.yaml", "edgekit check recipe.yaml",
        "Error: recipe.yaml: model.source: expected a built-in model (minilm-l6) or an existing folder, got ''"),
    Bad("recipe-label-column-is-the-text", "sed -i 's/labels: \\[negative, positive\\]/label_column: sentence/' "
        "recipe.yaml", "edgekit check recipe.yaml",
        "Error: recipe.yaml: data.label_column: expected a column other than text_column's, got 'sentence'"),
    # --- tasks ---
    Bad("task-gate-not-the-tasks", "sed 's/evaluation: {split: test}/evaluation: {split: test, min_f1: 0.8}/' recipe.yaml "
        "> g.yaml", "edgekit check g.yaml", "Error: g.yaml: evaluation.min_f1: expected a gate of task "
        "'text-classification' (min_accuracy, max_accuracy_drop, min_agreement)"),
    Bad("task-format-not-the-tasks", "sed 's/task: text-classification/task: token-classification/' recipe.yaml > f.yaml",
        "edgekit check f.yaml", "Error: f.yaml: data.format: expected one of conll, jsonl for task "
        "'token-classification', got 'tsv'"),
    Bad("ner-tag-not-among-the-labels", NER + " && printf 'Angela B-PER\\nvisited O\\n\\nthe O\\nEU B-ORG\\n' > n.txt",
        "edgekit train n.yaml", "sandbox/n.txt:5: tag 'B-ORG' is not among the labels"),
    Bad("ner-tag-not-iob2", NER + " && printf 'Angela PER\\n' > n.txt", "edgekit train n.yaml",
        "sandbox/n.txt:1: tag 'PER' is not IOB2 (expected O, B-TYPE or I-TYPE)"),
    Bad("ner-empty-sentence", NER + " && sed -i 's/format: conll, train: n.txt/format: jsonl, train: n.jsonl/' n.yaml"
        " && printf '{\"tokens\": [], \"tags\": []}\\n' > n.jsonl", "edgekit train n.yaml",
        "sandbox/n.jsonl:1: empty sentence (expected at least one token in key 'tokens')"),
    Bad("squad-answer-not-at-its-start", squad('[{"text": "France", "answer_start": 3}]'), "edgekit train q.yaml",
        "sandbox/q.json: question q1: answer 'France' is not at answer_start 3"),
    Bad("squad-question-without-answers", squad("[]"), "edgekit train q.yaml", "sandbox/q.json: question q1: no answers (expected at least one gold answer"),
    Bad("squad-articles-on-both-sides", squad('[{"text": "France", "answer_start": 12}]')
        + " && sed -i 's/train: q.json}/train: q.json, test: q.json}/' q.yaml", "edgekit check q.yaml",
        "Error: q.yaml: data.test_articles: expected articles apart from train_articles"),
    Bad("export-model-of-another-task", "sed 's/task: text-classification/task: feature-extraction/' recipe.yaml > e.yaml",
        "edgekit export e.yaml --model model --out out", "Error: e.yaml: task: expected a feature-extraction model for "
        "--model, got model, a text-classification model"),
    Bad("predict-tab-pairs-without-a-tab", "", "edgekit predict model 'Where?' --tab-pairs",
        "Error: text 1: expected text<TAB>pair (or pass --context), got 'Where?'"),
    Bad("predict-pair-and-tab-pairs", "", "edgekit predict model 'Where?' --pair x --tab-pairs",
        "Error: --tab-pairs reads each pair from its TEXT; drop --context/--pair (or --tab-pairs)"),
    # --- data files ---
    Bad("data-test-is-train", "sed -i 's/test: test.tsv/test: train.tsv/' recipe.yaml",
        "edgekit export recipe.yaml --model model --out new", "train.tsv: every one of its 64 texts is also in the "
        "train split"),
    Bad("data-test-copies-train", "head -9 train.tsv > test.tsv", "edgekit export recipe.yaml --model model --out new",
        "test.tsv: every one of its 8 texts is also in the train split"),
    Bad("data-data-dir-same-file", "mkdir a b d && cp train.tsv a/x.tsv && cp test.tsv b/x.tsv && cp train.tsv d/x.tsv "
        "&& sed -i 's/train: train.tsv, test: test.tsv/train: a\\/x.tsv, test: b\\/x.tsv/' recipe.yaml",
        "edgekit export recipe.yaml --model model --data d --out new", "d/x.tsv: every one of its 64 texts is also in"),
    Bad("data-one-label", "sed -i 's/\\t0$/\\t1/' train.tsv test.tsv && "
        "sed -i 's/, labels: \\[negative, positive\\]//' recipe.yaml && printf 'finetune: {epochs: 1}\\n' >> recipe.yaml",
        "edgekit train recipe.yaml", "train.tsv: every row has the label '1' (expected at least 2 classes in column "
        "'label'"),
    Bad("data-jsonl-nested-too-deeply",
        "{ printf '{\"sentence\": '; head -c 100000 /dev/zero | tr '\\0' '['; } > t.jsonl && sed -i "
        "'s/train: train.tsv, test: test.tsv/format: jsonl, train: t.jsonl/; s/split: test/split: train/' recipe.yaml",
        "edgekit export recipe.yaml --model model --out new", "t.jsonl:1: JSON nested too deeply"),
    Bad("data-dir-hf-dataset", "mkdir d && sed -i 's/train: train.tsv, test: test.tsv, labels: \\[negative, positive\\]/"
        "format: hf, hf_dataset: glue, hf_config: sst2/' recipe.yaml", "edgekit export recipe.yaml --model model "
        "--data d --out new", "Error: --data: the recipe names no data file to re-root"),
    Bad("data-dir-without-the-distillation-text", "mkdir d && cp test.tsv d/ && cut -f1 train.tsv > u.txt && printf "
        "'name: fe\\ntask: feature-extraction\\nmodel: {source: model, max_length: 16}\\ndata: {test: test.tsv, "
        "label_column: null}\\ndistill: {student: {layers_from_teacher: [0]}, unlabeled_text: u.txt}\\nexport: "
        "{seq_len: 16, targets: [{format: onnx}]}\\n' > fe.yaml", "edgekit export fe.yaml --data d --out new",
        "Error: --data d: distill.unlabeled_text: no file u.txt there"),
    Bad("data-column-named-twice", "sed -i '1s/^sentence/sentence\\tsentence/; 2,$s/^/x\\t/' train.tsv",
        "edgekit export recipe.yaml --model model --out new", "train.tsv:1: column 'sentence' named 2 times"),
    # --- export output folder ---
    Bad("export-out-user-folder", "mkdir x && echo mine > x/notes.txt", "edgekit export recipe.yaml --model model --out x",
        "Error: --out x: holds files and is not an edgekit export holding only its own files (the only kind replaced)"),
    Bad("export-out-export-with-a-note", "echo mine > export/notes.txt", "edgekit export recipe.yaml --model model --out export",
        "Error: --out export: holds files and is not an edgekit export holding only its own files"),
    Bad("export-out-export-bench-note", "mkdir export/bench && echo mine > export/bench/n.json",
        "edgekit export recipe.yaml --model model --out export", "Error: --out export: holds files and is not an edgekit export"),
    Bad("export-out-not-edgekits-json", "mkdir x && echo '[1]' > x/edgekit.json",
        "edgekit export recipe.yaml --model model --out x", "Error: --out x: holds files and is not an edgekit export"),
    Bad("export-out-recipe-folder", "mkdir sub && cp -r recipe.yaml train.tsv test.tsv model sub/",
        "edgekit export sub/recipe.yaml --out sub", "Error: --out sub: contains the recipe "),
    Bad("export-out-dot-with-inputs", "", "edgekit export recipe.yaml --model model --out .",
        "Error: --out .: contains the recipe "),
    Bad("export-out-is-model", "", "edgekit export recipe.yaml --model model --out model",
        "Error: --out model: is the model folder "),
    Bad("export-out-inside-model", "", "edgekit export recipe.yaml --out model/export",
        "Error: --out model/export: is inside the model folder "),
    Bad("export-out-link-to-model", "ln -s model m", "edgekit export recipe.yaml --model model --out m",
        "Error: --out m: is the model folder "),
    Bad("export-out-holds-data", "mkdir d && cp train.tsv test.tsv d/",
        "edgekit export recipe.yaml --model model --data d --out d", "Error: --out d: contains the train file "),
    Bad("export-out-under-a-file", "", "edgekit export recipe.yaml --model model --out notes.txt/x",
        "Error: --out notes.txt/x: cannot write in "),
    Bad("export-out-holds-cache", "mkdir e", "edgekit export recipe.yaml --out e --cache e/cache",
        "Error: --out e: contains the stage cache "),
    Bad("bench-json-user-file", "", "edgekit bench export --json notes.txt",
        "Error: --json notes.txt: exists and is not an edgekit bench result"),
    Bad("bench-json-manifest", "", "edgekit bench export/onnx-fp32.onnx --json export/edgekit.json",
        "Error: --json export/edgekit.json: exists and is not an edgekit bench result"),
    Bad("bench-script-user-file", "", "edgekit bench-script --out notes.txt",
        "Error: --out notes.txt: exists and is not edgekit's on-device script"),
    Bad("bench-script-user-texts", "echo mine > english-eval.tsv", "edgekit bench-script --out bench.py",
        "Error: --out bench.py: english-eval.tsv: exists and is not edgekit's english-eval.tsv"),
    Bad("bench-script-out-is-the-texts", "", "edgekit bench-script --out english-eval.tsv",
        "Error: --out english-eval.tsv: is the name of the texts written beside the script"),
    Bad("edgetpu-build-user-folder", "cp notes.txt model.tflite",
        "edgekit check model.tflite --device coral-usb --edgetpu-build model",
        "Error: --edgetpu-build model: holds files and is not an Edge TPU build"),
    Bad("edgetpu-build-not-tflite", "", "edgekit check export/onnx-fp32.onnx --device x86-cpu --edgetpu-build b",
        "Error: --edgetpu-build b: expected a full-int8 .tflite artifact", code=2),
    # --- tokenizer fit ---
    Bad("check-tokenizer-not-the-models", "head -40 model/vocab.txt > v && mv v model/vocab.txt", "edgekit check recipe.yaml",
        "model/vocab.txt: 40 tokens for a 69-row embedding table"),
    Bad("tokenizer-vocab-truncated", "head -40 model/vocab.txt > v && mv v model/vocab.txt", "edgekit predict model hi",
        "Error: model/vocab.txt: 40 tokens for a 69-row embedding table (model/config.json vocab_size): a model's "
        "own tokenizer covers at least 90% of the rows; the tokenizer does not belong to this model"),
    Bad("tokenizer-vocab-too-large", "for i in $(seq 20); do echo extra$i; done >> model/vocab.txt",
        "edgekit predict model 'extra5 movie'", "Error: model/vocab.txt: 89 tokens for a 69-row embedding table "
        "(model/config.json vocab_size): ids 69..88 are past the table; the tokenizer does not belong to this model"),
    Bad("tokenizer-export-truncated", "head -40 model/vocab.txt > v && mv v model/vocab.txt",
        "edgekit export recipe.yaml --out out2", "model/vocab.txt: 40 tokens for a 69-row embedding table"),
    Bad("tokenizer-files-disagree", "cp export/tokenizer.json model/ && sed -i '6{h;d};7G' model/vocab.txt",
        "edgekit predict model hi", "Error: model/vocab.txt and model/tokenizer.json disagree: 'movie' is id 5 in "
        "vocab.txt, id 6 in tokenizer.json"),
    # --- artifact hashes ---
    Bad("bench-artifact-changed", f"{FLIP_ONNX}", "edgekit bench export", f"Error: export/onnx-fp32.onnx: {CHANGED}"),
    Bad("bench-one-artifact-changed", f"{FLIP_ONNX}", "edgekit bench export/onnx-fp32.onnx",
        f"Error: export/onnx-fp32.onnx: {CHANGED}"),
    Bad("bench-tokenizer-changed", "echo extra >> export/vocab.txt", "edgekit bench export/onnx-fp32.onnx",
        f"Error: export/vocab.txt: {CHANGED}"),
    Bad("bench-file-missing", "rm export/tokenizer.json", "edgekit bench export",
        "Error: export/tokenizer.json: missing (listed in edgekit.json; re-export, or pass --no-verify)"),
    Bad("check-artifact-changed", f"{FLIP_ONNX}", "edgekit check export/onnx-fp32.onnx --device x86-cpu",
        f"Error: export/onnx-fp32.onnx: {CHANGED}"),
    Bad("bench-manifest-list", "echo '[]' > export/edgekit.json", "edgekit bench export",
        "Error: export/edgekit.json: expected a JSON object, got an array"),
    Bad("check-manifest-list", "echo '[]' > export/edgekit.json", "edgekit check export/onnx-fp32.onnx --device x86-cpu",
        "Error: export/edgekit.json: expected a JSON object, got an array"),
    Bad("bench-manifest-v1", "sed -i 's/\"edgekit_manifest\": 3/\"edgekit_manifest\": 1/' export/edgekit.json",
        "edgekit bench export", "Error: export/edgekit.json: edgekit_manifest 1 was written by an older edgekit"),
    Bad("bench-manifest-no-artifacts", "sed -i 's/\"artifacts\":/\"artefacts\":/' export/edgekit.json",
        "edgekit bench export/onnx-fp32.onnx", "Error: export/edgekit.json: artifacts: missing"),
    Bad("bench-not-an-artifact", "", "edgekit bench notes.txt", "Error: notes.txt: not an artifact (expected a .tflite"),
    Bad("check-xml-not-openvino", "echo '<project/>' > pom.xml && echo > pom.bin", "edgekit check pom.xml --device x86-cpu",
        "Error: pom.xml: cannot read it as openvino: pom.xml is not an OpenVINO IR (no <net> element at its start)"),
    Bad("bench-manifest-unknown-input", "sed -i 's/\"name\": \"token_type_ids\"/\"name\": \"position_ids\"/' "
        "export/edgekit.json", "edgekit bench export", "Error: export/edgekit.json: inputs: expected input_ids and "
        "optionally attention_mask, token_type_ids; got ['input_ids', 'attention_mask', 'position_ids']"),
    Bad("bench-manifest-path-outside", "cp export/onnx-fp32.onnx x.onnx && sed -i "
        "'s/\"path\": \"onnx-fp32.onnx\"/\"path\": \"..\\/x.onnx\"/' export/edgekit.json", "edgekit bench export",
        "Error: export/edgekit.json: artifacts[0].path: expected a file name in the export folder (no path), "
        "got '../x.onnx'"),
    Bad("bench-manifest-files-not-the-artifact", "sed -i 's/^\\( *\\)\"onnx-fp32.onnx\"$/\\1\"labels.txt\"/' "
        "export/edgekit.json", "edgekit bench export", "Error: export/edgekit.json: artifacts[0].files: expected to "
        "list onnx-fp32.onnx (the files that run)"),
    Bad("check-manifest-files-not-the-artifact", "sed -i 's/^\\( *\\)\"onnx-fp32.onnx\"$/\\1\"labels.txt\"/' "
        "export/edgekit.json", "edgekit check export/onnx-fp32.onnx --device x86-cpu",
        "Error: export/edgekit.json: artifacts[0].files: expected to list onnx-fp32.onnx"),
    Bad("bench-manifest-tokenizer-not-a-name", "sed -i 's/^    \"tokenizer.json\",$/    1,/' export/edgekit.json",
        "edgekit bench export/onnx-fp32.onnx", "Error: export/edgekit.json: tokenizer: expected a file name in the "
        "export folder (no path), got 1"),
    Bad("bench-tokenizer-unlisted", "sed -i -e '/^    \"tokenizer.json\",$/d' -e 's/\"tokenizer.json\": {/\"old\": {/' "
        "export/edgekit.json && echo ' ' >> export/tokenizer.json", "edgekit bench export/onnx-fp32.onnx",
        "Error: export/tokenizer.json: has no digest in edgekit.json"),
    Bad("bench-manifest-format-unknown", "sed -i 's/\"format\": \"onnx\"/\"format\": \"onnx2\"/' export/edgekit.json",
        "edgekit bench export", "Error: export/edgekit.json: artifacts[0].format: expected one of tflite, onnx, "
        "openvino, got 'onnx2'"),
    Bad("bench-manifest-precision-unknown", "sed -i 's/\"precision\": \"fp32\"/\"precision\": \"int9\"/' "
        "export/edgekit.json", "edgekit bench export", "Error: export/edgekit.json: artifacts[0].precision: expected "
        "one of fp32, int8-dynamic, int8-static for onnx, got 'int9'"),
    Bad("bench-manifest-row-without-gate", "sed -i 's/\"gate\": \\[\\]/\"gates\": []/' export/edgekit.json",
        "edgekit bench export", "Error: export/edgekit.json: artifacts[0].gate: missing (the reports are rewritten "
        "from it; re-export, or pass --no-verify to leave them)"),
    Bad("bench-manifest-max-length-0", "sed -i 's/\"max_length\": 16/\"max_length\": 0/' export/edgekit.json",
        "edgekit bench export --seq-len 10", "Error: export/edgekit.json: max_length: expected a token count >= 2, got 0"),
    # --- numbers and ranges ---
    Bad("bench-threads-negative", "", "edgekit bench export --threads -3", "'--threads': expected 1..", code=2),
    Bad("bench-threads-huge", "", "edgekit bench export --threads 100000", "'--threads': expected 1..", code=2),
    Bad("export-threads-0", "", "edgekit export recipe.yaml --model model --out new --threads 0",
        "'--threads': expected 1..", code=2),
    Bad("bench-min-runs-0", "", "edgekit bench export --min-runs 0", "'--min-runs': 0 is not in the range", code=2),
    Bad("bench-min-seconds-nan", "", "edgekit bench export --min-seconds nan",
        "'--min-seconds': expected a number of seconds, got nan", code=2),
    Bad("bench-min-seconds-inf", "", "edgekit bench export --min-seconds inf",
        "'--min-seconds': inf is not in the range", code=2),
    Bad("bench-min-seconds-negative", "", "edgekit bench export --min-seconds -1",
        "'--min-seconds': -1.0 is not in the range", code=2),
    Bad("bench-seq-len-0", "", "edgekit bench export --seq-len 0", "expected a token count 2..4096", code=2),
    Bad("bench-seq-len-huge", "", "edgekit bench export --seq-len 99999999", "expected a token count 2..4096", code=2),
    Bad("predict-batch-size-0", "", "edgekit predict model hi --batch-size 0",
        "'--batch-size': 0 is not in the range", code=2),
    Bad("predict-max-length-0", "", "edgekit predict model hi --max-length 0",
        "'--max-length': 0 is not in the range", code=2),
    Bad("recipe-seed-negative", "sed 's/^seed: 3/seed: -1/' recipe.yaml > bad.yaml", "edgekit check bad.yaml",
        "Error: bad.yaml: seed: expected 0..4294967295, got -1"),
    Bad("recipe-epochs-inf", "printf 'finetune: {epochs: .inf}\\n' >> recipe.yaml", "edgekit check recipe.yaml",
        "Error: recipe.yaml: finetune.epochs: expected a finite number, got inf"),
    Bad("recipe-learning-rate-0", "printf 'finetune: {learning_rate: 0}\\n' >> recipe.yaml",
        "edgekit check recipe.yaml", "finetune.learning_rate: expected a number in (0, 1], got 0.0"),
    Bad("recipe-calibration-samples-0", "printf 'quantize: {calibration_samples: 0}\\n' >> recipe.yaml",
        "edgekit check recipe.yaml", "quantize.calibration_samples: expected 1..100000, got 0"),
    Bad("recipe-distribute-timeout-0", "printf 'distribute_timeout: 0\\n' >> recipe.yaml",
        "edgekit check recipe.yaml", "distribute_timeout: expected a number in (0, 86400], got 0.0"),
    # --- messages ---
    Bad("usage-error-one-line", "", "edgekit check", "Error: Missing argument 'PATH'.", code=2),
    Bad("train-nothing-to-train", "", "edgekit train recipe.yaml", "recipe.yaml: nothing to train (no finetune, "
        "distill or prune stage)", code=0),
    Bad("train-cache-under-a-file", "printf 'finetune: {epochs: 1}\\n' >> recipe.yaml",
        "edgekit train recipe.yaml --cache notes.txt/cache", "Error: notes.txt/cache: the stage cache"),
    Bad("train-env-cache-is-a-file", "printf 'finetune: {epochs: 1}\\n' >> recipe.yaml",
        "py -c \"import os; os.environ['EDGEKIT_CACHE'] = 'notes.txt'; from edgekit.cli import main; "
        "main(['train', 'recipe.yaml'])\"", "Error: notes.txt/stages: the stage cache"),
    Bad("multi-worker-peer-never-starts", "printf 'distribute: multi_worker\\ndistribute_timeout: 2\\nfinetune: {epochs: 1}"
        "\\n' >> recipe.yaml && printf '{\"cluster\": {\"worker\": [\"127.0.0.1:23491\", \"127.0.0.1:23492\"]}, "
        "\"task\": {\"type\": \"worker\", \"index\": 0}}' > tf_config.json",
        "py -c \"import os; os.environ['TF_CONFIG'] = open('tf_config.json').read(); from edgekit.cli import main; "
        "main(['train', 'recipe.yaml'])\"", "Error: distribute: multi_worker: gave up after 2 s (distribute_timeout) "
        "waiting for worker 1 (127.0.0.1:23492)"),
    # --- demo app ---
    Bad("demo-artifact-changed", "printf x >> export/onnx-fp32.onnx", "demo classify export hi",
        "demo_app: export/onnx-fp32.onnx: sha256 does not match edgekit.json (changed after export; "
        "re-export, or pass --no-verify)"),
    Bad("demo-vocab-changed", "printf 'extra\\n' >> export/vocab.txt", "demo classify export hi",
        "demo_app: export/vocab.txt: sha256 does not match edgekit.json"),
    Bad("demo-tokenizer-missing", "rm export/tokenizer.json", "demo classify export hi",
        "demo_app: export/tokenizer.json: missing (listed in edgekit.json; re-export, or pass --no-verify)"),
    Bad("demo-manifest-v2", "sed -i 's/\"edgekit_manifest\": 3/\"edgekit_manifest\": 2/' export/edgekit.json",
        "demo artifacts export", "demo_app: export/edgekit.json: edgekit_manifest 2 was written by an older edgekit "
        "(this app reads 3); re-export the folder"),
    Bad("demo-manifest-task-unknown", "sed -i 's/\"task\": \"text-classification\"/\"task\": \"ner\"/' "
        "export/edgekit.json", "demo classify export hi", "demo_app: export/edgekit.json: task: expected one of "
        "text-classification, feature-extraction, token-classification, question-answering, got 'ner'"),
    Bad("demo-manifest-output-renamed", "sed -i 's/\"name\": \"logits\"/\"name\": \"scores\"/' export/edgekit.json",
        "demo classify export hi", "demo_app: export/edgekit.json: outputs: expected objects named logits for a "
        "text-classification export"),
    Bad("demo-ner-on-a-classifier", "", "demo ner export hi",
        "demo_app: export: a text-classification export does not tag entities (use classify)"),
    Bad("demo-answer-on-a-classifier", "", "demo answer export --context 'the movie' 'was it good?'",
        "demo_app: export: a text-classification export does not answer questions (use classify)"),
    Bad("demo-answer-question-without-context", "", "demo answer export 'was it good?'",
        "demo_app: QUESTION arguments need --context TEXT (or give question<TAB>context lines on stdin)"),
    Bad("demo-answer-context-blank", "", "demo answer export --context ' ' q",
        "demo_app: --context: expected a non-empty text"),
    Bad("demo-answer-context-not-utf8", "", "demo answer export --context \udcff q",
        "demo_app: --context: not UTF-8 text"),
    Bad("demo-answer-stdin-no-tab", "", "demo answer export",
        "demo_app: stdin:2: expected question<TAB>context, got 'only a question'",
        stdin=b"was it good?\tthe movie\nonly a question\n"),
    Bad("demo-nearest-k-negative", "", "demo nearest export --corpus notes.txt -k -1 hi", "demo_app: -k -1 is below 1"),
    Bad("demo-nearest-k-zero", "", "demo nearest export --corpus notes.txt -k 0 hi", "demo_app: -k 0 is below 1"),
    Bad("demo-nearest-k-huge", "", "demo nearest export --corpus notes.txt -k 1000000000000 hi",
        "demo_app: -k 1000000000000 is more than the sentences in --corpus notes.txt (1)"),
    Bad("demo-serve-port-70000", "", "demo serve export --port 70000", "demo_app: --port 70000 is outside 0..65535"),
    Bad("demo-serve-port-negative", "", "demo serve export --port -1", "demo_app: --port -1 is outside 0..65535"),
    Bad("demo-threads-zero", "", "demo classify export --threads 0 hi", "demo_app: --threads 0 is outside 1.."),
    Bad("demo-threads-huge", "", "demo classify export --threads 100000 hi",
        "demo_app: --threads 100000 is outside 1.."),
    Bad("demo-text-not-utf8", "", "demo classify export \udcff", "demo_app: text argument 1: not UTF-8 text"),
    Bad("demo-stdin-not-utf8", "", "demo classify export", "demo_app: stdin: not UTF-8 text (byte 0xff at offset 0)",
        stdin=b"\xff\xfe\n"),
    Bad("demo-usage-one-line", "", "demo nearest export --corpus notes.txt -k abc hi",
        "demo_app nearest: argument -k: invalid int value: 'abc' (see demo_app nearest --help)", code=2),
    Bad("demo-manifest-path-outside", "cp export/onnx-fp32.onnx x.onnx && sed -i "
        "'s/\"path\": \"onnx-fp32.onnx\"/\"path\": \"..\\/x.onnx\"/' export/edgekit.json", "demo classify export hi",
        "demo_app: export/edgekit.json: artifacts[0].path: expected a file name inside the export folder, got '../x.onnx'"),
    Bad("demo-manifest-max-length-negative", "sed -i 's/\"max_length\": 16/\"max_length\": -5/' export/edgekit.json",
        "demo classify export hi", "demo_app: export/edgekit.json: max_length: expected a token count >= 2 ([CLS] and "
        "[SEP]), got -5"),
    Bad("demo-manifest-files-not-the-artifact", "sed -i 's/^\\( *\\)\"onnx-fp32.onnx\"$/\\1\"labels.txt\"/' "
        "export/edgekit.json", "demo classify export hi", "demo_app: export/edgekit.json: artifacts[0].files: "
        "expected to list onnx-fp32.onnx (the files that run)"),
    Bad("demo-tokenizer-unlisted", "sed -i -e '/^    \"tokenizer.json\",$/d' -e 's/\"tokenizer.json\": {/\"old\": {/' "
        "export/edgekit.json && echo ' ' >> export/tokenizer.json", "demo classify export hi",
        "demo_app: export/tokenizer.json: has no digest in edgekit.json"),
    # --- on-device script ---
    Bad("ondevice-artifact-changed", f"{FLIP_ONNX}", "ondevice export", f"error: export/onnx-fp32.onnx: {CHANGED}"),
    Bad("ondevice-manifest-list", "echo '[]' > export/edgekit.json", "ondevice export",
        "error: export/edgekit.json: expected a JSON object, got an array"),
    Bad("ondevice-json-user-file", "", "ondevice export --json notes.txt",
        "error: --json notes.txt: exists and is not an edgekit bench result (the only kind overwritten)"),
    Bad("bench-compare-old-schema", "echo '{\"edgekit_bench\": 1}' > old.json", "edgekit bench --compare old.json old.json",
        "Error: old.json: not an edgekit bench result (schema 1, this edgekit reads 3: run the benchmark again)"),
    Bad("ondevice-not-an-artifact", "", "ondevice notes.txt", "error: notes.txt: not an artifact (expected a .tflite"),
    Bad("ondevice-threads-0", "", "ondevice export --threads 0", "error: argument --threads: expected 1..", code=2),
    Bad("ondevice-threads-huge", "", "ondevice export --threads 100000", "error: argument --threads: expected 1..",
        code=2),
    Bad("ondevice-min-runs-0", "", "ondevice export --min-runs 0", "error: argument --min-runs: expected 1..100000",
        code=2),
    Bad("ondevice-min-seconds-nan", "", "ondevice export --min-seconds nan",
        "error: argument --min-seconds: expected 0..3600 seconds, got nan", code=2),
    Bad("ondevice-json-under-a-file", "", "ondevice export --json notes.txt/r.json",
        "error: --json notes.txt/r.json: cannot write in notes.txt (not a folder)"),
    Bad("ondevice-manifest-no-inputs", "sed -i 's/\"inputs\": \\[/\"inputs\": [], \"old\": [/' export/edgekit.json",
        "ondevice export", "error: export/edgekit.json: inputs: expected input_ids and optionally attention_mask, "
        "token_type_ids; got []"),
    Bad("ondevice-manifest-v2", "sed -i 's/\"edgekit_manifest\": 3/\"edgekit_manifest\": 2/' export/edgekit.json",
        "ondevice export", "error: export/edgekit.json: edgekit_manifest 2 was written by an older edgekit (this one "
        "reads 3); re-export the folder"),
    Bad("ondevice-manifest-no-outputs", "sed -i 's/\"outputs\": \\[/\"outputs\": [], \"old\": [/' export/edgekit.json",
        "ondevice export", "error: export/edgekit.json: outputs: expected at least one output, got []"),
    Bad("ondevice-manifest-output-dtype", "sed -i 's/\"dtype\": \"float32\"/\"dtype\": \"float16\"/' export/edgekit.json",
        "ondevice export", "error: export/edgekit.json: outputs[0].dtype: expected one of float32, got 'float16'"),
    Bad("ondevice-manifest-recipe-null", "sed -i 's/\"recipe\": {/\"recipe\": null, \"old\": {/' export/edgekit.json",
        "ondevice export", "error: --seq-len natural needs texts: the export's evaluation file is not here"),
    Bad("ondevice-texts-not-utf8", "printf 'a text\\n\\xff\\n' > t.txt", "ondevice export --texts t.txt",
        "error: t.txt: not UTF-8 text (byte 0xff at offset 7)"),
    Bad("ondevice-texts-folder", "mkdir t", "ondevice export --texts t", "error: t: cannot read texts (Is a directory)"),
    Bad("ondevice-texts-missing", "", "ondevice export --texts t.txt",
        "error: t.txt: cannot read texts (No such file or directory)"),
    Bad("ondevice-texts-header-only", "printf 'sentence\\tlabel\\n' > t.tsv", "ondevice export --texts t.tsv",
        "error: t.tsv: no texts"),
    Bad("bench-compare-not-utf8", "printf '\\xff' > a.json", "edgekit bench --compare a.json a.json",
        "Error: a.json: cannot read benchmark JSON ("),
    Bad("bench-compare-results-not-a-list", "echo '{\"edgekit_bench_folder\": 3, \"results\": 5}' > a.json",
        "edgekit bench --compare a.json a.json", "Error: a.json: not an edgekit bench result (results: expected an "
        "array, got an integer)"),
]


def tree_digest(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of the bytes (files) or of the target (symlinks) or 'dir'."""
    digest = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                digest[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                digest[rel] = "dir"
            else:
                digest[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return digest


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    root = write_toy_task(tmp_path_factory.mktemp("bad-inputs") / "sandbox", train=64, test=32)
    export_folder(write_recipe(root, TARGETS), root / "model", root / "export")
    (root / "notes.txt").write_text("mine\n")
    return root


def run_case(case: Bad, work: Path, env: dict) -> subprocess.CompletedProcess:
    words = shlex.split(case.command)
    argv = PROGRAMS.get(words[0], [words[0]]) + words[1:]
    return subprocess.run(argv, cwd=work, env=env, input=case.stdin if case.stdin is not None else b"",
                          capture_output=True, timeout=600)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Bad, sandbox: Path, tmp_path: Path):
    work = tmp_path / "sandbox"
    shutil.copytree(sandbox, work, symlinks=True)
    env = {**os.environ, "EDGEKIT_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(REPO)}
    if case.setup:
        subprocess.run(["bash", "-euo", "pipefail", "-c", case.setup], cwd=work, env=env, check=True)
    before = tree_digest(work)
    proc = run_case(case, work, env)
    stderr = proc.stderr.decode("utf-8", "replace")
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = stderr.strip().splitlines()
    assert lines and case.first_line in lines[0], stderr[-3000:]
    assert proc.returncode == case.code, stderr[-3000:]
    if not case.writes:
        assert tree_digest(work) == before, "the command changed the user's files"
