"""fp32 encoder artifacts against the CPU's limit: achieved GFLOP/s of each runtime beside the
CPU's peak (an estimate), and where the time goes.

For an export folder holding ``tflite-fp32``, ``onnx-fp32`` and ``openvino-fp32`` (e.g. the
quickstart's), at fixed sequence lengths, batch 1:

* p50 latency of each artifact through edgekit's runners (``edgekit.export.<format>.load``), in
  interleaved rounds (the table: median of the rounds' p50s, min-max beside it);
* the encoder's matmul FLOPs at that length (a multiply-add counts 2: the Q/K/V/output and FFN
  Dense layers, 2·n·in·out each, plus attention's Q·Kᵀ and P·V, 2·n²·H each; embedding lookups,
  softmax, LayerNorm and GELU are left out: they are memory-bound and under 2% of the FLOPs),
  hence achieved GFLOP/s;
* the peak: threads × clock × fp32 FLOPs per cycle per core from the CPU flags (AVX-512: two
  16-lane FMA units, 64; AVX2 + FMA: 32; else 16). An ESTIMATE: the clock is /proc/cpuinfo's
  ``cpu MHz`` (turbo and AVX-512 down-clocking change it) and some parts have one 512-bit FMA;
* where the time goes: onnxruntime's profiler (per node, summed by op type) and OpenVINO's
  performance counters (per executed node, by node type), as shares of a profiled call (which
  profiling slows); the rest of the call, outside every kernel, is the runtime's per-call
  overhead. edgekit's ONNX ``Attention`` op includes the Q/K/V projections.

    .venv/bin/python benchmarks/fp32_roofline.py --export QUICKSTART_OUT --model minilm-l6 \
        --json benchmarks/results/fp32_roofline.json
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FORMATS = {"tflite": "tflite-fp32.tflite", "onnx": "onnx-fp32.onnx", "openvino": "openvino-fp32.xml"}


def matmul_flops(config: dict, n: int) -> float:
    """Matmul FLOPs of one batch-1 call of a BERT encoder at ``n`` tokens (see the docstring)."""
    h, i, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    dense = 2 * n * (4 * h * h + 2 * h * i)
    attention = 2 * (2 * n * n * h)
    return float(layers * (dense + attention))


def peak_gflops(flags: dict[str, bool] | None, threads: int) -> tuple[float, str]:
    """(estimated fp32 peak GFLOP/s on ``threads`` cores, how it was estimated)."""
    from edgekit.bench.cpu import CPUINFO

    mhz = [float(line.split(":")[1]) for line in CPUINFO.read_text().splitlines() if line.startswith("cpu MHz")]
    ghz = max(mhz) / 1000 if mhz else float("nan")
    flags = flags or {}
    per_cycle, isa = (64, "avx512f: 2 FMA x 16 lanes x 2") if flags.get("avx512f") else \
        (32, "avx2+fma: 2 FMA x 8 lanes x 2") if flags.get("avx2") else (16, "no avx2: 16 assumed")
    return threads * ghz * per_cycle, f"estimate: {threads} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle ({isa})"


def inputs(n: int, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    ids = np.random.default_rng(n).integers(1000, 5000, (1, n)).astype(np.int32)
    arrays = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {k: arrays[k] for k in names}


def onnx_profile(path: Path, feed: dict, threads: int, runs: int) -> tuple[dict[str, float], float]:
    """(mean ms per call spent in each op type, mean ms of a profiled call): onnxruntime's
    profiler with the runner's settings (profiling slows a call: shares are of its own time)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.mkdtemp()) / "ort")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs + 3):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    calls = [e["dur"] / 1000 for e in events if e.get("cat") == "Session" and e["name"] == "model_run"][-runs:]
    per_call = collections.Counter()
    for e in kernels[-(len(kernels) // (runs + 3)) * runs:]:  # the last ``runs`` calls
        per_call[e["args"]["op_name"]] += e["dur"] / 1000 / runs
    return dict(per_call), float(np.mean(calls))


def openvino_profile(path: Path, feed: dict, threads: int, runs: int) -> tuple[dict[str, float], float]:
    """(mean ms per call in each executed node type, mean ms of a profiled call): OpenVINO's
    performance counters, f32, the runner's settings."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
        "PERF_COUNT": "YES"})
    request = compiled.create_infer_request()
    total, calls = collections.Counter(), []
    for i in range(runs + 3):
        began = time.perf_counter()
        request.infer(feed)
        calls.append((time.perf_counter() - began) * 1e3)
        if i >= 3:
            for info in request.get_profiling_info():
                if info.status == info.Status.EXECUTED:
                    total[info.exec_type.split("_")[0] + ":" + info.node_type] += info.real_time.total_seconds() * 1e3
    return {k: v / runs for k, v in total.items()}, float(np.mean(calls[3:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--export", type=Path, required=True, help="export folder with the fp32 artifacts")
    parser.add_argument("--model", default="minilm-l6", help="the exported model (built-in name or HF folder)")
    parser.add_argument("--seq-lens", default="24,128")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from edgekit.bench.cpu import cpu_flags, cpu_line
    from edgekit.bench.results import write_results
    from edgekit.bench.timing import measure
    from edgekit.models.registry import resolve_model

    config = json.loads((resolve_model(args.model) / "config.json").read_text())
    flags = cpu_flags()
    peak, how = peak_gflops(flags, args.threads)
    runners = {f: importlib.import_module(f"edgekit.export.{f}").load(args.export / name, args.threads)
               for f, name in FORMATS.items() if (args.export / name).is_file()}
    rows = []
    for n in (int(s) for s in args.seq_lens.split(",")):
        flops = matmul_flops(config, n)
        p50s = collections.defaultdict(list)
        for _ in range(args.rounds):
            for f, runner in runners.items():
                feed = inputs(n, runner.input_names)
                p50s[f].append(measure(lambda: runner(feed), min_runs=50, min_seconds=1.0).p50_ms)
        for f, runner in runners.items():
            p50 = float(np.median(p50s[f]))
            row = {"seq_len": n, "format": f, "runtime": runner.runtime, "p50_ms": round(p50, 3),
                   "round_p50s": [round(x, 3) for x in p50s[f]], "gflop": round(flops / 1e9, 3),
                   "gflops": round(flops / p50 / 1e6, 1), "of_peak": round(flops / p50 / 1e6 / peak, 3)}
            feed = inputs(n, runner.input_names)
            kernels = {"onnx": onnx_profile, "openvino": openvino_profile}.get(f)
            if kernels is not None:
                per_op, call_ms = kernels(args.export / FORMATS[f], feed, args.threads, runs=50)
                row["kernel_ms"] = {k: round(v, 4) for k, v in sorted(per_op.items(), key=lambda kv: -kv[1])}
                row["profiled_call_ms"] = round(call_ms, 3)
                row["outside_kernels_ms"] = round(call_ms - sum(per_op.values()), 3)
            rows.append(row)

    print(cpu_line(flags))
    print(f"peak fp32: {peak:.0f} GFLOP/s ({how}); {args.model}, batch 1, {args.threads} threads")
    print(f"{'tokens':>6} {'runtime':<28} {'p50 ms':>8} {'min-max':>13} {'GFLOP':>6} {'GFLOP/s':>8} {'of peak':>8}")
    for r in rows:
        spread = f"{min(r['round_p50s']):.2f}-{max(r['round_p50s']):.2f}"
        print(f"{r['seq_len']:>6} {r['runtime']:<28} {r['p50_ms']:>8.2f} {spread:>13} {r['gflop']:>6.2f} "
              f"{r['gflops']:>8.1f} {r['of_peak']:>8.1%}")
    for r in rows:
        if "kernel_ms" in r:
            call = r["profiled_call_ms"]
            top = ", ".join(f"{k} {v / call:.0%}" for k, v in list(r["kernel_ms"].items())[:6])
            print(f"{r['seq_len']:>6} {r['format']:<9} profiled call {call:.2f} ms: {top}; outside kernels "
                  f"{r['outside_kernels_ms'] / call:.0%}")
    if args.json:
        write_results(args.json, "fp32_roofline", rows, model=args.model, threads=args.threads, cpu=cpu_line(flags),
                      peak_gflops=round(peak, 1), peak_estimate=how, cpu_count=os.cpu_count())
    return 0


if __name__ == "__main__":
    sys.exit(main())
