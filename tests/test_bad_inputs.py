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
    Bad("bench-manifest-v1", "sed -i 's/\"edgekit_manifest\": 2/\"edgekit_manifest\": 1/' export/edgekit.json",
        "edgekit bench export", "Error: export/edgekit.json: edgekit_manifest 1 was written by an older edgekit"),
    Bad("bench-manifest-no-artifacts", "sed -i 's/\"artifacts\":/\"artefacts\":/' export/edgekit.json",
        "edgekit bench export/onnx-fp32.onnx", "Error: export/edgekit.json: artifacts: missing"),
    Bad("bench-not-an-artifact", "", "edgekit bench notes.txt", "Error: notes.txt: not an artifact (expected a .tflite"),
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
    Bad("demo-manifest-v1", "sed -i 's/\"edgekit_manifest\": 2/\"edgekit_manifest\": 1/' export/edgekit.json",
        "demo artifacts export", "demo_app: export/edgekit.json: edgekit_manifest 1 was written by an older edgekit"),
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
    # --- on-device script ---
    Bad("ondevice-artifact-changed", f"{FLIP_ONNX}", "ondevice export", f"error: export/onnx-fp32.onnx: {CHANGED}"),
    Bad("ondevice-manifest-list", "echo '[]' > export/edgekit.json", "ondevice export",
        "error: export/edgekit.json: expected a JSON object, got an array"),
    Bad("ondevice-json-user-file", "", "ondevice export --json notes.txt",
        "error: --json notes.txt: exists and is not an edgekit bench result (the only kind overwritten)"),
    Bad("bench-compare-old-schema", "echo '{\"edgekit_bench\": 1}' > old.json", "edgekit bench --compare old.json old.json",
        "Error: old.json: not an edgekit bench result (schema 1, this edgekit reads 2: run the benchmark again)"),
    Bad("ondevice-not-an-artifact", "", "ondevice notes.txt", "error: notes.txt: not an artifact (expected a .tflite"),
    Bad("ondevice-threads-0", "", "ondevice export --threads 0", "error: argument --threads: expected 1..", code=2),
    Bad("ondevice-threads-huge", "", "ondevice export --threads 100000", "error: argument --threads: expected 1..",
        code=2),
    Bad("ondevice-min-runs-0", "", "ondevice export --min-runs 0", "error: argument --min-runs: expected 1..100000",
        code=2),
    Bad("ondevice-min-seconds-nan", "", "ondevice export --min-seconds nan",
        "error: argument --min-seconds: expected 0..3600 seconds, got nan", code=2),
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
