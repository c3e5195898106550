"""Load on the demo app's web API: bounded concurrent POST /api/classify on loopback.

Starts ``python -I demo_app serve EXPORT --port 0`` (the real app, its own process), then
CONCURRENCY client threads send texts in turn until SECONDS have passed or MAX_REQUESTS were
sent, while the server's resident memory (VmRSS of /proc/PID/status) is sampled every
0.5 s. Reports requests/s, p50/p99 latency as the client sees it (ms, perf_counter_ns),
errors (non-200 answers and failed connections: must be 0) and the server's RSS over time
(must stay flat: growth from the first sample after warm-up to the last). Loopback only.

    .venv/bin/python benchmarks/demo_load.py /tmp/demo-sst2 --seconds 60 --concurrency 4 \
        --json benchmarks/results/demo_load.json
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TEXTS = REPO / "demo_app" / "pi" / "texts.txt"
RSS_EVERY_S = 0.5
WARMUP_S = 5.0  # RSS growth is measured from the first sample after this


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def start_server(export: Path, artifact: str | None, threads: int) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, "-I", str(REPO / "demo_app"), "serve", str(export), "--port", "0",
               "--threads", str(threads)] + (["--artifact", artifact] if artifact else [])
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = server.stdout.readline()
    if not line.startswith("serving http://127.0.0.1:"):
        server.kill()
        raise SystemExit(f"demo_load: the server did not start: {line.strip() or 'no output'}")
    print(line.strip())
    return server, int(line.split()[1].rstrip("/").rsplit(":", 1)[1])


def get_info(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/api/info")
    data = conn.getresponse().read()
    conn.close()
    return data


def client(port: int, texts, deadline: float, budget: itertools.count, max_requests: int,
           latencies: list, errors: list) -> None:
    """Send requests until the deadline or the shared request budget runs out."""
    while time.monotonic() < deadline and next(budget) < max_requests:
        body = json.dumps({"text": next(texts)}).encode()
        began = time.perf_counter_ns()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/api/classify", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
            conn.close()
            if response.status != 200 or "label" not in json.loads(data):
                errors.append(f"HTTP {response.status}: {data[:200]!r}")
                continue
        except (OSError, http.client.HTTPException, ValueError) as err:
            errors.append(f"{type(err).__name__}: {err}")
            continue
        latencies.append((time.perf_counter_ns() - began) / 1e6)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="export folder (a text-classification export)")
    parser.add_argument("--artifact", help="artifact key [default: the app's choice]")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=4, help="client threads")
    parser.add_argument("--max-requests", type=int, default=200_000, help="hard cap on requests sent")
    parser.add_argument("--threads", type=int, default=1, help="runtime threads in the server")
    parser.add_argument("--texts", type=Path, default=DEFAULT_TEXTS, help="one text per line")
    parser.add_argument("--max-rss-growth-mb", type=float, default=10.0, help="fail above this RSS growth")
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args(argv)

    texts = [t for t in args.texts.read_text(encoding="utf-8").splitlines() if t.strip()]
    server, port = start_server(args.export, args.artifact, args.threads)
    try:
        info = json.loads(get_info(port))
        latencies: list[float] = []
        errors: list[str] = []
        samples: list[tuple[float, float]] = []
        cycle = itertools.cycle(texts)
        lock = threading.Lock()

        def next_text():
            with lock:
                return next(cycle)

        began = time.monotonic()
        deadline = began + args.seconds
        budget = itertools.count()  # next() on a count is atomic under the GIL
        workers = [threading.Thread(target=client, args=(port, iter(next_text, None), deadline, budget,
                                                         args.max_requests, latencies, errors))
                   for _ in range(args.concurrency)]
        for w in workers:
            w.start()
        while any(w.is_alive() for w in workers):
            value = rss_mb(server.pid)
            if value is not None:
                samples.append((round(time.monotonic() - began, 2), round(value, 1)))
            time.sleep(RSS_EVERY_S)
        elapsed = time.monotonic() - began
    finally:
        server.terminate()
        server.wait(timeout=30)

    lat = np.asarray(latencies)
    after = [rss for t, rss in samples if t >= WARMUP_S] or [rss for _, rss in samples]
    row = {"artifact": info["artifact"], "runtime": info["runtime"], "concurrency": args.concurrency,
           "seconds": round(elapsed, 1), "requests": len(latencies) + len(errors), "errors": len(errors),
           "requests_per_s": round(len(latencies) / elapsed, 1),
           "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
           "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else None,
           "rss_mb_first": after[0], "rss_mb_last": after[-1], "rss_mb_peak": max(r for _, r in samples),
           "rss_growth_mb": round(after[-1] - after[0], 1), "rss_samples": samples}
    print(f"{row['artifact']} ({row['runtime']}), {args.concurrency} clients, {row['seconds']} s on loopback")
    print(f"{'requests':>9} {'errors':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'RSS first':>10} {'RSS last':>9} {'RSS peak':>9}")
    print(f"{row['requests']:>9} {row['errors']:>7} {row['requests_per_s']:>8} {row['p50_ms']:>8} {row['p99_ms']:>8} "
          f"{row['rss_mb_first']:>10} {row['rss_mb_last']:>9} {row['rss_mb_peak']:>9}")
    for message in sorted(set(errors))[:5]:
        print(f"error: {message}")
    if args.json:
        sys.path.insert(0, str(REPO))
        from edgekit.bench.results import write_results

        write_results(args.json, "demo_load", [row], export=str(args.export), texts=str(args.texts))
    flat = row["rss_growth_mb"] <= args.max_rss_growth_mb
    if not flat:
        print(f"RSS grew {row['rss_growth_mb']} MB (> {args.max_rss_growth_mb} MB)")
    return 0 if not errors and flat and len(lat) else 1


if __name__ == "__main__":
    sys.exit(main())
