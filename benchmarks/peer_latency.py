"""edgekit's artifacts beside another tool's files of the same model: batch-1 latency, size, fidelity.

Every artifact of an ``edgekit export`` folder (each through edgekit's own runner) and each
``--reference NAME=FILE`` (an ONNX file run by onnxruntime, or an OpenVINO ``.xml`` run by
OpenVINO, with the same thread count and the runtimes' latency settings) run in ONE process:
fixed sequence lengths (default 24 and 128 tokens) and SST-2 test sentences at natural length,
in interleaved rounds (every artifact once per round and setting, so load from elsewhere lands
on all alike); the table shows the median of the rounds' p50s with min-max, and the ratio of
edgekit's fastest artifact to the references' fastest per setting. Fidelity: cosine of each
artifact's sentence vector to the tf-keras model's (a [1, n, H] reference output is mean-pooled
over the mask) on the first ``--fidelity-samples`` test sentences. The CPU's vector flags head
the table: int8 kernels differ by machine (AVX2 vs AVX-512 VNNI).

The Optimum files come from a separate torch venv (``benchmarks/optimum_reference.py`` for ONNX
fp32 + int8-dynamic; ``optimum-cli export openvino --task feature-extraction --weight-format
int8 OUT`` for OpenVINO int8 weights):

    .venv/bin/python benchmarks/peer_latency.py --export QUICKSTART_OUT \\
        --reference "optimum onnx fp32=REF/model.onnx" \\
        --reference "optimum onnx int8-dynamic=REF/model_quantized.onnx" \\
        --reference "optimum openvino int8-weights=OVREF/openvino_model.xml" \\
        --json benchmarks/results/peer_latency.json
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO.parent / "shared" / "data" / "sst2"


def _pooled(out: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """[1, H] sentence vector: a [1, n, H] output mean-pooled over ``mask`` ([1, n])."""
    if out.ndim == 3:
        m = np.asarray(mask, np.float32)[..., None]
        out = (out * m).sum(1) / m.sum(1)
    return np.asarray(out, np.float32).reshape(1, -1)


class Reference:
    """Another tool's file: inputs cast to the dtypes it declares (Optimum: int64), its first
    output, pooled. onnxruntime as edgekit's ONNX runner sets it up (intra-op threads, 1 inter-op,
    all graph optimisations); OpenVINO with a latency hint, the thread count and f32 compute."""

    def __init__(self, path: Path, threads: int):
        self.path = path
        if path.suffix == ".xml":
            import openvino as ov

            core = ov.Core()
            model = core.read_model(str(path))
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
                      "INFERENCE_PRECISION_HINT": "f32"}
            self.request = core.compile_model(model, "CPU", config).create_infer_request()
            self.types = {p.get_any_name(): np.int64 if "64" in str(p.get_element_type()) else np.int32
                          for p in model.inputs}
            self.runtime = f"openvino {ov.get_version().split('-')[0]}"
        else:
            import onnxruntime as ort

            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self.types = {i.name: np.int64 if "int64" in i.type else np.int32 for i in self.session.get_inputs()}
            self.first = self.session.get_outputs()[0].name
            self.runtime = f"onnxruntime {ort.__version__}"

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        feed = {n: np.asarray(inputs[n], t) for n, t in self.types.items()}
        if hasattr(self, "request"):
            out = next(iter(self.request.infer(feed).values()))
        else:
            [out] = self.session.run([self.first], feed)
        return _pooled(out, inputs["attention_mask"])


class Edgekit:
    """One artifact of the export folder through edgekit's runner; its first output, pooled."""

    def __init__(self, folder: Path, entry: dict, threads: int):
        from edgekit.export.pipeline import BACKENDS

        backend = importlib.import_module(BACKENDS[_format(entry["format"])])
        self.runner = backend.load(folder / entry["path"], threads)
        self.name = self.runner.output_names[0]
        self.runtime = self.runner.runtime

    def __call__(self, inputs: dict[str, np.ndarray]) -> np.ndarray:
        return _pooled(self.runner(inputs)[self.name], inputs["attention_mask"])


def _format(value: str):
    from edgekit.config import Format

    return Format(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True, help="an `edgekit export` folder (dynamic shapes)")
    parser.add_argument("--reference", action="append", default=[], metavar="NAME=FILE",
                        help="another tool's .onnx or OpenVINO .xml file of the same model (repeatable)")
    parser.add_argument("--model", default="minilm-l6", help="the exported model (built-in name or HF folder): "
                        "its tf-keras outputs are the fidelity reference")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seq-lens", default="24,128", help="comma-separated fixed token counts")
    parser.add_argument("--test", type=Path, default=SST2 / "test.tsv", help="natural-length sentences")
    parser.add_argument("--natural-samples", type=int, default=100)
    parser.add_argument("--fidelity-samples", type=int, default=300)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved rounds over all artifacts")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from edgekit.bench.cpu import cpu_flags, cpu_line
    from edgekit.bench.results import write_results
    from edgekit.bench.tf_latency import set_threads
    from edgekit.bench.timing import measure
    from edgekit.models import load_pretrained

    set_threads(args.threads)
    manifest = json.loads((args.export / "edgekit.json").read_text(encoding="utf-8"))
    pretrained = load_pretrained(args.model)
    names = tuple(pretrained.model.input_names)
    texts = [line.split("\t")[0] for line in args.test.read_text(encoding="utf-8").splitlines()[1:]]
    encoded = [{n: pretrained.tokenizer.encode([t], 128)[n] for n in names}
               for t in texts[: max(args.natural_samples, args.fidelity_samples)]]
    reference = np.concatenate([pretrained.model(x, training=False)["embedding"].numpy()
                                for x in encoded[: args.fidelity_samples]])

    runners, rows = {}, []
    for entry in manifest["artifacts"]:
        if entry["status"] == "ok" and entry.get("shapes", "dynamic") == "dynamic":
            name = f"edgekit {entry['format']} {entry['precision']}"
            runners[name] = Edgekit(args.export, entry, args.threads)
            files = [args.export / f for f in entry["files"]]
            rows.append({"artifact": name, "tool": "edgekit", "bytes": sum(f.stat().st_size for f in files)})
    for spec in args.reference:
        name, _, file = spec.partition("=")
        path = Path(file)
        runners[name] = Reference(path, args.threads)
        files = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
        rows.append({"artifact": name, "tool": "reference", "bytes": sum(f.stat().st_size for f in files)})
    for row in rows:
        runner = runners[row["artifact"]]
        got = np.concatenate([runner(x) for x in encoded[: args.fidelity_samples]])
        cos = (got * reference).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(reference, axis=1))
        row.update(runtime=runner.runtime, cosine_mean=round(float(cos.mean()), 5),
                   cosine_min=round(float(cos.min()), 5))

    settings = {f"seq{s}": [{n: np.ones((1, int(s)), np.int32) for n in names}] for s in args.seq_lens.split(",")}
    settings["natural"] = encoded[: args.natural_samples]
    p50s: dict[str, dict[str, list[float]]] = {r["artifact"]: {k: [] for k in settings} for r in rows}
    for _ in range(args.rounds):
        for setting, feeds in settings.items():
            for name, runner in runners.items():
                cycle = itertools.cycle(feeds)
                stats = measure(lambda: runner(next(cycle)), warmup=min(len(feeds), 20) if len(feeds) > 1 else 5,
                                min_runs=len(feeds) if len(feeds) > 1 else 30, min_seconds=args.min_seconds)
                p50s[name][setting].append(round(stats.p50_ms, 3))
    for row in rows:
        for setting, values in p50s[row["artifact"]].items():
            row[f"{setting}_p50_ms"] = round(statistics.median(values), 3)
            row[f"{setting}_p50_ms_rounds"] = values

    ratios = {}
    for setting in settings:
        best = {tool: min((r for r in rows if r["tool"] == tool), key=lambda r: r[f"{setting}_p50_ms"], default=None)
                for tool in ("edgekit", "reference")}
        if best["reference"] is not None:
            ratios[setting] = {"edgekit": best["edgekit"]["artifact"], "reference": best["reference"]["artifact"],
                               "ratio": round(best["edgekit"][f"{setting}_p50_ms"]
                                              / best["reference"][f"{setting}_p50_ms"], 3)}

    flags = cpu_flags()
    print(f"{cpu_line(flags)}; batch 1, {args.threads} threads, p50 ms = median of {args.rounds} interleaved "
          f"rounds (min-max); natural = {len(settings['natural'])} SST-2 test sentences; cosine to tf-keras "
          f"over {len(reference)}")
    cols = list(settings)
    print("| artifact | MB | cosine mean / min | " + " | ".join(f"p50 ms {c}" for c in cols) + " |")
    print("|---|---|---|" + "---|" * len(cols))
    for r in rows:
        cells = [f"{r[c + '_p50_ms']:.2f} ({min(r[c + '_p50_ms_rounds']):.2f}-{max(r[c + '_p50_ms_rounds']):.2f})"
                 for c in cols]
        print(f"| {r['artifact']} | {r['bytes'] / 1e6:.1f} | {r['cosine_mean']:.4f} / {r['cosine_min']:.4f} | "
              + " | ".join(cells) + " |")
    for setting, r in ratios.items():
        print(f"{setting}: fastest edgekit ({r['edgekit']}) / fastest reference ({r['reference']}) = {r['ratio']:.2f}x")
    if args.json:
        write_results(args.json, "peer_latency", rows, cpu=cpu_line(flags), flags=flags, threads=args.threads,
                      rounds=args.rounds, ratios=ratios, load_average=os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
