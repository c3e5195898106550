"""Repeat a call until both a minimum count and a minimum time are reached; report percentiles.

The one sampler lives in the standalone on-device script (``edgekit.ondevice.bench``), so
that host figures and device figures come from the same code; this module is its name
inside edgekit. Uses ``time.perf_counter_ns``; all figures are milliseconds; warm-up calls
are never counted.
"""

from edgekit.ondevice.bench import LatencyStats, measure

__all__ = ["LatencyStats", "measure"]
