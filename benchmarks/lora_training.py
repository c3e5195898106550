"""LoRA against full fine-tuning of MiniLM on SST-2: trainable parameters, step time, peak memory.

Each variant trains ``--steps`` steps of the same SST-2 batches (batch 32, the recipe's
optimiser) in its own process under ``/usr/bin/time -v``, so its peak RSS is its own; the
variants alternate over ``--rounds`` rounds and each figure is the median over rounds of
(median step time over the steps after the first ``--warmup``, which trace the step) and of
peak RSS. A step is timed from one batch's start to the next (the training step plus the
batch's assembly, alike for every variant). Ratios are LoRA / full, medians of per-round ratios.

    .venv/bin/python benchmarks/lora_training.py --json benchmarks/results/lora_training.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO.parent / "shared" / "data" / "sst2" / "train.tsv"
# name -> (FinetuneSection keys): the SST-2 recipes' fine-tunes (sst2-minilm-distill / -lora) and all weights
VARIANTS = {
    "full (word embeddings frozen)": {"learning_rate": 5e-5, "freeze_word_embeddings": True},
    "full (every weight)": {"learning_rate": 5e-5},
    "lora r8 query+value": {"learning_rate": 1e-3, "lora": {"rank": 8, "alpha": 16, "dropout": 0.1}},
}


def one(name: str, steps: int, threads: int) -> dict:
    """Train variant ``name`` for ``steps`` steps in this process; its step times and parameters."""
    from edgekit._tf import tf_modules

    tf, _ = tf_modules()
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from edgekit.config import DataSection, FinetuneSection, LoraSection
    from edgekit.data import load_splits
    from edgekit.train.batching import TokenizedDataset
    from edgekit.train.finetune import task_loss
    from edgekit.train.heads import load_task_model
    from edgekit.train.loop import fit
    from edgekit.train.lora import add_adapters

    settings = dict(VARIANTS[name])
    lora = settings.pop("lora", None)
    schedule = FinetuneSection(epochs=1.0, batch_size=32, lora=lora and LoraSection(**lora), **settings)
    split = load_splits(DataSection(train=SST2, max_examples=32 * steps))["train"]
    model = load_task_model("minilm-l6", "text-classification", ("negative", "positive"), seed=0)
    trained = add_adapters(model, schedule.lora, seed=0).pretrained if schedule.lora else model
    data = TokenizedDataset.from_texts(split, model.tokenizer, 128, tuple(model.model.input_names))
    marks = []

    def extras(batch):  # called as each step starts
        marks.append(time.perf_counter())
        return {}

    fit(model=trained.model, loss_fn=task_loss(trained.model), data=data, schedule=schedule, seed=0,
        strategy=tf.distribute.get_strategy(), description=name, extras=extras, show_progress=False)
    variables = [v for v in trained.model.trainable_variables
                 if not (schedule.freeze_word_embeddings and "word_embeddings" in v.name)]
    return {"step_s": np.diff(marks).tolist(), "trainable": int(sum(np.prod(v.shape) for v in variables)),
            "params": int(model.model.count_params())}


def _measure(name: str, steps: int, threads: int) -> dict:
    out = subprocess.run(["/usr/bin/time", "-v", sys.executable, __file__, "--one", name, "--steps", str(steps),
                          "--threads", str(threads)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{name}: {out.stderr.strip().splitlines()[-1]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
    result["peak_rss_mb"] = int(rss.group(1)) / 1024
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out (tracing)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.steps, args.threads)))
        return 0

    from edgekit.bench.cpu import cpu_flags, cpu_line
    from edgekit.bench.results import write_results

    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for _ in range(args.rounds):
        for name in VARIANTS:
            run = _measure(name, args.steps, args.threads)
            run["step_ms"] = 1000 * float(np.median(run["step_s"][args.warmup:]))
            runs[name].append(run)
    full = runs[next(iter(VARIANTS))]
    rows = []
    print(cpu_line(cpu_flags()))
    print(f"| variant | trainable params | share | step ms (median; min-max over {args.rounds} rounds) | "
          "peak RSS MB | step / full | RSS / full |\n|---|---|---|---|---|---|---|")
    for name, measured in runs.items():
        step = [r["step_ms"] for r in measured]
        rss = [r["peak_rss_mb"] for r in measured]
        row = {"variant": name, "trainable_params": measured[0]["trainable"], "params": measured[0]["params"],
               "step_ms": float(np.median(step)), "step_ms_range": [min(step), max(step)],
               "peak_rss_mb": float(np.median(rss)), "peak_rss_mb_range": [min(rss), max(rss)],
               "step_ratio": float(np.median([r["step_ms"] / f["step_ms"] for r, f in zip(measured, full)])),
               "rss_ratio": float(np.median([r["peak_rss_mb"] / f["peak_rss_mb"] for r, f in zip(measured, full)]))}
        rows.append(row)
        print(f"| {name} | {row['trainable_params']:,} | {row['trainable_params'] / row['params']:.2%} | "
              f"{row['step_ms']:.0f} ({min(step):.0f}-{max(step):.0f}) | {row['peak_rss_mb']:.0f} | "
              f"{row['step_ratio']:.2f} | {row['rss_ratio']:.2f} |")
    if args.json:
        write_results(args.json, "lora_training", rows, steps=args.steps, warmup=args.warmup, rounds=args.rounds,
                      threads=args.threads, batch_size=32, cpu=cpu_line(cpu_flags()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
