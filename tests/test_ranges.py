"""Numbers have ranges, recipes are checked against their model before training, the stage
cache is checked before it is needed, TensorFlow starts quietly and a multi-worker task never
waits forever (the bad-input catalogue runs the CLI cases; these test the parts under them)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import REPO, TINY_CLS
from edgekit.config import DeviceProfile, Power, Recipe, load_recipe
from edgekit.config.loader import Range
from edgekit.errors import ConfigError

HEAD = ("name: r\ntask: text-classification\nmodel: {{source: model, max_length: 16}}\n"
        "data: {{train: train.tsv, test: train.tsv, labels: [negative, neutral, positive]}}\n{body}")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    shutil.copytree(TINY_CLS, tmp_path / "model")
    (tmp_path / "train.tsv").write_text("sentence\tlabel\ngood\t2\nbad\t0\n")
    return tmp_path


def _refusal(folder: Path, body: str) -> str:
    path = folder / "r.yaml"
    path.write_text(HEAD.format(body=body))
    with pytest.raises(ConfigError) as info:
        load_recipe(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{path}: "), message
    return message.removeprefix(f"{path}: ")


def test_ranges_say_what_they_take_and_hold_no_nan():
    assert str(Range(0, 1)) == "a fraction between 0 and 1"
    assert str(Range(0, 1, high_open=True)) == "a fraction in [0, 1)"
    assert str(Range(0, 1, low_open=True)) == "a number in (0, 1]"
    assert str(Range(2, 4096)) == "2..4096" and str(Range(1)) == "at least 1"
    assert str(Range(0, low_open=True)) == "a number greater than 0"
    for bounds in (Range(0, 1), Range(None, 0, high_open=True), Range(1)):
        assert math.nan not in bounds
    assert 0 in Range(0, 1) and 1 not in Range(0, 1, high_open=True)


def test_every_number_of_the_schema_has_a_range():
    """A number field without a range is how `seed: -1` and `epochs: .inf` got in."""
    from edgekit.config import recipe as schema

    classes = [c for c in vars(schema).values() if dataclasses.is_dataclass(c)] + [DeviceProfile, Power]
    unranged = [f"{c.__name__}.{f.name}" for c in classes for f in dataclasses.fields(c)
                if str(f.type).split(" |")[0] in ("int", "float") and "range" not in f.metadata]
    assert unranged == []


@pytest.mark.parametrize("body,expected", [
    ("seed: -1\n", "seed: expected 0..4294967295, got -1"),
    ("finetune: {epochs: .inf}\n", "finetune.epochs: expected a finite number, got inf"),
    ("finetune: {epochs: .nan}\n", "finetune.epochs: expected a finite number, got nan"),
    ("finetune: {epochs: 0}\n", "finetune.epochs: expected a number in (0, 1000], got 0.0"),
    ("finetune: {learning_rate: 3}\n", "finetune.learning_rate: expected a number in (0, 1], got 3.0"),
    ("finetune: {batch_size: 0}\n", "finetune.batch_size: expected 1..4096, got 0"),
    ("finetune: {weight_decay: -0.1}\n", "finetune.weight_decay: expected a fraction between 0 and 1, got -0.1"),
    ("finetune: {epochs: 1}\ndistill: {student: {layers_from_teacher: [0]}, alpha: 1.5}\n",
     "distill.alpha: expected a fraction between 0 and 1, got 1.5"),
    ("finetune: {epochs: 1}\ndistill: {student: {layers_from_teacher: [0]}, temperature: 0}\n",
     "distill.temperature: expected a number in (0, 100], got 0.0"),
    ("finetune: {epochs: 1}\ndistill: {student: {layers_from_teacher: [0], hidden_size: 0}}\n",
     "distill.student.hidden_size: expected at least 1, got 0"),
    ("finetune: {epochs: 1}\nprune: {ffn_sparsity: 1}\n", "prune.ffn_sparsity: expected a fraction in [0, 1), got 1.0"),
    ("quantize: {calibration_samples: 0}\n", "quantize.calibration_samples: expected 1..100000, got 0"),
    ("quantize: {mask_bias: 5}\n", "quantize.mask_bias: expected a number in [-1e+09, 0), got 5.0"),
    ("export: {seq_len: 1, targets: [{format: onnx}]}\n", "export.seq_len: expected 2..4096, got 1"),
    ("evaluation: {min_accuracy: 2}\n", "evaluation.min_accuracy: expected a fraction between 0 and 1, got 2.0"),
    ("distribute_timeout: -5\n", "distribute_timeout: expected a number in (0, 86400], got -5.0"),
])
def test_recipe_numbers_out_of_range_are_refused(folder, body, expected):
    assert _refusal(folder, body) == expected


@pytest.mark.parametrize("body,expected", [
    ("finetune: {epochs: 1}\ndistill: {student: {layers_from_teacher: [1, 2]}}\n",
     "distill.student.layers_from_teacher: expected indices 0..1 (the teacher's 2 layers, counted from 0), "
     "got [1, 2]"),
    ("finetune: {epochs: 1}\ndistill: {student: {layers_from_teacher: [0], hidden_size: 64}}\n",
     "distill.student.hidden_size: expected at most the teacher's 32 (the student is sliced from it), got 64"),
    ("finetune: {epochs: 1}\ndistill: {student: {layers_from_teacher: [0], num_attention_heads: 3}}\n",
     "distill.student.num_attention_heads: expected hidden_size 32 divisible by 3 heads"),
    ("export: {seq_len: 100, targets: [{format: onnx}]}\n",
     "export.seq_len: expected at most the model's 64 positions (max_position_embeddings), got 100"),
    ("finetune: {epochs: 1}\nprune: {head_sparsity: 0.1}\n",
     "prune.head_sparsity: 0.1 of the model's 4 heads per layer removes none; expected a fraction that removes 1..3"),
    ("finetune: {epochs: 1}\nprune: {head_sparsity: 0.9}\n",
     "prune.head_sparsity: 0.9 of the model's 4 heads per layer removes all 4; expected a fraction that removes 1..3"),
])
def test_recipe_is_checked_against_the_models_config(folder, body, expected):
    assert _refusal(folder, body) == expected


def test_max_length_is_checked_against_the_models_positions(folder):
    path = folder / "r.yaml"
    path.write_text(HEAD.format(body="").replace("max_length: 16", "max_length: 100"))
    with pytest.raises(ConfigError, match=r"r.yaml: model.max_length: expected at most the model's 64 positions "
                                          r"\(max_position_embeddings\), got 100$"):
        load_recipe(path)


def test_an_export_seq_len_left_out_fits_the_models_positions(folder):
    path = folder / "r.yaml"
    (folder / "t.tsv").write_text("sentence\tlabel\nfine\t2\n")
    path.write_text(HEAD.format(body="export: {targets: [{format: onnx}]}\n").replace("test: train.tsv", "test: t.tsv"))
    assert load_recipe(path).export.seq_len == 64  # not the default 128, past the 64-row position table


def test_labels_and_model_type_are_checked_against_the_model(folder):
    (folder / "two.yaml").write_text(HEAD.format(body="prune: {head_sparsity: 0.5}\n").replace("neutral, ", ""))
    with pytest.raises(ConfigError, match=r"two.yaml: data.labels: expected the model's 3 labels "
                                          r"\(negative, neutral, positive\), got 2$"):
        load_recipe(folder / "two.yaml")
    config = folder / "model" / "config.json"
    config.write_text(config.read_text().replace('"model_type": "bert"', '"model_type": "gpt2"'))
    assert _refusal(folder, "") == (f"model.source: {config}: model_type 'gpt2' is not supported "
                                    "(expected one of bert, distilbert, roberta, xlm-roberta, electra, albert, mobilebert)")


def test_without_data_labels_the_models_head_names_them(folder):
    """Distilled from the head as is, data labels map onto its rows by name or index, not by their
    sorted order ('negative' < 'positive' would put 'positive' on the head's 'neutral' row)."""
    from edgekit.data import load_splits

    (folder / "train.tsv").write_text("sentence\tlabel\ngood\tpositive\nbad\tnegative\nok\t1\n")
    path = folder / "r.yaml"
    path.write_text(HEAD.format(body="distill: {student: {layers_from_teacher: [0]}}\n")
                    .replace(", labels: [negative, neutral, positive]", "").replace("test: train.tsv", "test: t.tsv"))
    (folder / "t.tsv").write_text("sentence\tlabel\nfine\tpositive\n")
    recipe = load_recipe(path)
    assert recipe.data.labels == ("negative", "neutral", "positive")
    assert load_splits(recipe.data)["train"].labels.tolist() == [2, 0, 1]


def test_a_plain_encoder_needs_a_finetune_stage_to_be_distilled_as_a_classifier(folder, tmp_path):
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(folder / "model" / "model.safetensors"))
    save_file({k: v for k, v in weights.items() if not k.startswith("classifier.")},
              str(folder / "model" / "model.safetensors"))
    assert _refusal(folder, "distill: {student: {layers_from_teacher: [0]}}\n").startswith(
        "distill: expected a text-classification model.source without a finetune stage")


def test_an_export_needs_its_evaluation_split_before_training(folder):
    body = "finetune: {epochs: 1}\nexport: {targets: [{format: onnx}]}\nevaluation: {split: validation}\n"
    assert _refusal(folder, body) == ("evaluation.split: expected a data.validation file to measure every exported "
                                      "artifact on")


def test_a_valid_recipe_still_loads(folder):
    path = folder / "r.yaml"
    path.write_text(HEAD.format(body="finetune: {epochs: 1}\ndistill: {student: {layers_from_teacher: [1]}}\n"
                                     "prune: {head_sparsity: 0.5}\n"))
    recipe = load_recipe(path)
    assert isinstance(recipe, Recipe) and recipe.distribute_timeout == 300.0


# ---------------------------------------------------------------- CLI numbers


@pytest.mark.parametrize("args,expected", [
    (["bench", ".", "--threads", "0"], "Invalid value for '--threads': expected 1..{cores} (this machine's cores), "
                                       "got 0"),
    (["bench", ".", "--threads", "100000"], "Invalid value for '--threads': expected 1..{cores} (this machine's "
                                            "cores), got 100000"),
    (["bench", ".", "--min-seconds", "nan"], "Invalid value for '--min-seconds': expected a number of seconds, "
                                             "got nan"),
    (["bench", ".", "--min-runs", "-1"], "Invalid value for '--min-runs': -1 is not in the range x>=1."),
    (["export", "--threads", "-3"], "Invalid value for '--threads': expected 1..{cores}"),
    (["predict", "m", "hi", "--batch-size", "0"], "Invalid value for '--batch-size': 0 is not in the range x>=1."),
])
def test_cli_numbers_are_refused_in_one_line_before_any_work(args, expected):
    from click.testing import CliRunner

    from edgekit.cli import main

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: " + expected.format(cores=os.cpu_count())), line
    assert line.endswith(f"(see 'main {args[0]} --help')")


# ---------------------------------------------------------------- stage cache


def test_a_cache_that_is_or_lies_under_a_file_is_refused(tmp_path):
    from edgekit.train.cache import check_root

    (tmp_path / "file").write_text("mine\n")
    with pytest.raises(ConfigError, match=r"file: the stage cache \(--cache or \$EDGEKIT_CACHE\) is a file"):
        check_root(tmp_path / "file")
    with pytest.raises(ConfigError, match=r"file/stages: .* is under .*file, which is not a folder"):
        check_root(tmp_path / "file" / "stages")
    check_root(tmp_path / "new" / "stages")  # not there yet: made when a stage finishes


@pytest.mark.skipif(os.geteuid() == 0 and shutil.which("setpriv") is None, reason="root ignores permissions")
def test_an_unwritable_cache_is_refused():
    import tempfile

    top = Path(tempfile.mkdtemp())  # under /tmp, which every user may enter (pytest's tmp_path is root's only)
    top.chmod(0o755)
    locked = top / "locked"
    locked.mkdir(mode=0o555)
    code = ("from pathlib import Path\nfrom edgekit.train.cache import check_root\n"
            f"check_root(Path({str(locked / 'stages')!r}))")
    user = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    out = subprocess.run([*user, sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    shutil.rmtree(top)
    assert out.returncode == 1 and "cannot be written (" in out.stderr and "is not writable)" in out.stderr


# ---------------------------------------------------------------- TensorFlow's start-up noise


def test_tensorflow_starts_without_its_noise_and_a_chosen_log_level_wins():
    code = "import sys\nfrom edgekit._tf import tf_modules\ntf_modules()\nprint('after', file=sys.stderr)"
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert quiet.returncode == 0 and quiet.stderr == "after\n", quiet.stderr
    loud = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**env, "TF_CPP_MIN_LOG_LEVEL": "0"})
    assert loud.returncode == 0 and loud.stderr.count("\n") > 1, loud.stderr


def test_only_the_noise_is_dropped(capfd):
    from edgekit._tf import _without_noise

    with _without_noise():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"E0000 00:00:1.0 1 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error\n"
                    b"E0000 00:00:1.0 1 kernel.cc:9] a real error\n")
    assert capfd.readouterr().err == "E0000 00:00:1.0 1 kernel.cc:9] a real error\n"


# ---------------------------------------------------------------- multi-worker waits


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _lonely_worker(timeout: float) -> tuple[subprocess.Popen, int, int]:
    """Worker 0 of a two-worker cluster on 127.0.0.1 whose worker 1 never starts: (process,
    worker 0's port, worker 1's port)."""
    own, peer = _free_ports(2)
    config = {"cluster": {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{peer}"]}, "task": {"type": "worker", "index": 0}}
    code = ("from edgekit.config import Distribute\nfrom edgekit.errors import EdgekitError\n"
            "from edgekit.train.strategy import make_strategy\n"
            f"try:\n    make_strategy(Distribute.MULTI_WORKER, {timeout})\n"
            "except EdgekitError as err:\n    raise SystemExit(f'Error: {err}')\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TF_CONFIG": json.dumps(config), "PYTHONPATH": str(REPO)})
    return proc, own, peer


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_worker_whose_peer_never_starts_gives_up_naming_it():
    proc, _, peer = _lonely_worker(timeout=3)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [f"Error: distribute: multi_worker: gave up after 3 s (distribute_timeout) "
                                        f"waiting for worker 1 (127.0.0.1:{peer}) (TF_CONFIG); start every worker "
                                        "with the same cluster"]


def test_sigterm_stops_a_waiting_worker_promptly():
    proc, own, peer = _lonely_worker(timeout=600)
    deadline = time.monotonic() + 120
    while not _listening(own):  # worker 0 listens on its own port while it waits for worker 1
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - began < 5
    assert proc.returncode == 1 and err.strip().splitlines() == [
        f"Error: distribute: multi_worker: stopped by SIGTERM waiting for worker 1 (127.0.0.1:{peer}) (TF_CONFIG); "
        "start every worker with the same cluster"]
