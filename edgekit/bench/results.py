"""Benchmark results as JSON: the figures plus the facts needed to compare runs."""

from __future__ import annotations

import json
import platform
from pathlib import Path


def write_results(path: Path, benchmark: str, rows: list[dict], **facts) -> None:
    """Write ``{"benchmark", **facts, "python", "machine", "rows"}`` to ``path`` and say so."""
    doc = {"benchmark": benchmark, **facts, "python": platform.python_version(),
           "machine": platform.machine(), "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")
