"""The latency sampler: warm-up calls are not counted, both stopping rules hold, percentiles are right."""

import time

from edgekit.bench import LatencyStats, measure


def test_measure_respects_min_runs_and_min_seconds():
    calls = []
    stats = measure(lambda: calls.append(time.sleep(0.002)), warmup=2, min_runs=5, min_seconds=0.05)
    assert len(calls) == stats.runs + 2
    assert stats.runs >= 5 and stats.runs * stats.mean_ms >= 45  # timed calls fill min_seconds (less loop overhead)
    assert 1.9 <= stats.min_ms <= stats.p50_ms <= stats.p90_ms <= stats.p99_ms


def test_percentiles_from_samples():
    stats = LatencyStats.from_samples(list(range(1, 101)))
    assert (stats.runs, stats.min_ms, stats.p50_ms, stats.mean_ms) == (100, 1.0, 50.5, 50.5)
    assert round(stats.p90_ms, 2) == 90.1 and stats.to_json()["p99_ms"] == 99.01
