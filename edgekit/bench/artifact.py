"""``edgekit bench``: measure export artifacts in their own runtimes with a device profile's settings.

Loading goes through the export backends (``edgekit.export.<format>.load``, the runners the
export evaluated), except the Edge TPU delegate, which only the on-device script loads. The
inputs, the sampler, load / first-call / RSS figures and the JSON document all come from
``edgekit.ondevice.bench``, the same code a device runs, so host and device results compare.
A device that is not here is an error unless ``on_host``: then the host runs the artifact with
the profile's thread count and every result says ``where: host``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from edgekit.bench.presence import absent_reason
from edgekit.config import Format, Precision, load_device
from edgekit.config.device import DeviceProfile
from edgekit.errors import EdgekitError, ModelLoadError
from edgekit.ondevice import bench as ondevice
from edgekit.report.manifest import write_reports

BACKENDS = {"tflite": "edgekit.export.tflite", "onnx": "edgekit.export.onnx", "openvino": "edgekit.export.openvino"}
BUNDLED_TEXTS = Path(__file__).resolve().parents[2] / "recipes" / "data" / "english-eval.tsv"


class DeviceNotPresent(EdgekitError):
    """The profile's device is not this machine (or not attached) and --on-host was not given."""


@dataclass(frozen=True)
class BenchSettings:
    profile: DeviceProfile
    where: str  # "device": measured on the profile's device; "host": on this host in its place
    threads: int
    seq_len: int | str  # tokens per input, or "natural"
    min_runs: int = 50
    min_seconds: float = 2.0

    @property
    def accelerator(self) -> str | None:
        """The delegate or OpenVINO device used beyond the CPU (None on the host)."""
        if self.where == "host":
            return None
        if self.profile.delegate not in (None, "xnnpack"):
            return self.profile.delegate
        return self.profile.openvino_device if self.profile.openvino_device not in (None, "CPU") else None

    @property
    def power(self) -> tuple[float, str]:
        return self.profile.power.watts, self.profile.power.source.strip()


def settings(device: str, *, on_host: bool = False, threads: int | None = None, seq_len: int | str = "natural",
             min_runs: int = 50, min_seconds: float = 2.0) -> BenchSettings:
    """The run's settings; raises ``DeviceNotPresent`` when the device is absent and not ``on_host``."""
    profile = load_device(device)
    reason = absent_reason(profile)
    if reason is not None and not on_host:
        raise DeviceNotPresent(f"device {profile.name} is not present: {reason}. Run `edgekit bench-script "
                               f"--out bench.py` and that script on the device, or pass --on-host to measure "
                               f"on this host (figures labelled host)")
    return BenchSettings(profile, "host" if on_host else "device", threads or profile.threads, seq_len,
                         min_runs, min_seconds)


def _loader(path: Path, fmt: str, s: BenchSettings):
    ondevice.import_runtime(path)  # outside the timed load, as on the device
    if s.accelerator == "libedgetpu.so.1":
        return lambda: ondevice.load_artifact(path, s.threads, delegate="edgetpu")
    backend = importlib.import_module(BACKENDS[fmt])
    if fmt == "openvino":
        return lambda: backend.load(path, s.threads, s.accelerator or "CPU")
    return lambda: backend.load(path, s.threads)


def _inputs(folder: Path, manifest: dict, seq_len):
    tokenizer = ondevice.load_tokenizer(folder)
    texts = ondevice.natural_texts(manifest, folder, None, (BUNDLED_TEXTS,))
    return ondevice.make_inputs(folder, manifest, seq_len, texts, tokenizer)


def _measure(folder: Path, entry: dict, s: BenchSettings, samples, inputs) -> dict:
    """One manifest row -> its result document (ok, skipped with the reason, or failed)."""
    common = dict(where=s.where, profile=s.profile.name, threads=s.threads, accelerator=s.accelerator)
    if entry.get("status") != "ok":
        return ondevice.result_document(entry, status="skipped", error="export failed", **common)
    fmt, precision = Format(entry["format"]), Precision(entry["precision"])
    if not s.profile.accepts_target(fmt, precision):
        runs = "; ".join(f"{a.format.value} {'/'.join(p.value for p in a.precisions)}" for a in s.profile.accepts)
        return ondevice.result_document(entry, status="skipped", error=f"{s.profile.name} does not run "
                                        f"{fmt.value} {precision.value} (it runs {runs})", **common)
    try:
        path = ondevice.artifact_file(folder, entry, s.accelerator == "libedgetpu.so.1")
        _, measured = ondevice.benchmark(_loader(path, fmt.value, s), samples,
                                         min_runs=s.min_runs, min_seconds=s.min_seconds)
    except Exception as err:  # a failing artifact is reported; the folder's others still run
        lines = str(err).strip().splitlines()
        return ondevice.result_document(entry, status="failed", error=f"{type(err).__name__}: "
                                        f"{lines[0] if lines else ''}"[:300], **common)
    return ondevice.result_document(entry, status="ok", measured=measured, inputs=inputs, power=s.power, **common)


def _manifest(folder: Path) -> dict:
    try:
        return ondevice.read_manifest(folder)
    except ondevice.BenchError as err:
        raise ModelLoadError(str(err)) from None


def bench_artifact(path: str | Path, s: BenchSettings) -> dict:
    """Benchmark one artifact of an export folder; returns its result document (status ok)."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such artifact file")
    manifest = _manifest(path.parent)
    try:
        entry = ondevice.artifact_entry(manifest, path)
        samples, inputs = _inputs(path.parent, manifest, s.seq_len)
    except ondevice.BenchError as err:
        raise EdgekitError(str(err)) from None
    doc = _measure(path.parent, entry, s, samples, inputs)
    if doc["status"] != "ok":
        raise EdgekitError(f"{path.name}: {doc['error']}")
    return doc


def bench_folder(folder: str | Path, s: BenchSettings) -> dict:
    """Benchmark every artifact in an export folder's manifest and update its ``latency_ms``."""
    folder = Path(folder)
    manifest = _manifest(folder)
    if not manifest.get("artifacts"):
        raise ModelLoadError(f"{folder / ondevice.MANIFEST}: lists no artifacts")
    try:
        samples, inputs = _inputs(folder, manifest, s.seq_len)
    except ondevice.BenchError as err:
        raise EdgekitError(str(err)) from None
    results = [_measure(folder, entry, s, samples, inputs) for entry in manifest["artifacts"]]
    update_manifest_latency(folder, results)
    return {"edgekit_bench_folder": ondevice.SCHEMA_VERSION, "folder": str(folder), "results": results}


def update_manifest_latency(folder: Path, results: list[dict]) -> None:
    """Replace each measured artifact's ``latency_ms`` in ``edgekit.json`` and rewrite the reports
    (report.md / .json / .png) from it, each file by atomic rename.

    Keeps the export's keys (``p50``, ``p90``, ``runs``) and says how the figure was taken."""
    manifest = _manifest(folder)
    by_path = {r["artifact"]: r for r in results if r["status"] == "ok"}
    for entry in manifest["artifacts"]:
        r = by_path.get(entry["path"])
        if r is None:
            continue
        lat = r["latency_ms"]
        entry["latency_ms"] = {
            "p50": lat["p50_ms"], "p90": lat["p90_ms"], "p99": lat["p99_ms"], "mean": lat["mean_ms"],
            "runs": lat["runs"], "seq_len": r["inputs"]["seq_len"] or "natural",
            "tokens_mean": r["inputs"]["tokens_mean"], "threads": r["threads"], "device": r["profile"],
            "where": r["where"], "runtime": r["runtime"], "measured_by": "edgekit bench", "utc": r["started_utc"]}
    write_reports(folder, manifest)


def default_json(target: Path, s: BenchSettings) -> Path:
    folder, stem = (target, "all") if target.is_dir() else (target.parent, target.stem)
    return ondevice.default_json_path(folder, stem, s.where, s.profile.name, s.seq_len)
