"""Latency of an artifact in the runtime that runs it: batch 1 at each example's natural token
count (static artifacts pad inside their runner), p50 / p90 ms. Its metrics are the task's
(``TaskSpec.score``), on the outputs ``train.batching.collect`` gathers from the runner."""

from __future__ import annotations

import itertools

import numpy as np

from edgekit.bench.timing import measure
from edgekit.export.base import Runner


def latency(runner: Runner, samples: list[dict[str, np.ndarray]], min_seconds: float = 2.0) -> dict:
    """Batch-1 p50/p90 ms cycling through ``samples`` (natural-length inputs)."""
    cycle = itertools.cycle(samples)
    stats = measure(lambda: runner(next(cycle)), warmup=min(len(samples), 10),
                    min_runs=min(len(samples), 100), min_seconds=min_seconds)
    return {"p50": round(stats.p50_ms, 3), "p90": round(stats.p90_ms, 3), "runs": stats.runs}
