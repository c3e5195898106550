"""Latency per task: every artifact of already-exported folders, batch 1, natural length, each runtime.

One export folder per task (``edgekit export`` of its recipe), all benched in ONE process with
``bench_folder`` (x86-cpu profile, 2 threads): each export's own evaluation inputs at their own
token counts, as the manifest names them (SST-2 sentences, the quickstart's English texts, CoNLL
sentences, SQuAD question/context pairs; at most 100, each cut to the export's max_length: for QA
one window per question). Prints one markdown table headed by the CPU model and its vector flags,
and writes JSON.

    .venv/bin/python benchmarks/task_latency.py --export sst2=edgekit-out/sst2-minilm-distill \
        --export embed=edgekit-out/quickstart --export ner=edgekit-out/conll2003-minilm-ner \
        --export qa=edgekit-out/squad-minilm-qa

Columns: tokens p50 (median token count of the inputs), p50 / p90 ms over the runs cycling through
them, load ms (runtime already imported). A static-shape artifact runs every input padded to its
export seq_len, not at the natural count. As ``edgekit bench`` does, each folder's edgekit.json
latency and report.* are rewritten with these figures.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _export(value: str) -> tuple[str, Path]:
    """``NAME=FOLDER`` -> (name, folder)."""
    name, sep, folder = value.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected NAME=FOLDER (e.g. ner=edgekit-out/conll2003-minilm-ner), "
                                         f"got {value!r}")
    return name, Path(folder)


def _positive(kind: type):
    def parse(value: str):
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not 0 < number < float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {value!r}")
        return number
    return parse


def _row(name: str, doc: dict, inputs: dict, tokens: list[int]) -> dict:
    """One JSON row: ``doc`` is ``bench_folder``'s result, ``inputs`` / ``tokens`` the summary and the
    token counts of what it fed (``folder_inputs``)."""
    from edgekit.bench.results import figures

    return {"name": name, "task": doc["task"], "artifact": doc["artifact"], "format": doc["format"],
            "precision": doc["precision"], "shapes": doc["shapes"], "status": doc["status"], "error": doc["error"],
            "runtime": doc.get("runtime"), "mb": round(doc["bytes"] / 1e6, 1), "inputs": inputs["source"],
            "samples": len(tokens), "tokens_p50": float(statistics.median(tokens)), "tokens_min": min(tokens),
            "tokens_max": max(tokens), **figures(doc)}


def _table(rows: list[dict]) -> str:
    lines = ["| task | artifact | tokens p50 | p50 ms | p90 ms | load ms |", "|---|---|---|---|---|---|"]
    for r in rows:
        artifact = r["artifact"] + (" (static)" if r["shapes"] == "static" else "")
        if r["status"] != "ok":
            lines.append(f"| {r['name']} | {artifact} | {r['status']}: {r['error']} | – | – | – |")
            continue
        lines.append(f"| {r['name']} | {artifact} | {r['tokens_p50']:g} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} | "
                     f"{r['load_ms']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=_export, action="append", required=True, metavar="NAME=FOLDER",
                        help="an export folder (with edgekit.json) and the task name to show; repeat per task")
    parser.add_argument("--device", default="x86-cpu")
    parser.add_argument("--threads", type=_positive(int), default=2)
    parser.add_argument("--min-runs", type=_positive(int), default=200, help="per artifact (up to 100 inputs twice)")
    parser.add_argument("--min-seconds", type=_positive(float), default=3.0, help="per artifact")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "task_latency.json")
    args = parser.parse_args(argv)
    names = [name for name, _ in args.export]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice is not None:
        parser.error(f"--export {twice}=...: given twice (one folder per name)")

    from edgekit.bench.artifact import bench_folder, folder_inputs, settings
    from edgekit.bench.cpu import cpu_flags, cpu_line
    from edgekit.bench.results import write_results
    from edgekit.errors import EdgekitError

    where, fed, rows, sources = f"--device {args.device}", {}, [], []
    try:
        s = settings(args.device, threads=args.threads, seq_len="natural", min_runs=args.min_runs,
                     min_seconds=args.min_seconds)
        for name, folder in args.export:  # every folder's inputs (files verified) first: a bad one fails in seconds
            where = f"--export {name}={folder}"
            samples, inputs = folder_inputs(folder, s)
            fed[name] = inputs, [next(iter(sample.values())).shape[1] for sample in samples]
        for name, folder in args.export:
            where = f"--export {name}={folder}"
            results = bench_folder(folder, s)["results"]
            rows += [_row(name, doc, *fed[name]) for doc in results]
            sources.append(f"{name}: {results[0]['task']}, {folder}, inputs {fed[name][0]['source']}")
            print(f"{name}: done", flush=True)
    except EdgekitError as err:
        print(f"task_latency: {where}: {err}", file=sys.stderr)
        return 1
    facts = results[0]["facts"]  # the host's, the same in every result
    flags = cpu_flags()
    print(f"{cpu_line(flags)}\n{s.threads} threads, {s.profile.name} profile, batch 1, natural length\n"
          + "".join(f"- {line}\n" for line in sources) + "\n" + _table(rows))
    write_results(args.json, "task_latency", rows, device=s.profile.name, threads=s.threads, min_runs=args.min_runs,
                  min_seconds=args.min_seconds, cpu=facts.get("cpu"), cpu_flags=flags, cores=facts.get("cores"),
                  runtimes=facts.get("runtimes"), exports={name: str(folder) for name, folder in args.export})
    return 0


if __name__ == "__main__":
    sys.exit(main())
