"""Per-text fidelity of an export folder's int8 artifacts: which inputs they get wrong.

Each artifact runs the texts of a TSV (first column, header line skipped) one at a time at
natural length in its own runtime, like the export's evaluation; each int8 artifact's first
output (an embedding or logits, flattened per text) is compared by cosine with the fp32
artifact of the same format. Prints mean / min and the worst texts with their token counts:
the evaluation split's mean can hide a few inputs a static int8 range was never calibrated for.

    .venv/bin/python benchmarks/int8_fidelity.py --export QUICKSTART_OUT \
        --texts ../shared/data/sst2/test.tsv --limit 300 --json benchmarks/results/int8_fidelity.json
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True, help="an `edgekit export` folder")
    parser.add_argument("--texts", type=Path, required=True, help="TSV with a header; the first column is read")
    parser.add_argument("--limit", type=int, default=300)
    parser.add_argument("--worst", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from edgekit.bench.cpu import cpu_flags, cpu_line
    from edgekit.bench.results import write_results
    from edgekit.models.tokenizer import TextTokenizer

    manifest = json.loads((args.export / "edgekit.json").read_text())
    texts = [line.split("\t")[0] for line in args.texts.read_text(encoding="utf-8").splitlines()[1:args.limit + 1]]
    encoded = TextTokenizer(args.export).encode_ragged(texts, manifest["max_length"])
    feeds = []
    for ids, types in zip(encoded["input_ids"], encoded["token_type_ids"]):
        ids = np.asarray(ids, np.int32)[None]
        feeds.append({"input_ids": ids, "attention_mask": np.ones_like(ids),
                      "token_type_ids": np.asarray(types, np.int32)[None]})
    outputs = {}
    for a in manifest["artifacts"]:
        if a["status"] != "ok":
            continue
        runner = importlib.import_module(f"edgekit.export.{a['format']}").load(args.export / a["path"], 2)
        first = runner.output_names[0]
        outputs[(a["format"], a["precision"])] = np.stack(
            [runner({n: f[n] for n in runner.input_names})[first].reshape(-1) for f in feeds])
    rows = []
    for (fmt, precision), values in outputs.items():
        reference = outputs.get((fmt, "fp32"))
        if precision == "fp32" or reference is None:
            continue
        cos = (values * reference).sum(1) / np.linalg.norm(values, axis=1) / np.linalg.norm(reference, axis=1)
        worst = [{"text": texts[i], "tokens": len(encoded["input_ids"][i]), "cosine": round(float(cos[i]), 4)}
                 for i in np.argsort(cos)[:args.worst]]
        rows.append({"format": fmt, "precision": precision, "texts": len(texts),
                     "cosine_mean": round(float(cos.mean()), 4), "cosine_min": round(float(cos.min()), 4),
                     "worst": worst})
    print(cpu_line(cpu_flags()))
    print(f"{args.export}: int8 vs fp32 of the same format over {len(texts)} texts of {args.texts}")
    for r in rows:
        shown = "; ".join(f"{w['text'].strip()!r} ({w['tokens']} tokens) {w['cosine']:.4f}" for w in r["worst"])
        print(f"{r['format']:<9} {r['precision']:<13} mean {r['cosine_mean']:.4f} min {r['cosine_min']:.4f}  "
              f"worst: {shown}")
    if args.json:
        write_results(args.json, "int8_fidelity", rows, export=str(args.export), texts=str(args.texts),
                      cpu=cpu_line(cpu_flags()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
