"""Evaluate an artifact with the runtime that runs it, against the fp32 TensorFlow model.

Classifiers: accuracy on labelled text and agreement (same argmax) with the fp32 model.
Encoders: cosine of each embedding to the fp32 model's (mean and min). Latency: batch 1 at
each text's natural token count (static artifacts pad inside their runner), p50 / p90 ms.
"""

from __future__ import annotations

import itertools

import numpy as np

from edgekit.bench.timing import measure
from edgekit.export.base import Runner
from edgekit.models.tokenizer import TextTokenizer


def encode_each(tokenizer: TextTokenizer, texts: list[str], max_length: int,
                input_names: tuple[str, ...]) -> list[dict[str, np.ndarray]]:
    """One [1, n_i] int32 input dict per text, unpadded (the calibration/latency unit)."""
    out = []
    for text in texts:
        enc = tokenizer.encode([text], max_length)
        out.append({n: enc[n] for n in input_names})
    return out


def batched_outputs(call, tokenizer: TextTokenizer, texts: list[str], max_length: int,
                    input_names: tuple[str, ...], batch_size: int = 32) -> np.ndarray:
    """``call`` (dict of int32 [B, S] -> [B, K]) over ``texts`` in length-sorted batches; [N, K]."""
    order = np.argsort(tokenizer.lengths(texts, max_length), kind="stable")
    parts, rows = [], []
    for start in range(0, len(texts), batch_size):
        index = order[start:start + batch_size]
        enc = tokenizer.encode([texts[i] for i in index], max_length)
        parts.append(np.asarray(call({n: enc[n] for n in input_names}), dtype=np.float32))
        rows.append(index)
    result = np.empty((len(texts), parts[0].shape[1]), np.float32)
    result[np.concatenate(rows)] = np.concatenate(parts)
    return result


def compare(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray | None, classify: bool) -> dict:
    """Metrics of ``outputs`` [N, K] against the fp32 ``reference`` [N, K] (and labels)."""
    if classify:
        metrics = {"agreement": float((outputs.argmax(-1) == reference.argmax(-1)).mean())}
        if labels is not None:
            metrics["accuracy"] = float((outputs.argmax(-1) == labels).mean())
        return metrics
    cos = (outputs * reference).sum(-1) / (np.linalg.norm(outputs, axis=-1) * np.linalg.norm(reference, axis=-1))
    return {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min())}


def latency(runner: Runner, samples: list[dict[str, np.ndarray]], min_seconds: float = 2.0) -> dict:
    """Batch-1 p50/p90 ms cycling through ``samples`` (natural-length inputs)."""
    cycle = itertools.cycle(samples)
    stats = measure(lambda: runner(next(cycle)), warmup=min(len(samples), 10),
                    min_runs=min(len(samples), 100), min_seconds=min_seconds)
    return {"p50": round(stats.p50_ms, 3), "p90": round(stats.p90_ms, 3), "runs": stats.runs}
