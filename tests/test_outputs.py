"""Output folders and files are never lost: what ``edgekit.atomic`` creates, fills, replaces,
refuses and recovers, and ``edgekit export`` failing, killed, through a symlink and into ``.``.

The careless one-line cases (a user's folder, the recipe's or the model's as OUT, a user's file
as ``bench --json`` ...) are rows of the bad-input catalogue (tests/test_bad_inputs.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import REPO
from test_bad_inputs import tree_digest
from toy_data import write_recipe, write_toy_task
from edgekit.atomic import atomic_dir, claim_dir, claim_file
from edgekit.cli import main
from edgekit.errors import OutputError
from edgekit.ondevice.bench import is_result

TARGETS = "export:\n  seq_len: 16\n  targets:\n    - {format: onnx, precision: fp32}\nevaluation: {split: test}\n"


def _ours(folder: Path) -> bool:
    return (folder / "mark").is_file()


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def _write(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def test_atomic_dir_creates_fills_and_replaces_only_its_own(tmp_path):
    with atomic_dir(tmp_path / "a" / "new", replaces=_ours) as tmp:
        _write(tmp, mark="1")
    assert (tmp_path / "a" / "new" / "mark").read_text() == "1"
    empty = _write(tmp_path / "empty")
    inode = empty.stat().st_ino
    with atomic_dir(empty) as tmp:
        _write(tmp, mark="2")
    assert empty.stat().st_ino == inode and os.listdir(empty) == ["mark"]  # filled in place: the folder stays
    with atomic_dir(empty, replaces=_ours) as tmp:
        _write(tmp, mark="3")
    assert os.listdir(empty) == ["mark"] and (empty / "mark").read_text() == "3"
    mine = _write(tmp_path / "mine", notes="mine")
    with pytest.raises(OutputError, match=r"^--out x: holds files and is not ours \(the only kind replaced\)"):
        with atomic_dir(mine, "--out x", replaces=_ours, own="ours"):
            raise AssertionError("the body must not run")
    assert os.listdir(mine) == ["notes"] and sorted(os.listdir(tmp_path)) == ["a", "empty", "mine"]


def test_a_failed_body_or_a_changed_dest_leaves_dest_as_it_was(tmp_path):
    dest = _write(tmp_path / "out", mark="old")
    with pytest.raises(RuntimeError), atomic_dir(dest, replaces=_ours) as tmp:
        _write(tmp, mark="new")
        raise RuntimeError("disk full")
    new = tmp_path / "new"
    with pytest.raises(OutputError, match="holds files"), atomic_dir(new, replaces=_ours) as tmp:
        _write(tmp, mark="new")
        _write(new, notes="created meanwhile by someone")
    assert (dest / "mark").read_text() == "old" and os.listdir(new) == ["notes"]
    assert sorted(os.listdir(tmp_path)) == ["new", "out"]  # no temporary folder left


def test_a_symlink_is_written_through(tmp_path):
    target = _write(tmp_path / "exports" / "v1", mark="old")
    link = tmp_path / "latest"
    link.symlink_to(target)
    with atomic_dir(link, replaces=_ours) as tmp:
        _write(tmp, mark="new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert (target / "mark").read_text() == "new" and os.listdir(target.parent) == ["v1"]


def test_next_writer_recovers_what_killed_runs_left_and_nothing_else(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    # killed while building: removed; a live writer's, another name's and a user's look-alike stay
    _write(tmp_path / f".out.edgekit-tmp-{dead}-0123abcd", part="x")
    keep = [f".out.edgekit-tmp-{alive}-0123abcd", f".other.edgekit-tmp-{dead}-0123abcd", ".out.edgekit-tmp-mine"]
    for name in keep:
        _write(tmp_path / name, part="x")
    # killed between the two renames: OUT is missing, the previous output is put back
    _write(tmp_path / f".out.edgekit-old-{dead}-89abcdef", mark="previous")
    _write(tmp_path / f".out.edgekit-tmp-{dead}-89abcdef", mark="finished, never published")
    claim_dir(tmp_path / "out", replaces=_ours)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ["out"])
    assert (tmp_path / "out" / "mark").read_text() == "previous"
    # killed after them: the renamed-aside previous output is removed
    _write(tmp_path / f".out.edgekit-old-{dead}-00000000", mark="older")
    claim_dir(tmp_path / "out", replaces=_ours)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ["out"])
    # killed while moving a finished build into an empty OUT: the rest is moved in
    empty = _write(tmp_path / "fill", mark="moved")
    _write(empty / f".fill.edgekit-done-{dead}-0123abcd", labels="rest")
    _write(empty / f".fill.edgekit-tmp-{dead}-0123abcd", half="built")
    claim_dir(empty, replaces=_ours)
    assert sorted(os.listdir(empty)) == ["labels", "mark"]


def test_an_unwritable_place_is_refused_before_any_work(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(ro)], capture_output=True).returncode:
        pytest.skip("needs a read-only mount (root): root ignores file permissions")
    try:
        with pytest.raises(OutputError, match=rf"^--out x: cannot write in {ro} \(Read-only file system\)$"):
            claim_dir(ro / "deeper" / "out", "--out x")
        with pytest.raises(OutputError, match="Read-only file system"):
            claim_dir(ro, "--out x")  # empty: filled in place, so OUT itself must be writable
        subprocess.run(["mount", "-o", "remount,rw", str(ro)], check=True)
        _write(ro, mark="an earlier output")
        with pytest.raises(OutputError, match="^--out x: is a mount point, which a new output cannot be renamed"):
            claim_dir(ro, "--out x", replaces=_ours)
    finally:
        subprocess.run(["umount", str(ro)], check=True)


def test_a_file_is_overwritten_only_when_it_is_edgekits(tmp_path):
    result = _write(tmp_path, **{"ours.json": '{"edgekit_bench": 2}', "list.json": "[1]", "notes.txt": "mine"})
    bench = {"replaces": is_result, "own": "an edgekit bench result"}
    assert claim_file(result / "ours.json", **bench) == result / "ours.json"
    assert claim_file(result / "new" / "r.json", **bench) == result / "new" / "r.json"
    for name in ("list.json", "notes.txt"):
        with pytest.raises(OutputError, match=rf"^--json {name}: exists and is not an edgekit bench result"):
            claim_file(result / name, f"--json {name}", **bench)
    with pytest.raises(OutputError, match="is a folder, expected a file"):
        claim_file(result, **bench)
    assert sorted(os.listdir(result)) == ["list.json", "notes.txt", "ours.json"]


def test_an_edgetpu_build_replaces_only_an_earlier_build(tmp_path):
    from edgekit.check.edgetpu_build import SplitModel, write_split

    build = tmp_path / "build"
    for body in (b"1", b"2"):
        write_split(SplitModel(head=b"h", body=body, head_ops=[], cut=[]), build)
    assert (build / "body.tflite").read_bytes() == b"2"
    (build / "body_edgetpu.tflite").write_bytes(b"compiled")  # edgetpu_compiler's output: the user's
    with pytest.raises(OutputError, match="holds files and is not an Edge TPU build"):
        write_split(SplitModel(head=b"h", body=b"3", head_ops=[], cut=[]), build, "--edgetpu-build b")
    assert (build / "body.tflite").read_bytes() == b"2"


def test_bench_script_overwrites_only_its_own_files(tmp_path):
    script = tmp_path / "pi" / "bench.py"
    for _ in range(2):  # the second run replaces the first one's files
        assert CliRunner().invoke(main, ["bench-script", "--out", str(script)]).exit_code == 0
    script.write_text(script.read_text() + "# an older edgekit's script\n")
    assert CliRunner().invoke(main, ["bench-script", "--out", str(script)]).exit_code == 0
    assert sorted(os.listdir(script.parent)) == ["bench.py", "english-eval.tsv"]


# -- edgekit export -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """The toy task, its recipe (onnx fp32) and a good export of it in ``good/``."""
    root = write_toy_task(tmp_path_factory.mktemp("outputs"), train=64, test=32)
    write_recipe(root, TARGETS)
    result = _export(root, str(root / "good"))
    assert result.exit_code == 0, result.output
    return root


def _export(root: Path, out: str, recipe: str = "recipe.yaml"):
    return CliRunner().invoke(main, ["export", str(root / recipe), "--model", str(root / "model"),
                                     "--out", out, "--threads", "1", "--quiet"])


def _copy(src: Path, dest: Path) -> Path:
    subprocess.run(["cp", "-a", str(src), str(dest)], check=True)
    return dest


def test_reexport_replaces_an_earlier_export_through_a_symlink(toy, tmp_path):
    target = _copy(toy / "good", tmp_path / "v1")
    (tmp_path / "latest").symlink_to(target)
    (target / "edgekit.json").write_text((target / "edgekit.json").read_text().replace('"task"', '"old": 1, "task"'))
    result = _export(toy, str(tmp_path / "latest"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "latest").is_symlink() and '"old"' not in (target / "edgekit.json").read_text()
    assert sorted(os.listdir(tmp_path)) == ["latest", "v1"]


def test_out_dot_in_an_empty_folder(toy, tmp_path, monkeypatch):
    monkeypatch.chdir(_write(tmp_path / "here"))
    result = _export(toy, ".")
    assert result.exit_code == 0, result.output
    assert {"edgekit.json", "onnx-fp32.onnx", "report.md"} <= set(os.listdir("."))
    assert os.listdir(tmp_path) == ["here"] and not [n for n in os.listdir(".") if ".edgekit-" in n]


def test_a_failing_export_leaves_the_good_one_byte_identical(toy, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    used = sum(p.stat().st_size for p in (toy / "good").iterdir())
    size = f"size={(used // 4096 + 16) * 4}k"  # the good export and a little: not a second one
    if subprocess.run(["mount", "-t", "tmpfs", "-o", size, "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("needs a small tmpfs (mount as root) to fill the disk for real")
    try:
        good = _copy(toy / "good", disk / "out")
        before = tree_digest(disk)
        result = _export(toy, str(good))
        assert result.exit_code == 1
        assert "was not written (whatever was there is unchanged" in result.output or \
            "nothing was published" in result.output, result.output
        assert tree_digest(disk) == before
    finally:
        subprocess.run(["umount", str(disk)], check=True)


@pytest.mark.parametrize("gate", ["enforce", "warn"])
def test_a_failed_artifact_is_never_published_whatever_the_gate(toy, tmp_path, monkeypatch, gate):
    import edgekit.export.onnx as onnx

    def full_disk(job):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(onnx, "export", full_disk)
    recipe = (toy / "recipe.yaml").read_text().replace("{split: test}", f"{{split: test, gate: {gate}}}")
    (toy / f"{gate}.yaml").write_text(recipe)
    good = _copy(toy / "good", tmp_path / "out")
    before = tree_digest(tmp_path)
    result = _export(toy, str(good), f"{gate}.yaml")
    assert result.exit_code == 1
    assert "| onnx | fp32 | ❌" in result.output  # the report is printed
    assert (f"Error: 1 artifact(s) failed or missed the evaluation gate: onnx-fp32; {good} was not written "
            "(whatever was there is unchanged; the report is printed above, on stdout)") in result.output
    assert tree_digest(tmp_path) == before


def test_a_killed_export_leaves_a_temp_folder_the_next_run_removes(toy, tmp_path):
    argv = [sys.executable, "-m", "edgekit", "export", str(toy / "recipe.yaml"), "--model", str(toy / "model"),
            "--out", str(tmp_path / "out"), "--threads", "1", "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    building = f".out.edgekit-tmp-{run.pid}-"
    while not [p for p in tmp_path.glob(f"{building}*/tokenizer.json")]:  # the export is being written
        assert run.poll() is None and time.monotonic() < deadline, "the export ended before it was killed"
        time.sleep(0.05)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert [n for n in os.listdir(tmp_path) if n.startswith(building)] and not (tmp_path / "out").exists()
    assert subprocess.run(argv, env=env, capture_output=True).returncode == 0
    assert os.listdir(tmp_path) == ["out"] and (tmp_path / "out" / "edgekit.json").is_file()
