"""SST-2 accuracy of every TFLite precision and of each full-int8 technique (ablation), with
batch-1 latency, measured with ai-edge-litert on the fine-tuned teacher (and student).

For each model (a fine-tuned SST-2 classifier folder; by default the newest ``finetune-*`` and
``distill-*`` stage folders of the stage cache) the fp32 / fp16 / int8-dynamic artifacts and
the int8-full variants below are exported, then run on the 872 SST-2 test sentences one at a
time at their natural length (static variants: padded to their fixed length). Columns:
accuracy, points vs the fp32 TFLite artifact, argmax agreement with it, mean |logit
difference|, whether the graph is integer-only and which op types stayed float, p50 latency
(``edgekit.bench.measure``, batch 1, natural length, cycling through the test sentences) and
file size. Variants sharing the same float graph reuse one calibration pass.

    .venv/bin/python benchmarks/tflite_int8.py --threads 2 --json benchmarks/results/tflite_int8.json
    .venv/bin/python benchmarks/tflite_int8.py --model path/to/classifier --variant default --variant qat
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "sst2"  # where recipes/sst2-minilm-distill.yaml points


def _variants():
    from edgekit.config.enums import Calibration as C
    from edgekit.export.tflite.int8 import Int8Options

    d = Int8Options()
    bare = dataclasses.replace(d, residual_power=None, split_first=False, group_ffn=False, equalize_qk=False,
                               value_alpha=None)
    no_split = dataclasses.replace(d, split_first=False, group_ffn=False)
    # name -> (options, static seq len or None, description)
    return {
        "ptq-keras": (None, None, "plain PTQ of the tf-keras graph (mask -10000, TFLite min/max calibration)"),
        "graph-minmax": (dataclasses.replace(bare, calibration=C.MINMAX), None, "int8 graph, mask -30, min/max"),
        "graph-percentile": (bare, None, "+ percentile 99.99 ranges"),
        "residual": (dataclasses.replace(bare, residual_power=1.0), None, "+ residual-stream rescaling"),
        "residual-qk": (dataclasses.replace(no_split, value_alpha=None), None, "+ query/key equalization"),
        "residual-qk-value": (no_split, None, "+ value/attention-output smoothing"),
        "default": (d, None, "+ [CLS] in tensors of its own (the exporter's default)"),
        "ffn-groups": (dataclasses.replace(d, group_ffn=True), None, "default + FFN neurons grouped by range"),
        "split-only": (dataclasses.replace(bare, split_first=True), None,
                       "int8 graph, percentile, [CLS] apart, no weight rewrites"),
        "default-minmax": (dataclasses.replace(d, calibration=C.MINMAX), None, "default transforms, min/max"),
        "default-mse": (dataclasses.replace(d, calibration=C.MSE), None, "default transforms, MSE ranges"),
        "default-p99.999": (dataclasses.replace(d, percentile=99.999), None, "default, percentile 99.999"),
        "smoothquant-0.5": (dataclasses.replace(d, smoothquant_alpha=0.5), None, "default + SmoothQuant a=0.5"),
        "residual-power-0.5": (dataclasses.replace(d, residual_power=0.5), None, "default, half-strength rescale"),
        "per-tensor": (dataclasses.replace(d, per_channel=False), None, "default, per-tensor weights"),
        "static-1x64": (d, 64, "default, fixed [1, 64] (padded, mask -30)"),
        "float-rsqrt": (dataclasses.replace(d, keep_float=("RSQRT",)), None, "default, RSQRT kept float"),
        "qat": (d, None, "tfmot QAT (Dense layers), then the default calibration"),
        "qat-weights": (d, None, "the QAT-trained weights through the default int8-full pipeline"),
    }


def _models(args) -> list[tuple[str, Path]]:
    if args.model:
        pairs = [spec.split("=", 1) if "=" in spec else (Path(spec).name, spec) for spec in args.model]
        return [(label, Path(folder)) for label, folder in pairs]
    from edgekit.train.cache import default_root

    root = args.cache or default_root()
    found = []
    for stage, label in (("finetune", "teacher"), ("distill", "student")):
        folders = sorted((p for p in root.glob(f"{stage}-*") if (p / "config.json").is_file()),
                         key=lambda p: p.stat().st_mtime, reverse=True)
        if folders:
            found.append((label, folders[0]))
    if not found:
        raise SystemExit(f"no finetune-*/distill-* model folders in {root}; pass --model")
    return found


def _load_split(path: Path):
    from edgekit.config import DataSection
    from edgekit.config.enums import DataFormat
    from edgekit.data import load_split

    section = DataSection(format=DataFormat.TSV, test=path, labels=("negative", "positive"))
    return load_split(section, "test")


def _encode(pretrained, texts, max_length):
    """Each text as int32 [1, n] arrays at its natural length (truncated to the model's positions)."""
    max_length = min(max_length, pretrained.config.max_position_embeddings)
    names = tuple(pretrained.model.input_names)
    out = []
    for text in texts:
        enc = pretrained.tokenizer.encode([text], max_length)
        out.append({n: enc[n] for n in names})
    return out


class _Eval:
    def __init__(self, pretrained, test, threads, max_length, latency_seconds):
        self.inputs = _encode(pretrained, test.texts, max_length)
        self.labels = test.labels
        self.threads = threads
        self.latency_seconds = latency_seconds
        self.reference = None  # fp32 TFLite logits

    def run(self, path: Path, classifier: bool = True) -> dict:
        from edgekit.bench import measure
        from edgekit.export.tflite import load

        runner = load(path, self.threads)
        logits = np.concatenate([runner(x)[runner.output_names[0]] for x in self.inputs])  # one output
        if self.reference is None:
            self.reference = logits
        ref = self.reference
        if classifier:
            pred = logits.argmax(-1)
            row = {"accuracy": float((pred == self.labels).mean()),
                   "agreement": float((pred == ref.argmax(-1)).mean()),
                   "mean_abs_logit_diff": float(np.abs(logits - ref).mean())}
        else:  # sentence embeddings: cosine to the fp32 artifact's
            cos = (logits * ref).sum(-1) / (np.linalg.norm(logits, axis=-1) * np.linalg.norm(ref, axis=-1) + 1e-12)
            row = {"mean_cosine": float(cos.mean()), "min_cosine": float(cos.min())}
        cycle = itertools.cycle(self.inputs)
        stats = measure(lambda: runner(next(cycle)), warmup=100, min_runs=300, min_seconds=self.latency_seconds)
        row["p50_ms"] = stats.p50_ms
        row["bytes"] = path.stat().st_size
        return row


def _export_float(pretrained, precision, folder, seq_len):
    from edgekit.config.enums import Format, Precision
    from edgekit.config.formats import find
    from edgekit.export import tflite
    from edgekit.export.base import ExportJob

    job = ExportJob(row=find(Format.TFLITE, Precision(precision)), pretrained=pretrained, folder=folder,
                    seq_len=seq_len, static=False)
    return tflite.export(job)


def _ptq_keras(pretrained, calibration, path):
    """The naive baseline: the tf-keras graph through TFLiteConverter's own int8 calibration."""
    import tensorflow as tf

    from edgekit.export.base import task_outputs
    from edgekit.export.tflite.convert import keras_fn, signature

    outputs = tuple(o.name for o in task_outputs(pretrained))
    concrete, module = signature(keras_fn(pretrained.model, outputs), tuple(pretrained.model.input_names),
                                 static=False, track=pretrained.model)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: iter(calibration)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_output_type = tf.int8
    path.write_bytes(converter.convert())


class _Int8Builder:
    """Variants sharing transforms and shape share one float graph + calibration statistics."""

    def __init__(self, pretrained, calibration, seq_len):
        self.pretrained, self.calibration, self.seq_len = pretrained, calibration, seq_len
        self.cache: dict = {}

    def build(self, options, static_len, path: Path) -> dict:
        from edgekit.export.tflite import calibrate as C
        from edgekit.export.tflite import int8 as I

        key = (options.mask_bias, options.residual_power, options.split_first, options.group_ffn,
               options.equalize_qk, options.value_alpha, options.smoothquant_alpha, static_len)
        started = time.perf_counter()
        if key not in self.cache:
            weights = I.prepare_weights(self.pretrained, self.calibration, options)
            seq = static_len or self.seq_len
            concrete, module = I.float_graph_model(self.pretrained, weights, options, static=static_len is not None,
                                                   batch_size=1, seq_len=seq)
            batches = I.calibration_batches(self.calibration, static=static_len is not None, batch_size=1,
                                            seq_len=seq, pad_id=self.pretrained.tokenizer.pad_id)
            calibrated = C.calibrate_only(concrete, module, batches[:8])
            self.cache[key] = (calibrated, C.collect(calibrated, batches), list(weights.notes))
        calibrated, stats, notes = self.cache[key]
        ranges = C.choose_ranges(calibrated, stats, options.calibration, options.percentile)
        path.write_bytes(C.quantize(C.write_ranges(calibrated, ranges), per_channel=options.per_channel,
                                    keep_float=options.keep_float))
        return {"transforms": notes, "export_seconds": round(time.perf_counter() - started, 1)}


def _qat_model(pretrained, train, options, args):
    """tfmot QAT model trained on a random subset of train.tsv; (model, facts)."""
    from edgekit.config import TrainSchedule
    from edgekit.export.tflite import qat

    started = time.perf_counter()
    model = qat.quantize_aware_model(pretrained, options.mask_bias)
    schedule = TrainSchedule(epochs=1.0, batch_size=32, learning_rate=args.qat_lr, warmup_ratio=0.1)
    rows = np.random.default_rng(0).permutation(len(train))[: args.qat_examples]
    max_length = min(args.max_length, pretrained.config.max_position_embeddings)
    fit = qat.train(model, pretrained, train.subset(rows), schedule, max_length=max_length)
    return model, {"qat_steps": fit.steps, "qat_examples": int(len(rows)), "qat_lr": args.qat_lr,
                   "qat_seconds": round(time.perf_counter() - started, 1)}


def _qat_weights(pretrained, model):
    """A Pretrained with the QAT model's trained float weights (copied by variable name)."""
    from edgekit.models import Pretrained
    from edgekit.models.encoder import build_encoder

    plain = build_encoder(pretrained.config)
    trained = {v.name: v for v in model.weights}
    for variable in plain.weights:
        variable.assign(trained[variable.name])
    return Pretrained(config=pretrained.config, model=plain, tokenizer=pretrained.tokenizer, source=pretrained.source)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", default=[],
                        help="classifier folder, optionally LABEL=FOLDER (repeatable)")
    parser.add_argument("--cache", type=Path, help="stage cache holding finetune-*/distill-* folders")
    parser.add_argument("--data", type=Path, default=DATA, help="folder with train.tsv and test.tsv")
    parser.add_argument("--variant", action="append", default=[], help="int8 variant name (default: all)")
    parser.add_argument("--no-float", action="store_true", help="skip fp16 / int8-dynamic")
    parser.add_argument("--encoder", action="append", default=[],
                        help="also a sentence encoder (e.g. minilm-l6): mean cosine to fp32 instead of accuracy")
    parser.add_argument("--calibration", type=int, default=800, help="calibration sentences from train.tsv")
    parser.add_argument("--qat-examples", type=int, default=8000)
    parser.add_argument("--qat-lr", type=float, default=1e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-seconds", type=float, default=2.0)
    parser.add_argument("--work", type=Path, help="keep artifacts here [default: a temporary folder]")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from edgekit.bench.results import write_results
    from edgekit.export.tflite.inspect import op_listing
    from edgekit.models import load_pretrained

    variants = _variants()
    chosen = args.variant or list(variants)
    unknown = sorted(set(chosen) - set(variants))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {', '.join(variants)}")
    test = _load_split(args.data / "test.tsv")
    train = _load_split(args.data / "train.tsv")
    work = args.work or Path(tempfile.mkdtemp(prefix="tflite-int8-"))
    rows = []
    for label, folder in _models(args):
        pretrained = load_pretrained(folder)
        rng = np.random.default_rng(0)
        picked = rng.permutation(len(train))[: args.calibration]
        calibration = _encode(pretrained, [train.texts[i] for i in picked], args.max_length)
        evaluator = _Eval(pretrained, test, args.threads, args.max_length, args.latency_seconds)
        keras_logits = np.concatenate([pretrained.model(x, training=False)["logits"].numpy()
                                       for x in evaluator.inputs])
        keras_acc = float((keras_logits.argmax(-1) == test.labels).mean())
        out = work / label
        out.mkdir(parents=True, exist_ok=True)
        fp32_acc = None

        def record(name, precision, description, path, extra=None):
            nonlocal fp32_acc
            row = {"model": label, "folder": str(folder), "variant": name, "precision": precision,
                   "description": description, **evaluator.run(path)}
            listing = op_listing(path)
            row.update(integer_only=listing["integer_only"], float_ops=listing["float_ops"],
                       op_count=listing["op_count"], **(extra or {}))
            fp32_acc = row["accuracy"] if fp32_acc is None else fp32_acc
            row["points_vs_fp32"] = 100 * (row["accuracy"] - fp32_acc)
            rows.append(row)
            print(f"  {label:<8} {name:<18} acc {100 * row['accuracy']:6.2f}%  "
                  f"{row['points_vs_fp32']:+6.2f} pt  agree {100 * row['agreement']:6.2f}%  "
                  f"p50 {row['p50_ms']:6.2f} ms  int-only {row['integer_only']!s:5}  "
                  f"float {'(float graph)' if precision in ('fp32', 'fp16', 'int8-dynamic') else ','.join(row['float_ops']) or '-'}",
                  flush=True)

        print(f"{label}: {folder} (tf-keras fp32 accuracy {100 * keras_acc:.2f}%)", flush=True)
        for precision in ("fp32",) + (() if args.no_float else ("fp16", "int8-dynamic")):
            result = _export_float(pretrained, precision, out / precision, args.max_length)
            record(precision, precision, f"TFLite {precision}", result.files[0])
        builder = _Int8Builder(pretrained, calibration, args.max_length)
        trained = None  # the QAT model, trained once for both QAT variants
        for name in chosen:
            options, static_len, description = variants[name]
            path = out / f"int8-{name}.tflite"
            if name == "ptq-keras":
                _ptq_keras(pretrained, calibration, path)
                extra = {}
            elif name in ("qat", "qat-weights"):
                from edgekit.export.tflite import int8 as I
                from edgekit.export.tflite import qat

                if trained is None:
                    trained = _qat_model(pretrained, train, options, args)
                model, extra = trained[0], dict(trained[1])
                if name == "qat":
                    batches = I.calibration_batches(calibration, static=False, batch_size=1,
                                                    seq_len=args.max_length)
                    path.write_bytes(qat.convert(model, tuple(pretrained.model.input_names), "logits", batches,
                                                 options, static=False, batch_size=1, seq_len=args.max_length))
                else:
                    extra.update(_Int8Builder(_qat_weights(pretrained, model), calibration, args.max_length)
                                 .build(options, static_len, path))
            else:
                extra = builder.build(options, static_len, path)
            extra["options"] = None if options is None else options.to_json()
            record(name, "int8-qat" if name == "qat" else "int8-full", description, path, extra)
        for row in rows:
            if row["model"] == label:
                row["tf_keras_accuracy"] = keras_acc

    encoder_rows = [_encoder(name, args, test, train, work, chosen) for name in args.encoder]
    encoder_rows = [r for rows_ in encoder_rows for r in rows_]

    print(f"\nSST-2 test ({len(test)} sentences), ai-edge-litert, batch 1 at natural length, {args.threads} threads")
    print(f"{'model':<8} {'variant':<20} {'acc %':>6} {'vs fp32':>8} {'agree %':>7} {'|dlogit|':>8} "
          f"{'p50 ms':>6} {'MB':>5}  integer-only / float ops")
    for r in rows:
        floats = ",".join(f"{k}x{v}" for k, v in r["float_ops"].items()) or "-"
        floats = "float graph" if r["precision"] in ("fp32", "fp16", "int8-dynamic") else floats
        print(f"{r['model']:<8} {r['variant']:<20} {100 * r['accuracy']:6.2f} {r['points_vs_fp32']:+8.2f} "
              f"{100 * r['agreement']:7.2f} {r['mean_abs_logit_diff']:8.3f} {r['p50_ms']:6.2f} "
              f"{r['bytes'] / 2**20:5.1f}  {'yes' if r['integer_only'] else 'no'} / {floats}")
    for r in encoder_rows:
        floats = ",".join(f"{k}x{v}" for k, v in r["float_ops"].items()) or "-"
        print(f"{r['model']:<12} {r['variant']:<20} cosine to fp32: mean {r['mean_cosine']:.4f} min "
              f"{r['min_cosine']:.4f}  p50 {r['p50_ms']:6.2f} ms  {'yes' if r['integer_only'] else 'no'} / {floats}")
    if args.json:
        write_results(args.json, "tflite_int8", rows + encoder_rows, threads=args.threads,
                      calibration_sentences=args.calibration, test_sentences=len(test),
                      command=" ".join(["benchmarks/tflite_int8.py"] + (argv or [])))
    return 0


def _encoder(name, args, test, train, work, chosen) -> list[dict]:
    """fp32 / fp16 / int8-dynamic / int8-full variants of a sentence encoder: cosine to fp32."""
    from edgekit.export.tflite.inspect import op_listing
    from edgekit.models import load_pretrained

    pretrained = load_pretrained(name)
    picked = np.random.default_rng(0).permutation(len(train))[: args.calibration]
    calibration = _encode(pretrained, [train.texts[i] for i in picked], args.max_length)
    evaluator = _Eval(pretrained, test, args.threads, args.max_length, args.latency_seconds)
    out = work / f"encoder-{name}"
    rows = []
    variants = _variants()

    def record(variant, path, extra=None):
        row = {"model": name, "variant": variant, **evaluator.run(path, classifier=False)}
        listing = op_listing(path)
        row.update(integer_only=listing["integer_only"], float_ops=listing["float_ops"], **(extra or {}))
        rows.append(row)
        print(f"  {name} {variant:<20} cosine {row['mean_cosine']:.4f} (min {row['min_cosine']:.4f})", flush=True)

    for precision in ("fp32", "fp16", "int8-dynamic"):
        record(precision, _export_float(pretrained, precision, out / precision, args.max_length).files[0])
    builder = _Int8Builder(pretrained, calibration, args.max_length)
    for variant in chosen:
        if variant.startswith("qat"):
            continue
        options, static_len, _ = variants[variant]
        path = out / f"int8-{variant}.tflite"
        if variant == "ptq-keras":
            _ptq_keras(pretrained, calibration, path)
            record(variant, path)
        else:
            record(variant, path, builder.build(options, static_len, path))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
