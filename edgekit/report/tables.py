"""report.md (one row per artifact) and report.png (accuracy or cosine vs latency)."""

from __future__ import annotations

from pathlib import Path

from edgekit import tasks


def _score(manifest: dict, artifact: dict) -> tuple[str, float | None, float | None]:
    """(metric name, value, Δ vs the fp32 TensorFlow model) for the report."""
    ref = manifest["evaluation"]["fp32_tensorflow"]
    m = artifact.get("metrics") or {}
    for key in tasks.get(manifest["task"]).metrics:  # the task's headline metric first
        if key in m:
            return key, m[key], m[key] - ref[key] if key in ref else None
    return "", None, None


def _split(evaluation: dict) -> str:
    if "windows" not in evaluation:
        return ""
    return f" in {evaluation['windows']} windows; {evaluation['windowed']} needed more than one"


def write_markdown(path: Path, manifest: dict) -> None:
    ev = manifest["evaluation"]
    lines = [f"# edgekit export: {manifest['recipe']['name']}", "",
             f"Task {manifest['task']}; evaluated on the `{ev['split']}` split ({ev['examples']} texts{_split(ev)}) "
             f"with each artifact's own runtime; latency: batch 1, p50 (how it was taken: below the table).", "",
             "| format | precision | status | size MB | metric | value | Δ vs fp32 TF | p50 ms | runtime |",
             "|---|---|---|---|---|---|---|---|---|"]
    for a in manifest["artifacts"]:
        name, value, delta = _score(manifest, a)
        ok = a["status"] == "ok" and not a["gate"]
        status = "✅" if ok else "❌ " + "; ".join(a["gate"] or [a.get("error") or "failed"])
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            a["format"], a["precision"], status, f"{a['bytes'] / 1e6:.2f}" if a["bytes"] else "–", name or "–",
            f"{value:.4f}" if value is not None else "–", f"{delta:+.4f}" if delta is not None else "–",
            f"{a['latency_ms']['p50']:.2f}" if a.get("latency_ms") else "–", a.get("runtime") or "–"))
    reference = ", ".join(f"{k} {v:.4f}" for k, v in ev["fp32_tensorflow"].items())
    lines += ["", f"fp32 TensorFlow reference: {reference}.", "", *_vocabulary_notes(manifest),
              *_latency_notes(manifest), *_calibration_notes(manifest), *_speed_notes(manifest)]
    path.write_text("\n".join(lines) + "\n")


def _figures(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()) or "no label metric (it is its own reference)"


def _vocabulary_notes(manifest: dict) -> list[str]:
    """What vocabulary pruning (``export.vocabulary``) kept, what it costs the evaluation split's
    tokens, and the unpruned model's figures that every artifact's are to be compared with."""
    v = manifest.get("vocabulary")
    if not v:
        return []
    ev = v["evaluation"]
    kept_by = ", ".join(f"{n:,} {rule}" for rule, n in v["kept_by"].items())
    counted = " + ".join(f"{split} ({rows:,} rows)" for split, rows in v["counted_on"].items())
    lines = [f"Vocabulary (`export.vocabulary`: keep {v['keep']}, min_count {v['min_count']}"
             f"{', frequent ' + format(v['frequent'], ',') if v.get('frequent') else ''}): "
             f"{v['tokens_kept']:,} of {v['tokens_total']:,} tokens kept ({kept_by}), counted on {counted}. "
             f"On the `{ev['split']}` split {ev['unk_share']:.2%} of the tokens are [UNK] "
             f"({ev['unk_share_unpruned']:.2%} with the whole vocabulary, {ev['tokens']:,} tokens) and "
             f"{ev['words_retokenized_share']:.2%} of {ev['words']:,} words are split into other pieces.",
             f"The unpruned model, fp32 TensorFlow on the same split: {_figures(v['unpruned_fp32_tensorflow'])}."]
    if "fp32_tensorflow_vs_unpruned" in v:
        lines[-1] += (f" The pruned fp32 TensorFlow reference against it: {_figures(v['fp32_tensorflow_vs_unpruned'])}"
                      " (agreement and cosine: with the unpruned model's outputs).")
    return [*lines, "Every Δ above is against the pruned fp32 TensorFlow reference.", ""]


def _latency_notes(manifest: dict) -> list[str]:
    """One line per distinct way the p50 column was measured (at export, or by ``edgekit bench``)."""
    notes: dict[str, list[str]] = {}
    host = manifest["evaluation"].get("latency_host")
    for a in manifest["artifacts"]:
        lat = a.get("latency_ms")
        if not lat:
            continue
        if lat.get("measured_by") == "edgekit bench":
            seq = "natural length" if lat["seq_len"] == "natural" else f"{lat['seq_len']} tokens"
            how = (f"`edgekit bench` on {lat['device']} ({lat['where']}), {lat['runtime']}, {seq}, "
                   f"{lat['threads']} threads, {lat['utc']}")
        else:
            how = "at export: natural length, on the exporting host" + (f" ({_cpu(host)})" if host else "")
        notes.setdefault(how, []).append(f"{a['format']} {a['precision']}")
    return [f"p50 {how}: {', '.join(names)}." for how, names in notes.items()]


def _cpu(host: dict) -> str:
    flags = host.get("flags")
    shown = ", ".join(k for k, v in flags.items() if v) if flags else ""
    return f"{host['cpu']}: {shown or 'no avx2 / avx512 / vnni / amx flags read'}"


def _calibration_notes(manifest: dict) -> list[str]:
    """Static int8 ranges are measured on the calibration inputs only: say when the evaluation
    holds shorter or longer inputs than any of them (a 4-token query calibrated on 10-19-token
    sentences lost a MiniLM's OpenVINO int8 embedding: cosine 0.79 to fp32)."""
    from edgekit.config import Format, Precision
    from edgekit.config.formats import find

    cal, tokens = manifest.get("calibration"), manifest["evaluation"].get("tokens")
    static = [f"{a['format']} {a['precision']}" for a in manifest["artifacts"]
              if find(Format(a["format"]), Precision(a["precision"])).calibrated]
    if not cal or not tokens or not static:
        return []
    line = (f"Static int8 ({', '.join(static)}): activation ranges from {cal['inputs']} calibration inputs of "
            f"{cal['tokens']['min']}-{cal['tokens']['max']} tokens; the `{manifest['evaluation']['split']}` split "
            f"has {tokens['min']}-{tokens['max']}.")
    if tokens["min"] < cal["tokens"]["min"] or tokens["max"] > cal["tokens"]["max"]:
        line += (" Inputs outside the calibrated lengths get ranges measured on others: add such inputs to the "
                 "calibration split if the device will see them.")
    return [line]


def _speed_notes(manifest: dict) -> list[str]:
    """An int8 artifact timed no faster than its format's fp32 (the same way, on the same CPU):
    why, and which one to ship for that CPU. int8-weights computes in float, so it is not expected
    to be faster; it is the one to name when OpenVINO's int8-static is slow."""
    timed = {(a["format"], a["precision"]): a["latency_ms"] for a in manifest["artifacts"]
             if a["status"] == "ok" and a.get("latency_ms")}
    host = manifest["evaluation"].get("latency_host") or {}
    flags = host.get("flags") or {}
    lines = []
    for (fmt, precision), lat in timed.items():
        fp32 = timed.get((fmt, "fp32"))
        if not precision.startswith("int8") or precision == "int8-weights" or fp32 is None \
                or fp32.get("measured_by") != lat.get("measured_by") or lat["p50"] < fp32["p50"]:
            continue
        if lat.get("measured_by") is None and flags and not (flags.get("avx512_vnni") or flags.get("avx_vnni")):
            why = ("this CPU has no VNNI int8 dot-product instructions, so int8 matrix products gain little over "
                   "fp32 while the quantize / dequantize steps cost extra")
        else:
            why = (f"at these inputs (median {manifest['evaluation']['tokens']['median']:g} tokens) the quantize / "
                   "dequantize steps cost more than the int8 matrix products save" if "tokens" in
                   manifest["evaluation"] else "the quantize / dequantize steps cost more than int8 saves here")
        lines.append(f"{fmt} {precision} ({lat['p50']:.2f} ms) is not faster than {fmt} fp32 ({fp32['p50']:.2f} ms) "
                     f"where they were timed: {why}. For that CPU ship {fmt} fp32, or time the target device with "
                     "`edgekit bench`." + (_int8_weights_hint(manifest) if fmt == "openvino" else ""))
    return lines


def _int8_weights_hint(manifest: dict) -> str:
    """OpenVINO int8-weights: int8's file size at fp32's speed, the export's own figures when it
    has one (nothing when that one failed), else the target to add."""
    row = next((a for a in manifest["artifacts"] if (a["format"], a["precision"]) == ("openvino", "int8-weights")), None)
    if row is None:
        return (" For a small file at float speed add `{format: openvino, precision: int8-weights}` to the recipe's "
                "export.targets.")
    if row["status"] != "ok" or not row.get("latency_ms"):
        return ""
    return (f" openvino int8-weights ({row['bytes'] / 1e6:.1f} MB, {row['latency_ms']['p50']:.2f} ms) is the small "
            "file at float speed.")


def write_plot(path: Path, manifest: dict) -> None:
    """Score vs p50 latency, marker area proportional to file size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    name = ""
    for a in manifest["artifacts"]:
        name, value, _ = _score(manifest, a)
        if a["status"] != "ok" or value is None:
            continue
        ax.scatter(a["latency_ms"]["p50"], value, s=20 + a["bytes"] / 2e5, alpha=0.6)
        ax.annotate(f"{a['format']} {a['precision']}", (a["latency_ms"]["p50"], value), fontsize=7,
                    xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("p50 latency, batch 1 (ms; how it was taken: report.md)")
    ax.set_ylabel(name or "score")
    ax.set_title(f"{manifest['recipe']['name']}: marker size = file size")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
