"""Batch-1 latency of edgekit's tf-keras encoder at several sequence lengths (TensorFlow CPU).

This is the float reference that exported artifacts are compared against; it is not an
edge runtime. Prints a table and writes JSON.

    .venv/bin/python benchmarks/encoder_latency.py --model minilm-l6 --threads 2 \
        --json benchmarks/results/encoder_latency.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6", help="built-in name or Hugging Face folder")
    parser.add_argument("--seq-lens", default="16,32,64,128", help="comma-separated token counts")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow intra- and inter-op threads")
    parser.add_argument("--min-seconds", type=float, default=3.0, help="time per sequence length")
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args(argv)

    from edgekit._tf import tf_modules
    from edgekit.bench.results import write_results
    from edgekit.bench.tf_latency import fixed_length, set_threads
    from edgekit.models import load_pretrained

    tf, _ = tf_modules()
    set_threads(args.threads)
    pretrained = load_pretrained(args.model)
    rows = []
    for seq in (int(s) for s in args.seq_lens.split(",")):
        stats = fixed_length(pretrained.model, seq, min_seconds=args.min_seconds)
        rows.append({"seq_len": seq, **stats.to_json()})

    print(f"{args.model}: tf-keras fp32, batch 1, {args.threads} threads, TensorFlow {tf.__version__}")
    print(f"{'seq':>5} {'runs':>6} {'p50 ms':>8} {'p90 ms':>8} {'min ms':>8}")
    for r in rows:
        print(f"{r['seq_len']:>5} {r['runs']:>6} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['min_ms']:>8.2f}")
    if args.json:
        write_results(args.json, "encoder_latency", rows, model=args.model, threads=args.threads,
                      tensorflow=tf.__version__)
    return 0


if __name__ == "__main__":
    sys.exit(main())
