"""Device profiles: where artifacts run, what each device accepts and how to run it there.

Power figures are nominal, for the energy *estimate* (p50 latency × watts); every profile
must say where its number comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.config.enums import Format, Precision, Runtime, ShapeMode
from edgekit.config.formats import precisions
from edgekit.config.loader import require


@dataclass(frozen=True)
class Accepts:
    """One artifact format the device runs, with the precisions it runs well."""

    format: Format
    precisions: tuple[Precision, ...]
    runtime: Runtime | None = None  # None: the format's own runtime (LiteRT, onnxruntime, OpenVINO)

    def __post_init__(self):
        allowed = precisions(self.format)
        for i, p in enumerate(self.precisions):
            require(p in allowed, f"precisions[{i}]",
                    f"expected one of {', '.join(a.value for a in allowed)} for {self.format.value}, got {p.value!r}")
        require(len(self.precisions) > 0, "precisions", "expected at least one precision")


@dataclass(frozen=True)
class Power:
    """Nominal active power of the compute unit, in watts, and where that number comes from."""

    watts: float
    source: str

    def __post_init__(self):
        require(0 < self.watts < 1000, "watts", f"expected 0 < watts < 1000, got {self.watts}")
        require(bool(self.source.strip()), "source", "expected a citation for the power figure")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    arch: str  # x86_64 | arm64
    accepts: tuple[Accepts, ...]
    threads: int
    power: Power
    delegate: str | None = None  # LiteRT delegate: xnnpack, libedgetpu.so.1, gpu
    openvino_device: str | None = None  # OpenVINO device name: CPU, GPU, NPU
    shapes: ShapeMode = ShapeMode.DYNAMIC  # static: every input shape fixed at export
    batch_size: int | None = None  # a fixed batch the device needs (Edge TPU: 1)
    max_seq_len: int = 512
    max_tensor_rank: int | None = None  # Edge TPU: tensors of at most 3 dimensions
    memory_budget_mb: int | None = None
    compiler: str | None = None  # a compiler the artifact must go through (edgetpu_compiler)
    notes: str = ""

    def __post_init__(self):
        require(self.arch in ("x86_64", "arm64"), "arch", f"expected 'x86_64' or 'arm64', got {self.arch!r}")
        require(len(self.accepts) > 0, "accepts", "expected at least one {format, precisions} entry")
        formats = [a.format for a in self.accepts]
        require(len(set(formats)) == len(formats), "accepts", "expected each format at most once")
        require(self.threads >= 1, "threads", f"expected at least 1, got {self.threads}")
        require(self.max_seq_len >= 2, "max_seq_len", f"expected at least 2, got {self.max_seq_len}")
        require(self.batch_size is None or self.batch_size >= 1, "batch_size", "expected at least 1")
        require(self.memory_budget_mb is None or self.memory_budget_mb > 0, "memory_budget_mb", "expected > 0")

    def accepts_target(self, fmt: Format, precision: Precision) -> bool:
        return any(a.format is fmt and precision in a.precisions for a in self.accepts)
