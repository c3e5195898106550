"""Batch-1 latency of edgekit's tf-keras encoder at several sequence lengths (TensorFlow CPU).

This is the float reference that exported artifacts are compared against; it is not an
edge runtime. Prints a table and writes JSON.

    .venv/bin/python benchmarks/encoder_latency.py --model minilm-l6 --threads 2 \
        --json benchmarks/results/encoder_latency.json
"""

from __future__ import annotations

import argparse
import json
import platform
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

    tf, _ = tf_modules()
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    import numpy as np

    from edgekit.bench import measure
    from edgekit.models import load_pretrained

    pretrained = load_pretrained(args.model)
    call = tf.function(lambda inputs: pretrained.model(inputs, training=False), reduce_retracing=True)
    rows = []
    for seq in (int(s) for s in args.seq_lens.split(",")):
        inputs = {name: tf.constant(np.ones((1, seq), np.int32)) for name in pretrained.model.input_names}
        stats = measure(lambda: call(inputs), warmup=5, min_runs=30, min_seconds=args.min_seconds)
        rows.append({"seq_len": seq, **stats.to_json()})

    print(f"{args.model}: tf-keras fp32, batch 1, {args.threads} threads, TensorFlow {tf.__version__}")
    print(f"{'seq':>5} {'runs':>6} {'p50 ms':>8} {'p90 ms':>8} {'min ms':>8}")
    for r in rows:
        print(f"{r['seq_len']:>5} {r['runs']:>6} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['min_ms']:>8.2f}")
    if args.json:
        doc = {"benchmark": "encoder_latency", "model": args.model, "threads": args.threads,
               "tensorflow": tf.__version__, "python": platform.python_version(),
               "machine": platform.machine(), "rows": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
