"""Device profiles: where artifacts run, what each device accepts and how to run it there.

A profile holds what ``edgekit export`` must produce for the device (accepted formats and
precisions, shape rules: static shapes, a fixed batch, the tensor rank limit, the longest
sequence) and how ``edgekit bench`` / ``edgekit check`` run and judge an artifact there (the
runtime with its delegate or OpenVINO device name, threads, memory budget in MB, an
accelerator's on-chip weight memory, a compiler the artifact goes through).

Power figures are nominal, for the energy *estimate* (p50 latency × watts); every profile
must say where its number comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgekit.config.enums import Format, Precision, Runtime, ShapeMode
from edgekit.config.formats import precisions
from edgekit.config.loader import require

COMPILERS = ("edgetpu_compiler",)  # compilers edgekit check knows how to run and read


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
    delegate: str | None = None  # LiteRT delegate: xnnpack, libedgetpu.so.1, gpu (None: LiteRT's default, XNNPACK)
    openvino_device: str | None = None  # OpenVINO device name: CPU, GPU, NPU (None: CPU)
    shapes: ShapeMode = ShapeMode.DYNAMIC  # static: every input shape fixed at export
    batch_size: int | None = None  # a fixed batch the device needs (Edge TPU: 1)
    max_seq_len: int = 512
    max_tensor_rank: int | None = None  # Edge TPU: tensors of at most 3 dimensions
    memory_budget_mb: int | None = None  # RAM one app can use for the model (artifact files count)
    on_chip_memory_mb: float | None = None  # accelerator SRAM caching weights (Edge TPU: 8 MB)
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
        require(self.on_chip_memory_mb is None or self.on_chip_memory_mb > 0, "on_chip_memory_mb", "expected > 0")
        require(self.max_tensor_rank is None or self.max_tensor_rank >= 1, "max_tensor_rank", "expected at least 1")
        require(self.shapes is ShapeMode.DYNAMIC or self.batch_size is not None, "batch_size",
                "expected the fixed batch size of a device with static shapes")
        if self.compiler is not None:
            require(self.compiler in COMPILERS, "compiler",
                    f"expected one of {', '.join(COMPILERS)}, got {self.compiler!r}")

    def accepted(self, fmt: Format) -> Accepts | None:
        """The ``accepts`` entry of ``fmt`` (None: the device does not run that format)."""
        return next((a for a in self.accepts if a.format is fmt), None)

    def accepts_summary(self) -> str:
        """``tflite int8-full/int8-qat; onnx fp32`` for messages."""
        return "; ".join(f"{a.format.value} {'/'.join(p.value for p in a.precisions)}" for a in self.accepts)

    def accepts_target(self, fmt: Format, precision: Precision) -> bool:
        return any(a.format is fmt and precision in a.precisions for a in self.accepts)
