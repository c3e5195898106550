"""Run the SST-2 recipe end to end (cached stages are reused) and tabulate teacher vs students.

Columns: model, layers, params, test accuracy, % of the teacher's accuracy, batch-1 latency on
TensorFlow (p50 over the test sentences at their natural length, and at seq 128), and the
wall time each stage took when it ran. Latency is measured in ``--rounds`` interleaved rounds
(every model once per round), and each figure is the median of its per-round p50s, so a burst
of load from elsewhere lands on all models alike instead of on one row; a speed-up is the
median of the per-round ratios teacher p50 / model p50. Extra students (e.g. 2 layers) come
from ``--variant``; ``--prune HEADS,FFN`` prunes the recipe's student with other fractions of
heads / FFN neurons removed per layer (the recipe's recovery settings, else a one-epoch
recovery fine-tune).

    .venv/bin/python benchmarks/sst2_recipe.py --variant 2,5 --json benchmarks/results/sst2_recipe.json
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _variant(recipe, layers: tuple[int, ...]):
    student = dataclasses.replace(recipe.distill.student, layers_from_teacher=layers)
    return dataclasses.replace(recipe, distill=dataclasses.replace(recipe.distill, student=student))


def _pruned(recipe, spec: str):
    from edgekit.config.recipe import PruneSection

    heads, ffn = (float(x) for x in spec.split(","))
    section = dataclasses.replace(recipe.prune or PruneSection(), head_sparsity=heads, ffn_sparsity=ffn)
    return dataclasses.replace(recipe, prune=section)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=REPO / "recipes" / "sst2-minilm-distill.yaml")
    parser.add_argument("--variant", action="append", default=[],
                        help="another student's teacher layers, e.g. 2,5 (repeatable)")
    parser.add_argument("--prune", action="append", default=[],
                        help="also prune the recipe's student: HEADS,FFN fractions, e.g. 0.25,0.5 (repeatable)")
    parser.add_argument("--cache", type=Path, help="stage cache [default: ~/.cache/edgekit/stages]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved latency rounds [default: 5]")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from edgekit.bench.results import write_results
    from edgekit.bench.tf_latency import fixed_length, natural_length, set_threads
    from edgekit.config import load_recipe
    from edgekit.data import load_splits
    from edgekit.models import load_pretrained
    from edgekit.train.pipeline import run_training

    set_threads(args.threads)
    recipe = load_recipe(args.recipe)
    runs = [run_training(recipe, cache_root=args.cache)]
    for spec in args.variant:
        runs.append(run_training(_variant(recipe, tuple(int(i) for i in spec.split(","))), cache_root=args.cache))
    for spec in args.prune:
        runs.append(run_training(_pruned(recipe, spec), cache_root=args.cache))
    test_texts = list(load_splits(recipe.data)["test"].texts)

    stages = {}
    for run in runs:
        for result in run[1:]:
            stages[result.folder] = result
    teacher_acc = next(r.record["metrics"]["test_accuracy"] for r in stages.values() if r.stage == "finetune")
    models = {folder: load_pretrained(folder) for folder in stages}
    p50s = {folder: {"natural": [], "seq128": []} for folder in stages}
    for _ in range(args.rounds):
        for folder, model in models.items():
            p50s[folder]["natural"].append(natural_length(model, test_texts, recipe.model.max_length).p50_ms)
            length = min(128, model.config.max_position_embeddings)
            p50s[folder]["seq128"].append(fixed_length(model.model, length).p50_ms)
    rows = []
    teacher_rounds = next(p50s[f] for f, r in stages.items() if r.stage == "finetune")
    for folder, result in stages.items():
        metrics = result.record["metrics"]
        speedup = {key: float(np.median(np.divide(teacher_rounds[key], p50s[folder][key]))) for key in p50s[folder]}
        rows.append({
            "model": "teacher" if result.stage == "finetune" else f"{result.stage} student",
            "stage": result.stage, "folder": str(folder), "layers": metrics["layers"], "params": metrics["params"],
            "test_accuracy": metrics["test_accuracy"], "of_teacher": metrics["test_accuracy"] / teacher_acc,
            "test_agreement": metrics.get("test_agreement"),
            "p50_ms_natural": float(np.median(p50s[folder]["natural"])),
            "p50_ms_seq128": float(np.median(p50s[folder]["seq128"])),
            "speedup_natural": speedup["natural"], "speedup_seq128": speedup["seq128"],
            "p50_ms_rounds": p50s[folder], "stage_seconds": result.record.get("seconds"),
        })

    print(f"{recipe.name}: TensorFlow fp32, batch 1, {args.threads} threads; natural = SST-2 test sentences; "
          f"median p50 of {args.rounds} interleaved rounds")
    head = f"{'model':<16} {'layers':>6} {'params':>11} {'test acc':>8} {'% teacher':>9} " \
           f"{'p50 natural':>11} {'p50 @128':>9} {'speed-up nat / 128':>18} {'stage time':>10}"
    print(head)
    for r in rows:
        print(f"{r['model']:<16} {r['layers']:>6} {r['params']:>11,} {100 * r['test_accuracy']:>7.2f}% "
              f"{100 * r['of_teacher']:>8.1f}% {r['p50_ms_natural']:>9.2f}ms {r['p50_ms_seq128']:>7.2f}ms "
              f"{r['speedup_natural']:>10.2f}x / {r['speedup_seq128']:.2f}x {r['stage_seconds'] or 0:>9.0f}s")
    if args.json:
        write_results(args.json, "sst2_recipe", rows, recipe=recipe.name, threads=args.threads, rounds=args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
