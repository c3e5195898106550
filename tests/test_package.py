"""edgekit installed like a real package: the wheel carries the files the commands read
(``edgekit.bundled``), and an installed wheel runs those commands from outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO

PACKAGE = REPO / "edgekit"


def _run(argv: list, **kwargs) -> str:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600, **kwargs)
    assert proc.returncode == 0, f"{argv}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel pip builds from a copy of the sources (a stale build/ in the checkout cannot leak in)."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    shutil.copytree(PACKAGE, src / "edgekit", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "--quiet",
          "--wheel-dir", root / "dist", src])
    [path] = (root / "dist").glob("edgekit-*.whl")
    return path


def test_repository_folders_link_to_the_package_files():
    # One copy: what README shows at recipes/ and devices/ is what the wheel ships.
    for repo_path, package_path in (("recipes/quickstart.yaml", "recipes/quickstart.yaml"),
                                    ("recipes/data", "recipes/data"), ("devices", "devices")):
        link = REPO / repo_path
        assert link.is_symlink() and link.resolve() == (PACKAGE / package_path).resolve(), link


def test_wheel_holds_the_quickstart_recipe_its_texts_and_every_device_profile(wheel):
    from edgekit.bundled import bundled
    from edgekit.config import list_devices, load_recipe

    recipe = load_recipe(bundled("recipes", "quickstart.yaml"))
    needed = [bundled("recipes", "quickstart.yaml"), recipe.data.train, recipe.data.test]
    needed += [bundled("devices", f"{name}.yaml") for name in list_devices()]
    assert len(list_devices()) == len(list((REPO / "devices").glob("*.yaml"))) >= 7
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        for path in needed:
            name = f"edgekit/{path.relative_to(PACKAGE).as_posix()}"
            assert name in names, name
            assert zf.read(name) == path.read_bytes(), name
    assert all(n.startswith(("edgekit/", "edgekit-")) and "__pycache__" not in n for n in names)


@pytest.mark.slow
def test_installed_wheel_runs_the_bundled_commands_outside_the_checkout(wheel, tmp_path):
    # A fresh venv that sees this venv's packages through a path line in a .pth file (the folder
    # joins sys.path, its .pth files, the editable edgekit's finder among them, do not run), as
    # .ci/run does; pip comes from there too, so nothing is downloaded.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / "bin" / "python"
    purelib = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).strip())
    (purelib / "edgekit-test-venv.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([python, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet", wheel])
    away = tmp_path / "away"
    away.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    edgekit = venv / "bin" / "edgekit"

    def run(*args) -> str:
        return _run([edgekit, *args], cwd=away, env=env)

    where = "from edgekit.bundled import bundled; print(bundled('recipes', 'quickstart.yaml'))"
    recipe = Path(_run([python, "-c", where], cwd=away, env=env).strip())
    assert recipe.is_relative_to(purelib), recipe
    listed = [line.split()[0] for line in run("devices").splitlines()]
    assert listed == sorted(p.stem for p in (REPO / "devices").glob("*.yaml"))
    assert run("check", recipe, "--device", "x86-cpu").splitlines()[-1] == f"ok: {recipe} is valid"
    run("bench-script", "--out", "script/bench.py")
    texts = REPO / "recipes" / "data" / "english-eval.tsv"
    assert (away / "script" / "english-eval.tsv").read_bytes() == texts.read_bytes()
