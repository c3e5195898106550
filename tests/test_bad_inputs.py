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
from toy_data import write_recipe, write_toy_task

TARGETS = "export:\n  seq_len: 16\n  targets:\n    - {format: onnx, precision: fp32}\nevaluation: {split: test}\n"
PROGRAMS = {
    "edgekit": [sys.executable, "-m", "edgekit"],
    "demo": [sys.executable, "-I", str(REPO / "demo_app")],
    "ondevice": [sys.executable, "-I", str(REPO / "edgekit" / "ondevice" / "bench.py")],
    "py": [sys.executable],
}


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
    Bad("predict-no-model", "", "edgekit predict no/such/model hi",
        "Error: no/such/model: no such folder and not a built-in model"),
    Bad("predict-no-text", "", "edgekit predict model -", "Error: no text given", stdin=b""),
    Bad("predict-max-length", "", "edgekit predict model hi --max-length 500", "--max-length 500 is outside 2..64"),
    # --- recipes and check ---
    Bad("check-recipe-missing", "", "edgekit check nothere.yaml", "nothere.yaml"),
    # --- export output folder ---
    # --- tokenizer fit ---
    # --- artifact hashes ---
    # --- numbers and ranges ---
    # --- messages ---
    # --- demo app ---
    # --- on-device script ---
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
    from click.testing import CliRunner

    from edgekit.cli import main

    root = write_toy_task(tmp_path_factory.mktemp("bad-inputs") / "sandbox", train=64, test=32)
    write_recipe(root, TARGETS)
    result = CliRunner().invoke(main, ["export", str(root / "recipe.yaml"), "--model", str(root / "model"),
                                       "--out", str(root / "export"), "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
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
