"""`edgekit bench` over real exports: the packaged MiniLM (quickstart) and the SST-2 student.

Exports each model (``edgekit export`` in a subprocess, so TensorFlow never enters the
measuring process), then benchmarks every artifact in ONE process with ``bench_folder`` at
seq 128 and at natural length (each export's evaluation texts at their own token counts),
x86-cpu profile, 2 threads. Prints one markdown table and writes JSON.

    .venv/bin/python benchmarks/device_bench.py --model /work/sst2-cache/distill-515d1e27ef60d666 \
        --json benchmarks/results/device_bench.json

Columns: p50 / p99 ms (batch 1), inferences/s (1000 / mean ms), load ms (runtime already
imported), RSS +MB (peak RSS after the load minus RSS before it), energy mJ = p50 × the
profile's nominal 15 W: an estimate, not a measurement.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _export(recipe: Path, out: Path, model: Path | None, reuse: bool) -> bool:
    if reuse and (out / "edgekit.json").is_file():
        print(f"reusing {out}", flush=True)
        return True
    command = [sys.executable, "-m", "edgekit", "export", str(recipe), "--out", str(out), "--threads", "2", "--quiet"]
    if model is not None:
        command += ["--model", str(model)]
    print("$ " + " ".join(command), flush=True)
    done = subprocess.run(command, capture_output=True, text=True)
    if not (out / "edgekit.json").is_file():
        print(f"export failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return False
    return True  # gate misses (exit 1) still leave measurable artifacts


def _row(model: str, fixed: dict, natural: dict) -> dict:
    from edgekit.bench.results import figures

    metrics = fixed["export_metrics"]  # the export's evaluation, carried by bench for verified files
    score = next((f"{k} {metrics[k]:.4f}" for k in ("accuracy", "cosine_mean") if k in metrics), "")
    return {"model": model, "format": fixed["format"], "precision": fixed["precision"], "status": fixed["status"],
            "error": fixed["error"], "mb": round(fixed["bytes"] / 1e6, 1), "metric": score, "runtime": fixed.get("runtime"),
            "seq128": figures(fixed), "natural": figures(natural)}


def _table(rows: list[dict]) -> str:
    head = ("| model | format | precision | MB | metric | seq128 p50 ms | seq128 p99 ms | seq128 /s | natural tokens | "
            "natural p50 ms | natural p99 ms | natural /s | load ms | RSS +MB | mJ est. (seq128) |")
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    for r in rows:
        f, n = r["seq128"], r["natural"]
        if not f:
            lines.append(f"| {r['model']} | {r['format']} | {r['precision']} | {r['mb']} | {r['status']}: {r['error']} |"
                         + " – |" * 10)
            continue
        lines.append(f"| {r['model']} | {r['format']} | {r['precision']} | {r['mb']} | {r['metric']} | {f['p50_ms']:.2f} | "
                     f"{f['p99_ms']:.2f} | {f['per_s']:.1f} | {n.get('tokens_mean', '–')} | {n.get('p50_ms', 0):.2f} | "
                     f"{n.get('p99_ms', 0):.2f} | {n.get('per_s', 0):.1f} | {f['load_ms']:.0f} | {f['rss_added_mb']} | "
                     f"{f['mj_est']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="the SST-2 student (a HF folder, e.g. /work/sst2-cache/distill-*)")
    parser.add_argument("--exports", type=Path, default=Path("/tmp/edgekit-device-bench"), help="export folders here")
    parser.add_argument("--reuse", action="store_true", help="reuse exports already in --exports")
    parser.add_argument("--device", default="x86-cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-seconds", type=float, default=3.0)
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "device_bench.json")
    args = parser.parse_args(argv)

    from edgekit.bench.artifact import bench_folder, settings
    from edgekit.bench.cpu import cpu_flags, cpu_line
    from edgekit.bench.results import write_results

    jobs = [("minilm-l6 (quickstart)", REPO / "recipes" / "quickstart.yaml", None)]
    if args.model is not None and (args.model / "config.json").is_file():
        jobs.append(("sst2 student", REPO / "recipes" / "sst2-minilm-distill.yaml", args.model))
    else:
        print(f"skipping the SST-2 student: {f'{args.model} has no config.json' if args.model else 'no --model given'}")
    rows, facts = [], {}
    for name, recipe, model in jobs:
        out = args.exports / recipe.stem
        if not _export(recipe, out, model, args.reuse):
            continue
        docs = {}
        for seq in (128, "natural"):
            s = settings(args.device, threads=args.threads, seq_len=seq, min_runs=100, min_seconds=args.min_seconds)
            docs[seq] = bench_folder(out, s)["results"]
            print(f"{name}: seq {seq} done", flush=True)
        rows += [_row(name, fixed, natural) for fixed, natural in zip(docs[128], docs["natural"])]
        facts = docs[128][0]["facts"]
    flags = cpu_flags()
    print(cpu_line(flags) + "\n\n" + _table(rows))
    write_results(args.json, "device_bench", rows, device=args.device, threads=args.threads,
                  min_seconds=args.min_seconds, cpu=facts.get("cpu"), cpu_flags=flags, cores=facts.get("cores"),
                  runtimes=facts.get("runtimes"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
