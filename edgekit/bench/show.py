"""`edgekit bench` tables (rich): one artifact, an export folder, and two result files side by side.

Figures measured on the host in place of the profile's device carry "host" in every cell.
Energy is always shown as an estimate (p50 × the profile's nominal watts, with the source).
Accuracy / cosine / agreement are the export's evaluation, not measured by bench: shown as
such, and only for files verified against edgekit.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from edgekit.errors import EdgekitError
from edgekit.ondevice import bench as ondevice


def console() -> Console:
    """Full-width tables even when stdout is a pipe or a test runner (rich would use 80 columns)."""
    return Console() if sys.stdout.isatty() else Console(width=200, color_system=None)


def _group(*parts) -> Group:
    """Lines (plain text, never rich markup: paths may hold brackets) and tables, in order."""
    return Group(*(Text(p) if isinstance(p, str) else p for p in parts))


def _fig(value, fmt: str, doc: dict) -> str:
    if value is None:
        return "–"
    return format(value, fmt) + (" host" if doc["where"] == "host" else "")


def _score(doc: dict) -> str:
    m = doc["export_metrics"]
    for key, label in (("accuracy", "acc"), ("cosine_mean", "cos"), ("agreement", "agree")):
        if key in m:
            return f"{label} {m[key]:.4f}"
    return "–"


def _inputs(doc: dict) -> str:
    i = doc["inputs"]
    return f"seq {i['seq_len']}" if i["mode"] == "fixed" else f"natural ({i['tokens_mean']:.1f} tokens mean)"


def _where(doc: dict) -> str:
    place = (f"on this HOST in place of {doc['profile']} ({doc['facts']['cpu']})" if doc["where"] == "host"
             else f"on {doc['profile'] or 'the device'} ({doc['facts']['cpu']})")
    return f"{place}, {doc['threads']} threads" + (f", {doc['accelerator']}" if doc["accelerator"] else "")


def _verified_note(doc: dict) -> str:
    if doc["verified"]:
        return "files verified against edgekit.json (size and sha256) before loading"
    return "files NOT verified (--no-verify): they may not be what was exported; the export's metrics are not shown"


def _energy_note(doc: dict) -> str:
    e = doc["energy"]
    watts = f"{e['watts']} W" if e["watts"] else "no power figure"
    return f"energy per inference is an ESTIMATE: p50 × {watts} nominal ({e['source']})"


def artifact_table(doc: dict) -> Group:
    lat = doc["latency_ms"]
    table = Table()
    table.add_column("figure")
    table.add_column("value", justify="right")
    rows = [("inputs", _inputs(doc)), ("model load ms", _fig(doc["load_ms"], ".1f", doc)),
            ("first inference ms", _fig(doc["first_inference_ms"], ".2f", doc)),
            *((f"{k} ms", _fig(lat[f"{k}_ms"], ".3f", doc)) for k in ("p50", "p90", "p99", "mean", "min")),
            ("runs", str(lat["runs"])), ("throughput /s", _fig(doc["throughput_per_s"], ".1f", doc)),
            (f"peak RSS MB ({doc['peak_rss_scope']})", _fig(doc["peak_rss_mb"], ".0f", doc)),
            ("energy mJ (estimate)", _fig(doc["energy"]["mj_per_inference"], ".2f", doc)),
            ("outputs (first input)", ondevice.show_outputs(doc["outputs"]))]
    for name, value in rows:
        table.add_row(name, value)
    return _group(f"{doc['artifact']} — {doc['runtime']} — measured {_where(doc)}", table,
                  f"inputs: {doc['inputs']['source']}", _energy_note(doc), _verified_note(doc))


def folder_table(doc: dict) -> Group:
    """One row per artifact, in the spirit of Ultralytics' ``benchmark()``."""
    measured = [r for r in doc["results"] if r["status"] == "ok"]
    first = measured[0] if measured else doc["results"][0]
    title = f"{doc['folder']} — measured {_where(first)}"
    if measured:
        title += f" — {_inputs(first)}"
    table = Table()
    for name in ("format", "precision", "status", "size MB", "export's metric", "p50 ms", "p99 ms", "inferences/s",
                 "peak RSS MB", "energy mJ (est.)", "runtime"):
        table.add_column(name, justify="left" if name in ("format", "precision", "status", "export's metric",
                                                          "runtime") else "right")
    for r in doc["results"]:
        ok = r["status"] == "ok"
        status = "✅" if ok else f"❌ {r['error']}" if r["status"] == "failed" else f"– {r['error']}"
        table.add_row(r["format"], r["precision"], status, f"{r['bytes'] / 1e6:.1f}" if r["bytes"] else "–",
                      _score(r), *((_fig(r["latency_ms"]["p50_ms"], ".2f", r), _fig(r["latency_ms"]["p99_ms"], ".2f", r),
                                    _fig(r["throughput_per_s"], ".1f", r), _fig(r["peak_rss_mb"], ".0f", r),
                                    _fig(r["energy"]["mj_per_inference"], ".2f", r), r["runtime"])
                                   if ok else ("–",) * 6))
    notes = (f"inputs: {first['inputs']['source']}",
             f"outputs (first input): {ondevice.show_outputs(first['outputs'])}", _energy_note(first)) if measured else ()
    kept = () if first["verified"] else ("edgekit.json and report.* were left as they were",)
    return _group(title, table, *notes, _verified_note(first), *kept)


def load_results(path: str | Path) -> list[dict]:
    """The result documents in a JSON written by ``edgekit bench`` or the on-device script."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:  # ValueError: not JSON, or not UTF-8
        raise EdgekitError(f"{path}: cannot read benchmark JSON ({err})") from None
    problems = ondevice.validate(doc) if isinstance(doc, dict) else ["not a JSON object"]
    if problems:
        raise EdgekitError(f"{path}: not an edgekit bench result ({problems[0]})")
    return doc["results"] if "results" in doc else [doc]


FIGURES = ((lambda r: r["latency_ms"]["p99_ms"], ".2f"), (lambda r: r["throughput_per_s"], ".1f"),
           (lambda r: r["load_ms"], ".0f"), (lambda r: r["peak_rss_mb"], ".0f"),
           (lambda r: r["energy"]["mj_per_inference"], ".2f"))  # compare's columns after p50, in order


def compare_table(a_path: str | Path, b_path: str | Path) -> Group:
    """Artifacts present in both files, matched by name (``X_edgetpu.tflite`` matches ``X.tflite``)."""
    a_docs, b_docs = load_results(a_path), load_results(b_path)

    def key(r):
        return r["artifact"].replace("_edgetpu.tflite", ".tflite")

    b_by = {key(r): r for r in b_docs if r["status"] == "ok"}
    pairs = [(a, b_by[key(a)]) for a in a_docs if a["status"] == "ok" and key(a) in b_by]
    if not pairs:
        raise EdgekitError(f"{a_path} and {b_path}: no measured artifact in common")
    a0, b0 = pairs[0]
    table = Table()
    for name in ("artifact", "inputs A", "inputs B", "p50 ms A", "p50 ms B", "B/A", "p99 ms A", "p99 ms B",
                 "/s A", "/s B", "load ms A", "load ms B", "RSS MB A", "RSS MB B", "mJ A (est.)", "mJ B (est.)"):
        table.add_column(name, justify="left" if name in ("artifact", "inputs A", "inputs B") else "right")
    for a, b in pairs:
        cells = [key(a), _inputs(a), _inputs(b)]
        cells += [_fig(a["latency_ms"]["p50_ms"], ".2f", a), _fig(b["latency_ms"]["p50_ms"], ".2f", b),
                  f"{b['latency_ms']['p50_ms'] / a['latency_ms']['p50_ms']:.2f}"]
        for get, fmt in FIGURES:
            cells += [_fig(get(a), fmt, a), _fig(get(b), fmt, b)]
        table.add_row(*cells)
    return _group(f"A = {a_path}: measured {_where(a0)}", f"B = {b_path}: measured {_where(b0)}", table,
                  "B/A: ratio of p50 latencies (above 1: B is slower). Energy figures are estimates.")
