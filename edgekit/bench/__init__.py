"""Latency, memory and energy measurement (shared by `edgekit bench` and benchmarks/)."""

from edgekit.bench.timing import LatencyStats, measure

__all__ = ["LatencyStats", "measure"]
