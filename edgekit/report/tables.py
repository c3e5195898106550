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
              *_latency_notes(manifest["artifacts"])]
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
    lines = [f"Vocabulary (`export.vocabulary`: keep {v['keep']}, min_count {v['min_count']}): "
             f"{v['tokens_kept']:,} of {v['tokens_total']:,} tokens kept ({kept_by}), counted on {counted}. "
             f"On the `{ev['split']}` split {ev['unk_share']:.2%} of the tokens are [UNK] "
             f"({ev['unk_share_unpruned']:.2%} with the whole vocabulary, {ev['tokens']:,} tokens) and "
             f"{ev['words_retokenized_share']:.2%} of {ev['words']:,} words are split into other pieces.",
             f"The unpruned model, fp32 TensorFlow on the same split: {_figures(v['unpruned_fp32_tensorflow'])}."]
    if "fp32_tensorflow_vs_unpruned" in v:
        lines[-1] += (f" The pruned fp32 TensorFlow reference against it: {_figures(v['fp32_tensorflow_vs_unpruned'])}"
                      " (agreement and cosine: with the unpruned model's outputs).")
    return [*lines, "Every Δ above is against the pruned fp32 TensorFlow reference.", ""]


def _latency_notes(artifacts: list[dict]) -> list[str]:
    """One line per distinct way the p50 column was measured (at export, or by ``edgekit bench``)."""
    notes: dict[str, list[str]] = {}
    for a in artifacts:
        lat = a.get("latency_ms")
        if not lat:
            continue
        if lat.get("measured_by") == "edgekit bench":
            seq = "natural length" if lat["seq_len"] == "natural" else f"{lat['seq_len']} tokens"
            how = (f"`edgekit bench` on {lat['device']} ({lat['where']}), {lat['runtime']}, {seq}, "
                   f"{lat['threads']} threads, {lat['utc']}")
        else:
            how = "at export: natural length, on the exporting host"
        notes.setdefault(how, []).append(f"{a['format']} {a['precision']}")
    return [f"p50 {how}: {', '.join(names)}." for how, names in notes.items()]


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
