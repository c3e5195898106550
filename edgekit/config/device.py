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

import dataclasses
from dataclasses import dataclass

from edgekit.config.enums import Format, Precision, Runtime, ShapeMode
from edgekit.config.formats import precisions
from edgekit.config.loader import check_ranges, ranged, require
from edgekit.config.recipe import MAX_TOKENS

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

    watts: float = ranged(dataclasses.MISSING, 0, 1000, low_open=True, high_open=True)
    source: str

    def __post_init__(self):
        check_ranges(self)
        require(bool(self.source.strip()), "source", "expected a citation for the power figure")


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str
    arch: str  # x86_64 | arm64
    accepts: tuple[Accepts, ...]
    threads: int = ranged(dataclasses.MISSING, 1, 1024)
    power: Power
    delegate: str | None = None  # LiteRT delegate: xnnpack, libedgetpu.so.1, gpu (None: LiteRT's default, XNNPACK)
    openvino_device: str | None = None  # OpenVINO device name: CPU, GPU, NPU (None: CPU)
    shapes: ShapeMode = ShapeMode.DYNAMIC  # static: every input shape fixed at export
    batch_size: int | None = ranged(None, 1, 1024)  # a fixed batch the device needs (Edge TPU: 1)
    max_seq_len: int = ranged(512, 2, MAX_TOKENS)
    max_tensor_rank: int | None = ranged(None, 1, 8)  # Edge TPU: tensors of at most 3 dimensions
    memory_budget_mb: int | None = ranged(None, 1)  # RAM one app can use for the model (artifact files count)
    # accelerator SRAM caching weights (Edge TPU: 8 MB)
    on_chip_memory_mb: float | None = ranged(None, 0, low_open=True)
    compiler: str | None = None  # a compiler the artifact must go through (edgetpu_compiler)
    notes: str = ""

    def __post_init__(self):
        check_ranges(self)
        require(self.arch in ("x86_64", "arm64"), "arch", f"expected 'x86_64' or 'arm64', got {self.arch!r}")
        require(len(self.accepts) > 0, "accepts", "expected at least one {format, precisions} entry")
        formats = [a.format for a in self.accepts]
        require(len(set(formats)) == len(formats), "accepts", "expected each format at most once")
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
