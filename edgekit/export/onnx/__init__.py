"""ONNX backend: fused-transformer graphs for onnxruntime at fp32, dynamic int8 and static int8.

``export(job)`` writes ``<folder>/onnx-<precision>.onnx`` (see ``exporter``), ``load(path,
threads)`` runs it in onnxruntime (see ``runner``). Importing this package imports neither
onnx, onnxruntime nor TensorFlow; each function imports what it needs.

Modules: ``graph`` (the ONNX graph from HF-named weights), ``quantize`` (onnxruntime's dynamic
and QDQ static quantization), ``analysis`` (op counts in the file and as onnxruntime runs it),
``runner`` (the onnxruntime session), ``exporter`` (one job end to end).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgekit.export.base import ExportJob, ExportResult, Runner


def export(job: "ExportJob") -> "ExportResult":
    """Write the job's ONNX artifact; details: op counts, fusions, int8 vs float ops."""
    from edgekit.export.onnx.exporter import export as _export

    return _export(job)


def load(path: str | Path, threads: int) -> "Runner":
    """An onnxruntime CPU session for an artifact written by ``export``."""
    from edgekit.export.onnx.runner import load as _load

    return _load(path, threads)


__all__ = ["export", "load"]
