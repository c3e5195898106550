"""Repeat a call until both a minimum count and a minimum time are reached; report percentiles.

Uses ``time.perf_counter_ns``; all figures are milliseconds. The first call after warm-up
is timed like every other one — warm-up calls are never counted.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class LatencyStats:
    runs: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    min_ms: float

    @classmethod
    def from_samples(cls, samples_ms: list[float] | np.ndarray) -> "LatencyStats":
        s = np.asarray(samples_ms, dtype=np.float64)
        p50, p90, p99 = np.percentile(s, [50, 90, 99])
        return cls(len(s), float(p50), float(p90), float(p99), float(s.mean()), float(s.min()))

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def measure(fn: Callable[[], object], *, warmup: int = 3, min_runs: int = 20, min_seconds: float = 1.0,
            max_runs: int = 100_000) -> LatencyStats:
    """Call ``fn`` ``warmup`` times untimed, then time it until ``min_runs`` and ``min_seconds``."""
    for _ in range(warmup):
        fn()
    samples: list[float] = []
    deadline = time.perf_counter_ns() + int(min_seconds * 1e9)
    while len(samples) < max_runs and (len(samples) < min_runs or time.perf_counter_ns() < deadline):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return LatencyStats.from_samples(samples)
