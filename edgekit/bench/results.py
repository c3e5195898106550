"""Benchmark results as JSON: the figures plus the facts needed to compare runs."""

from __future__ import annotations

import json
import platform
from pathlib import Path


def figures(doc: dict) -> dict:
    """The figures benchmarks/ tables show of one ``bench_folder`` result ({} unless it ran): ms, inputs
    in tokens, RSS +MB (peak after the load minus RSS before it), mJ estimate (p50 × nominal W)."""
    if doc["status"] != "ok":
        return {}
    lat = doc["latency_ms"]
    grown = None if doc["rss_before_load_mb"] is None else round(doc["peak_rss_mb"] - doc["rss_before_load_mb"], 1)
    return {"p50_ms": lat["p50_ms"], "p90_ms": lat["p90_ms"], "p99_ms": lat["p99_ms"], "per_s": doc["throughput_per_s"],
            "load_ms": doc["load_ms"], "rss_added_mb": grown, "mj_est": doc["energy"]["mj_per_inference"],
            "tokens_mean": doc["inputs"]["tokens_mean"], "runs": lat["runs"]}


def write_results(path: Path, benchmark: str, rows: list[dict], **facts) -> None:
    """Write ``{"benchmark", **facts, "python", "machine", "rows"}`` to ``path`` and say so."""
    doc = {"benchmark": benchmark, **facts, "python": platform.python_version(),
           "machine": platform.machine(), "rows": rows}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")
