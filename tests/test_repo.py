"""CI must install and test exactly as README.md tells a new user to."""

from __future__ import annotations

import re

from conftest import REPO


def _bash_blocks(markdown: str, heading: str) -> list[str]:
    section = markdown.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return [line for block in re.findall(r"```bash\n(.*?)```", section, re.S) for line in block.splitlines()]


def test_ci_runs_readme_install_and_test_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    install, test = _bash_blocks(readme, "Install"), _bash_blocks(readme, "Test")
    assert len(install) == 3 and len(test) == 1  # the venv line; the package line; Debian's Chromium
    commands = [line.strip() for line in ci]
    assert all(line in commands for line in install), install
    assert any(line.startswith(test[0]) for line in commands)


def test_readme_format_table_is_the_format_table():
    from edgekit.config.formats import markdown_table

    assert markdown_table() in (REPO / "README.md").read_text(encoding="utf-8")
