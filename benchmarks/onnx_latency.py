"""Batch-1 onnxruntime latency and embedding fidelity of edgekit's ONNX artifacts vs tf2onnx.

For one model (default minilm-l6): edgekit's onnx-fp32 / onnx-int8-dynamic / onnx-int8-static
artifacts (``edgekit.export.onnx``) and, for comparison, tf2onnx 1.17's conversion of the same
tf-keras model, all run by onnxruntime on the CPU with the same session settings (``threads``
intra-op threads, 1 inter-op, ORT_ENABLE_ALL). Latency: p50 / p90 (``edgekit.bench.measure``) at
fixed sequence lengths and over SST-2 test sentences at their natural length (batch 1, no
padding), in interleaved rounds; the table shows each artifact's best round (the JSON has every
round). Fidelity: cosine of each artifact's output to the tf-keras model's on SST-2 test
sentences (classifiers: also label agreement and accuracy). Both int8 artifacts get SST-2 dev
sentences as calibration inputs (the data README's calibration split), never test ones: static
int8 calibrates on them, both use them for SmoothQuant. ``--variants`` adds the alternatives
the exporter's choices were measured against. ``--reference NAME=FILE.onnx`` adds another
tool's ONNX file (e.g. Optimum's export and int8, from ``benchmarks/optimum_reference.py``) run
with the same session settings; a [1, n, H] output is mean-pooled over the mask for the cosine.

    .venv/bin/python benchmarks/onnx_latency.py --threads 2 \
        --json benchmarks/results/onnx_latency.json
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SST2 = REPO.parent / "shared" / "data" / "sst2"


def _rows(path: Path, limit: int) -> list[tuple[str, int]]:
    """First ``limit`` (sentence, label) rows of a GLUE SST-2 TSV (header ``sentence<TAB>label``)."""
    lines = path.read_text(encoding="utf-8").splitlines()[1:]
    return [(text, int(label)) for text, label in (line.split("\t") for line in lines[:limit])]


def _sentences(path: Path, limit: int) -> list[str]:
    return [text for text, _ in _rows(path, limit)]


def _encode(pretrained, texts: list[str], max_length: int) -> list[dict[str, np.ndarray]]:
    """One [1, n] int32 input dict per text, natural length (no padding)."""
    names = pretrained.model.input_names
    out = []
    for text in texts:
        enc = pretrained.tokenizer.encode([text], max_length)
        out.append({n: enc[n] for n in names})
    return out


def _tf2onnx(pretrained, path: Path) -> Path:
    """tf2onnx 1.17's conversion of the tf-keras model (opset 17, dynamic batch and sequence)."""
    import tensorflow as tf
    import tf2onnx

    from edgekit.export.base import task_outputs

    model, wanted = pretrained.model, [o.name for o in task_outputs(pretrained)]
    names = list(model.input_names)
    spec = [tf.TensorSpec([None, None], tf.int32, name=n) for n in names]

    @tf.function(input_signature=spec, autograph=False)
    def serve(*args):
        out = model(dict(zip(names, args)), training=False)
        return {name: out[name] for name in wanted}

    tf2onnx.convert.from_function(serve, input_signature=spec, opset=17, output_path=str(path))
    return path


def _reference_runner(path: Path, threads: int):
    """Another tool's ONNX file in edgekit's session settings: inputs cast to the file's dtypes
    (Optimum: int64), the first output; [1, n, H] hidden states mean-pooled over the mask."""
    from edgekit.export.onnx.runner import OnnxRunner

    class Reference(OnnxRunner):
        def __call__(self, inputs):
            types = {i.name: np.int64 if "int64" in i.type else np.int32 for i in self.session.get_inputs()}
            [out] = self.session.run([self.output_names[0]], {n: np.asarray(inputs[n], types[n]) for n in types})
            if out.ndim == 3:
                mask = np.asarray(inputs["attention_mask"], np.float32)[..., None]
                out = (out * mask).sum(1) / mask.sum(1)
            return {self.output_names[0]: np.asarray(out, np.float32)}

    return Reference(path, threads)


def _latency(runners: dict, pretrained, seq_lens: list[int], natural: list[dict], min_seconds: float,
             rounds: int) -> dict[str, dict[str, list]]:
    """artifact -> setting (``seq<N>``, ``natural``) -> one LatencyStats per round.

    Rounds interleave the artifacts (every artifact once per round, per setting), so load from
    other processes on a shared machine lands on all of them alike; the best round of each is
    the closest to an idle machine (other processes only ever add time)."""
    from edgekit.bench.timing import measure

    settings = {f"seq{seq}": [{n: np.ones((1, seq), np.int32) for n in pretrained.model.input_names}]
                for seq in seq_lens}
    settings["natural"] = natural
    stats: dict[str, dict[str, list]] = {name: {k: [] for k in settings} for name in runners}
    for _ in range(rounds):
        for setting, feeds in settings.items():
            for name, runner in runners.items():
                cycle = itertools.cycle(feeds)
                n = len(feeds)
                stats[name][setting].append(measure(
                    lambda: runner(next(cycle)), warmup=min(n, 200) if n > 1 else 5,
                    min_runs=n if n > 1 else 30, min_seconds=min_seconds))
    return stats


def _fidelity(runner, reference: list[np.ndarray], inputs: list[dict], labels: np.ndarray | None) -> dict:
    """Cosine of each output row to the tf-keras one; for classifiers (``labels`` given, label i
    = logit i as in the SST-2 recipe) also argmax agreement with tf-keras and accuracy."""
    got = np.concatenate([runner(x)[runner.output_names[0]] for x in inputs])  # these models have one output
    ref = np.concatenate(reference)
    cos = (got * ref).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    out = {"cosine_mean": round(float(cos.mean()), 6), "cosine_min": round(float(cos.min()), 6)}
    if labels is not None:
        out["agreement"] = round(float((got.argmax(1) == ref.argmax(1)).mean()), 4)
        out["accuracy"] = round(float((got.argmax(1) == labels).mean()), 4)
    return out


def _variants(pretrained, folder: Path, calibration) -> dict[str, Path]:
    """Alternatives to the exporter's choices, built with the same modules (graph, smoothing,
    quantize) as ``edgekit.export.onnx.exporter``."""
    import dataclasses

    import onnx

    from edgekit.export.onnx import quantize as q
    from edgekit.export.onnx.graph import GraphOptions, build_model, head_nodes
    from edgekit.export.onnx.smoothing import DEFAULT_ALPHA, smoothing_factors
    from edgekit.models.checkpoint import collect_weights

    config = pretrained.config
    weights = collect_weights(pretrained.model, config)
    names = pretrained.model.input_names
    heads = head_nodes(config)

    def graph(kind: str, alpha: float | None) -> Path:
        path = folder / f"variant-fp32-{kind}-sq{alpha}.onnx"
        if not path.exists():
            model = build_model(config, weights, GraphOptions(attention=kind))
            if alpha is not None:
                factors = smoothing_factors(model, calibration, alpha)
                model = build_model(config, weights, GraphOptions(attention=kind, smoothing=factors))
            onnx.save_model(model, str(path))
        return path

    dynamic = {  # name: (graph kind, SmoothQuant alpha, settings)
        "int8-dynamic no SmoothQuant (no calibration)": ("packed", None, q.DynamicSettings()),
        # onnxruntime's / Optimum's default dynamic recipe on the same fused graph
        "int8-dynamic no SmoothQuant, per_channel=False, reduce_range=False": ("packed", None, q.DynamicSettings(
            per_channel=False, reduce_range=False)),
        "int8-dynamic SmoothQuant 0.5": ("packed", 0.5, q.DynamicSettings()),
        "int8-dynamic SmoothQuant 0.9": ("packed", 0.9, q.DynamicSettings()),
        "int8-dynamic reduce_range=False": ("packed", DEFAULT_ALPHA, q.DynamicSettings(reduce_range=False)),
        "int8-dynamic split attention": ("split", DEFAULT_ALPHA, q.DynamicSettings()),
        "int8-dynamic + QEmbedLayerNormalization": ("packed", DEFAULT_ALPHA, q.DynamicSettings(
            op_types=("MatMul", "Attention", "EmbedLayerNormalization"))),
    }
    static = {
        "int8-static no SmoothQuant": ("split", None, q.StaticSettings()),
        "int8-static minmax": ("split", DEFAULT_ALPHA, q.StaticSettings(calibration="minmax")),
        "int8-static mse (Entropy)": ("split", DEFAULT_ALPHA, q.StaticSettings(calibration="mse")),
        "int8-static percentile 99.999": ("split", DEFAULT_ALPHA, q.StaticSettings(percentile=99.999)),
        "int8-static reduce_range=False": ("split", DEFAULT_ALPHA, q.StaticSettings(reduce_range=False)),
        "int8-static per_channel=False": ("split", DEFAULT_ALPHA, q.StaticSettings(per_channel=False)),
        "int8-static packed attention (Q/K/V float)": ("packed", DEFAULT_ALPHA, q.StaticSettings()),
    }
    out: dict[str, Path] = {"fp32 split (MatMul + MultiHeadAttention)": graph("split", None)}
    for i, (name, (kind, alpha, settings)) in enumerate({**dynamic, **static}.items()):
        path = folder / f"variant-{i}.onnx"
        settings = dataclasses.replace(settings, nodes_to_exclude=heads)
        if name in dynamic:
            q.quantize_dynamic_int8(graph(kind, alpha), path, settings)
        else:
            q.quantize_static_int8(graph(kind, alpha), path, calibration, names, settings)
        out[name] = path
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="minilm-l6", help="built-in name or Hugging Face folder")
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads")
    parser.add_argument("--seq-lens", default="24,128", help="comma-separated fixed token counts")
    parser.add_argument("--test", type=Path, default=SST2 / "test.tsv", help="latency / fidelity sentences")
    parser.add_argument("--dev", type=Path, default=SST2 / "dev.tsv", help="calibration sentences")
    parser.add_argument("--fidelity-samples", type=int, default=200,
                        help="test sentences for cosine (and, for classifiers, agreement / accuracy)")
    parser.add_argument("--calibration-samples", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--min-seconds", type=float, default=1.0, help="time per measurement")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds over all artifacts")
    parser.add_argument("--no-tf2onnx", action="store_true", help="skip the tf2onnx comparison")
    parser.add_argument("--variants", action="store_true", help="also measure the alternatives (slow)")
    parser.add_argument("--reference", action="append", default=[], metavar="NAME=FILE",
                        help="another tool's ONNX file to measure alongside (repeatable)")
    parser.add_argument("--out", type=Path, help="keep the artifacts here [default: a temporary folder]")
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args(argv)

    import onnxruntime as ort

    from edgekit.bench.results import write_results
    from edgekit.bench.tf_latency import set_threads
    from edgekit.config import Format, QuantizeSection
    from edgekit.config.formats import FORMATS
    from edgekit.export.base import ExportJob
    from edgekit.export.onnx import export, load
    from edgekit.models import load_pretrained

    set_threads(args.threads)
    pretrained = load_pretrained(args.model)
    max_length = min(args.max_length, pretrained.config.max_position_embeddings)
    seq_lens = [min(int(s), max_length) for s in args.seq_lens.split(",")]
    test_rows = _rows(args.test, 10_000)
    natural = _encode(pretrained, [text for text, _ in test_rows], max_length)
    fidelity = natural[: args.fidelity_samples]
    classifier = bool(pretrained.config.num_labels)
    labels = np.array([label for _, label in test_rows[: len(fidelity)]]) if classifier else None
    calibration = tuple(_encode(pretrained, _sentences(args.dev, args.calibration_samples), max_length))
    key = "logits" if classifier else "embedding"  # the sentence tasks' one output
    reference = [pretrained.model(x, training=False)[key].numpy() for x in fidelity]
    facts = {}
    if classifier:
        facts["tf_keras_accuracy"] = round(float((np.concatenate(reference).argmax(1) == labels).mean()), 4)
        print(f"tf-keras fp32 accuracy on {len(fidelity)} test sentences: {facts['tf_keras_accuracy']:.4f}")

    folder = args.out or Path(tempfile.mkdtemp(prefix="edgekit-onnx-bench-"))
    artifacts: dict[str, tuple[Path, dict]] = {}
    for row in (r for r in FORMATS if r.format is Format.ONNX):
        # every int8 row gets the calibration texts: static needs them, dynamic uses them for SmoothQuant
        job = ExportJob(row=row, pretrained=pretrained, folder=folder, seq_len=max_length, static=False,
                        calibration=calibration if row.precision.value != "fp32" else (),
                        quantize=QuantizeSection(), threads=args.threads)
        start = time.perf_counter()
        result = export(job)
        seconds = time.perf_counter() - start
        details = result.details
        artifacts[f"edgekit {row.key}"] = (result.files[0], {
            "export_seconds": round(seconds, 1), "size_bytes": details["size_bytes"],
            "runtime_ops": details["runtime_ops"], "fusions": details["fusions"],
            "quantized_ops": details.get("quantized_ops"), "float_ops": details.get("float_ops"),
            "quantization": details.get("quantization"), "smoothquant": details.get("smoothquant")})
        print(f"exported {row.key} in {seconds:.1f} s: {details['runtime_ops']}", flush=True)
    if not args.no_tf2onnx:
        start = time.perf_counter()
        path = _tf2onnx(pretrained, folder / "tf2onnx-fp32.onnx")
        from edgekit.export.onnx.analysis import runtime_op_counts

        artifacts["tf2onnx fp32"] = (path, {"export_seconds": round(time.perf_counter() - start, 1),
                                            "size_bytes": path.stat().st_size,
                                            "runtime_ops": runtime_op_counts(path)})
    if args.variants:
        for name, path in _variants(pretrained, folder, calibration).items():
            artifacts[f"variant: {name}"] = (path, {"size_bytes": path.stat().st_size})

    references = dict(spec.split("=", 1) for spec in args.reference)
    for name, file in references.items():
        artifacts[name] = (Path(file), {"size_bytes": Path(file).stat().st_size})
    runners, rows = {}, []
    for name, (path, info) in artifacts.items():
        runners[name] = (_reference_runner(path, args.threads) if name in references
                         else load(path, threads=args.threads))
        rows.append({"artifact": name, "file": path.name, **_fidelity(runners[name], reference, fidelity, labels),
                     **info})
        print(f"{name}: cos {rows[-1]['cosine_mean']:.5f} (min {rows[-1]['cosine_min']:.5f})", flush=True)
    latency = _latency(runners, pretrained, seq_lens, natural, args.min_seconds, args.rounds)
    for row in rows:
        for setting, per_round in latency[row["artifact"]].items():
            best = min(per_round, key=lambda st: st.p50_ms)
            row[f"{setting}_p50_ms"] = round(best.p50_ms, 3)  # best round
            row[f"{setting}_p90_ms"] = round(best.p90_ms, 3)
            row[f"{setting}_p50_ms_rounds"] = [round(st.p50_ms, 3) for st in per_round]

    print(f"\n{args.model}: onnxruntime {ort.__version__}, batch 1, {args.threads} threads, p50 ms "
          f"(best of {args.rounds} interleaved rounds); "
          f"natural = {len(natural)} SST-2 test sentences; cosine vs tf-keras on {len(fidelity)}")
    cols = [f"seq{s}" for s in seq_lens] + ["natural"]
    extra = f" {'agree':>6} {'acc':>6}" if classifier else ""
    print(f"{'artifact':<70} " + " ".join(f"{c:>8}" for c in cols) + f" {'MB':>6} {'cos mean':>9} {'cos min':>8}"
          + extra)
    for r in rows:
        extra = f" {100 * r['agreement']:>5.1f}% {100 * r['accuracy']:>5.2f}%" if classifier else ""
        print(f"{r['artifact']:<70} " + " ".join(f"{r[c + '_p50_ms']:>8.2f}" for c in cols)
              + f" {r['size_bytes'] / 1e6:>6.1f} {r['cosine_mean']:>9.5f} {r['cosine_min']:>8.5f}" + extra)
    if args.json:
        write_results(args.json, "onnx_latency", rows, model=args.model, threads=args.threads,
                      onnxruntime=ort.__version__, batch=1, fidelity_samples=len(fidelity),
                      calibration_samples=len(calibration), natural_samples=len(natural), rounds=args.rounds,
                      load_average=os.getloadavg(), **facts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
