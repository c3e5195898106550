"""OpenVINO IR backend: ``export(job)`` and ``load(path, threads)`` (see ``edgekit.export.base``)."""

from __future__ import annotations

from pathlib import Path

from edgekit.export.base import ExportJob, ExportResult


def export(job: ExportJob) -> ExportResult:
    from edgekit.export.openvino.convert import export as run

    return run(job)


def load(path: Path, threads: int, device: str = "CPU"):
    from edgekit.export.openvino.runner import OpenVINORunner

    return OpenVINORunner(Path(path), threads, device)
