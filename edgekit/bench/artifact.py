"""``edgekit bench``: measure export artifacts in their own runtimes with a device profile's settings.

Loading goes through the export backends (``edgekit.export.<format>.load``, the runners the
export evaluated; each returns the task's named outputs), except the Edge TPU delegate, which
only the on-device script loads. The inputs (the task's: texts, or question/context pairs), the
sampler, load / first-call / RSS figures, the check of the outputs against the manifest's and
the JSON document all come from ``edgekit.ondevice.bench``, the same code a device runs, so
host and device results compare.
A device that is not here is an error unless ``on_host``: then the host runs the artifact with
the profile's thread count and every result says ``where: host``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from edgekit.bench.presence import absent_reason
from edgekit.bundled import bundled
from edgekit.config import Format, Precision, load_device
from edgekit.config.device import DeviceProfile
from edgekit.errors import EdgekitError, ModelLoadError
from edgekit.ondevice import bench as ondevice
from edgekit.report.manifest import read_manifest, report_problems, write_reports

BACKENDS = {"tflite": "edgekit.export.tflite", "onnx": "edgekit.export.onnx", "openvino": "edgekit.export.openvino"}
BUNDLED_TEXTS = bundled("recipes", "data", "english-eval.tsv")


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
    verify: bool = True  # check the files against edgekit.json's digests before loading them

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
             min_runs: int = 50, min_seconds: float = 2.0, verify: bool = True) -> BenchSettings:
    """The run's settings; raises ``DeviceNotPresent`` when the device is absent and not ``on_host``."""
    profile = load_device(device)
    reason = absent_reason(profile)
    if reason is not None and not on_host:
        raise DeviceNotPresent(f"device {profile.name} is not present: {reason}. Run `edgekit bench-script "
                               f"--out bench.py` and that script on the device, or pass --on-host to measure "
                               f"on this host (figures labelled host)")
    return BenchSettings(profile, "host" if on_host else "device", threads or profile.threads, seq_len,
                         min_runs, min_seconds, verify)


def _loader(path: Path, fmt: str, outputs: list, s: BenchSettings):
    """A call that loads ``path`` in its runtime, returning the manifest's ``outputs`` by name."""
    ondevice.import_runtime(path)  # outside the timed load, as on the device
    if s.accelerator == "libedgetpu.so.1":
        return lambda: ondevice.load_artifact(path, outputs, s.threads, delegate="edgetpu")
    backend = importlib.import_module(BACKENDS[fmt])
    if fmt == "openvino":
        return lambda: backend.load(path, s.threads, s.accelerator or "CPU")
    return lambda: backend.load(path, s.threads)


def _inputs(folder: Path, manifest: dict, runs: list, s: BenchSettings):
    """(samples, inputs) of the runs, after checking what they load against the manifest's
    digests (unless ``s.verify`` is off): the tokenizer files, labels.txt, each artifact's files."""
    try:
        if s.verify:
            ondevice.verify_files(folder, manifest, ondevice.loaded_files(folder, manifest, runs))
        tokenizer = ondevice.load_tokenizer(folder)
        texts = ondevice.natural_texts(manifest, folder, None, (BUNDLED_TEXTS,))
        return ondevice.make_inputs(folder, manifest, s.seq_len, texts, tokenizer)
    except ondevice.BenchError as err:
        raise ModelLoadError(str(err)) from None


def _measure(manifest: dict, entry: dict, path: Path, s: BenchSettings, samples, inputs) -> dict:
    """One manifest row and the file to run -> its result document (ok, skipped with the reason, or failed)."""
    common = dict(task=manifest["task"], verified=s.verify, where=s.where, profile=s.profile.name,
                  threads=s.threads, accelerator=s.accelerator)
    if entry["status"] != "ok":
        return ondevice.result_document(entry, path, status="skipped", error="export failed", **common)
    fmt, precision = Format(entry["format"]), Precision(entry["precision"])
    if not s.profile.accepts_target(fmt, precision):
        runs = "; ".join(f"{a.format.value} {'/'.join(p.value for p in a.precisions)}" for a in s.profile.accepts)
        return ondevice.result_document(entry, path, status="skipped", error=f"{s.profile.name} does not run "
                                        f"{fmt.value} {precision.value} (it runs {runs})", **common)
    try:
        outputs = manifest["outputs"]
        _, measured = ondevice.benchmark(_loader(path, fmt.value, outputs, s), samples, outputs=outputs,
                                         min_runs=s.min_runs, min_seconds=s.min_seconds, seq_len=inputs["seq_len"])
    except Exception as err:  # a failing artifact is reported; the folder's others still run
        reason = ondevice.error_line(err) if isinstance(err, EdgekitError) else \
            f"{type(err).__name__}: {ondevice.error_line(err)}"
        return ondevice.result_document(entry, path, status="failed", error=reason[:300], **common)
    return ondevice.result_document(entry, path, status="ok", measured=measured, inputs=inputs, power=s.power,
                                    **common)


def bench_artifact(path: str | Path, s: BenchSettings) -> dict:
    """Benchmark one artifact of an export folder; returns its result document (status ok)."""
    path = Path(path)
    try:
        ondevice.check_artifact_name(path)
        manifest = read_manifest(path.parent)  # edgekit's reader: the precisions checked too
        entry = ondevice.artifact_entry(manifest, path)
    except ondevice.BenchError as err:
        raise ModelLoadError(str(err)) from None
    samples, inputs = _inputs(path.parent, manifest, [(entry, path)], s)
    doc = _measure(manifest, entry, path, s, samples, inputs)
    if doc["status"] != "ok":  # one line that names the file
        raise EdgekitError(doc["error"] if path.name in doc["error"] else f"{path.name}: {doc['error']}")
    return doc


def _runs(folder: Path, manifest: dict, s: BenchSettings) -> list:
    """(manifest row, file to run) of every artifact of ``folder``."""
    edgetpu = s.accelerator == "libedgetpu.so.1"
    return [(entry, ondevice.artifact_file(folder, entry, edgetpu)) for entry in manifest["artifacts"]]


def folder_inputs(folder: str | Path, s: BenchSettings) -> tuple:
    """(samples, inputs summary) that ``bench_folder`` feeds every artifact of ``folder``: batch-1
    int32 [1, tokens] arrays by input name; for tables of the inputs beyond the summary's (e.g. a median)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    return _inputs(folder, manifest, _runs(folder, manifest, s), s)


def bench_folder(folder: str | Path, s: BenchSettings) -> dict:
    """Benchmark every artifact in an export folder's manifest and, when the files were verified,
    update its ``latency_ms`` (unverified files may not be the ones the manifest describes)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if not manifest["artifacts"]:
        raise ModelLoadError(f"{folder / ondevice.MANIFEST}: lists no artifacts")
    problems = report_problems(manifest) if s.verify else []
    if problems:  # found before measuring, not when the reports are rewritten after it
        raise ModelLoadError(f"{folder / ondevice.MANIFEST}: {problems[0]} (the reports are rewritten from it; "
                             "re-export, or pass --no-verify to leave them)")
    runs = _runs(folder, manifest, s)
    samples, inputs = _inputs(folder, manifest, runs, s)
    results = [_measure(manifest, entry, path, s, samples, inputs) for entry, path in runs]
    if s.verify:
        update_manifest_latency(folder, results)
    return {"edgekit_bench_folder": ondevice.SCHEMA_VERSION, "folder": str(folder), "results": results}


def update_manifest_latency(folder: Path, results: list[dict]) -> None:
    """Replace each measured artifact's ``latency_ms`` in ``edgekit.json`` and rewrite the reports
    (report.md / .json / .png) from it, each file by atomic rename.

    Keeps the export's keys (``p50``, ``p90``, ``runs``) and says how the figure was taken."""
    manifest = read_manifest(folder)
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
