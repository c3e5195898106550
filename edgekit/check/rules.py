"""The rules ``edgekit check ARTIFACT --device NAME`` applies, one verdict line each.

Every profile: format, precision, shapes (static / batch / sequence length), tensor rank,
op support and size against the memory budget. Op support depends on the device: the Edge
TPU's partition is predicted from Coral's rules (``edgetpu``) and compiled when
``edgetpu_compiler`` is on PATH; an OpenVINO NPU compiles the IR on ``NPU`` when that device
is present (else: "not present", never simulated); CPU devices load the artifact in its
runtime on this host.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from edgekit.check.artifact import ArtifactInfo
from edgekit.config import DeviceProfile, Format, ShapeMode
from edgekit.config.formats import find
from edgekit.ondevice.bench import error_line

PASS, FAIL, WARN, INFO, SKIP, ABSENT = "pass", "FAIL", "warn", "info", "n/a", "not present"


@dataclass(frozen=True)
class Verdict:
    rule: str
    status: str
    message: str

    def line(self) -> str:
        return f"{self.status:<11} {self.rule:<13} {self.message}"


def _dims(info: ArtifactInfo) -> str:
    return ", ".join(f"{n} [{', '.join('?' if d is None else str(d) for d in s)}]"
                     for n, s in sorted(info.input_shapes.items()))


def integrity_rule(info: ArtifactInfo) -> Verdict:
    names = ", ".join(f.name for f in info.files)
    if info.verified:
        return Verdict("integrity", PASS, f"{names}: size and sha256 match edgekit.json")
    if info.verified is False:
        return Verdict("integrity", WARN, f"{names}: not checked against edgekit.json (--no-verify)")
    return Verdict("integrity", INFO, "not listed in an edgekit.json beside it: nothing to verify against")


def format_rule(info: ArtifactInfo, profile: DeviceProfile) -> Verdict:
    entry = profile.accepted(info.format)
    if entry is None:
        return Verdict("format", FAIL, f"{profile.name} does not run {info.format.value}; it accepts "
                                       f"{profile.accepts_summary()}")
    row = find(info.format, info.precision)
    runtime = entry.runtime or (row.runtime if row else None)
    runtime = runtime.value if runtime else f"{info.format.value}'s runtime"
    return Verdict("format", PASS, f"{info.format.value} runs on {profile.name} ({runtime})")


def precision_rule(info: ArtifactInfo, profile: DeviceProfile) -> Verdict:
    entry = profile.accepted(info.format)
    label = f"{info.precision.value} (from the {info.precision_source})"
    if entry is None:
        return Verdict("precision", SKIP, f"{label}: the device takes no {info.format.value}")
    if info.precision in entry.precisions:
        return Verdict("precision", PASS, f"{label} is accepted for {info.format.value}")
    return Verdict("precision", FAIL, f"{label} is not accepted; {profile.name} takes {info.format.value} "
                                      f"{'/'.join(p.value for p in entry.precisions)}")


def shapes_rule(info: ArtifactInfo, profile: DeviceProfile) -> Verdict:
    dims = _dims(info)
    shapes = list(info.input_shapes.values())
    batch = shapes[0][0] if shapes and shapes[0] else None
    seq = shapes[0][1] if shapes and len(shapes[0]) > 1 else None
    if seq is not None and seq > profile.max_seq_len:
        return Verdict("shapes", FAIL, f"sequence length {seq} > {profile.name}'s max_seq_len {profile.max_seq_len}")
    if profile.shapes is ShapeMode.DYNAMIC:
        kind = "static" if info.static else "dynamic"
        return Verdict("shapes", PASS, f"{kind} inputs ({dims}); {profile.name} runs dynamic and static shapes")
    if not info.static:
        return Verdict("shapes", FAIL, f"dynamic inputs ({dims}); {profile.name} needs static shapes "
                                       f"(export with shapes: static)")
    if profile.batch_size is not None and batch != profile.batch_size:
        return Verdict("shapes", FAIL, f"batch {batch}; {profile.name} needs batch {profile.batch_size}")
    return Verdict("shapes", PASS, f"static inputs ({dims}), as {profile.name} needs")


def rank_rule(info: ArtifactInfo, profile: DeviceProfile, graph) -> Verdict:
    limit = profile.max_tensor_rank
    if limit is None:
        return Verdict("tensor rank", PASS, f"{profile.name} has no tensor rank limit")
    if graph is None:
        return Verdict("tensor rank", SKIP, f"not read for {info.format.value} artifacts")
    tensors = {t.index: t for op in graph.ops for t in op.inputs + op.outputs if not t.constant}
    bad = [t for t in tensors.values() if len(t.shape) > limit and any(d > 1 for d in t.shape[:-limit])]
    if bad:
        t = bad[0]
        return Verdict("tensor rank", FAIL, f"{len(bad)} tensor(s) with a dimension > 1 outside the {limit} innermost, "
                                            f"e.g. {t.name} {list(t.shape)}")
    top = max((len(t.shape) for t in tensors.values()), default=0)
    return Verdict("tensor rank", PASS, f"every activation has at most {limit} dimensions > 1 (highest rank {top})")


def memory_rule(info: ArtifactInfo, profile: DeviceProfile) -> list[Verdict]:
    mb = info.bytes / 1e6
    out = []
    if profile.memory_budget_mb is None:
        out.append(Verdict("memory", INFO, f"{mb:.1f} MB of files; the profile sets no memory budget"))
    else:
        ok = mb <= profile.memory_budget_mb
        out.append(Verdict("memory", PASS if ok else FAIL,
                           f"{mb:.1f} MB of files {'<=' if ok else '>'} the {profile.memory_budget_mb} MB budget"))
    if profile.on_chip_memory_mb is not None:
        fits = mb <= profile.on_chip_memory_mb
        out.append(Verdict("on-chip", PASS if fits else WARN,
                           f"{mb:.1f} MB {'fits' if fits else 'exceeds'} the {profile.on_chip_memory_mb:g} MB on-chip "
                           f"weight cache" + ("" if fits else "; the rest streams from host memory every inference")))
    return out


def edgetpu_rules(info: ArtifactInfo, graph, compiler: str | None) -> tuple[list[Verdict], object, object]:
    """(verdicts, predicted Partition, CompilerLog or None) for an Edge TPU device."""
    from edgekit.check import edgetpu

    part = edgetpu.predict(graph)
    out = []
    n = part.ops
    if part.first is None:
        out.append(Verdict("op support", PASS, f"all {n} ops map to the Edge TPU (predicted)"))
    else:
        op = part.first
        where = op.outputs[0].name if op.outputs else ""
        after = n - op.index - 1
        out.append(Verdict("op support", FAIL if op.index == 0 else WARN,
                           f"first unmapped op: #{op.index} {op.name} ({where}): {part.reason}; it and the "
                           f"{after} ops after it run on the CPU"))
    out.append(Verdict("tpu share", PASS if part.first is None else WARN,
                       f"{part.mapped_ops}/{n} ops and {part.mac_share:.1%} of {part.total_macs / 1e6:.1f} M MACs "
                       f"would run on the Edge TPU (predicted)"))
    for name, why in part.unsupported.items():
        out.append(Verdict("unmapped op", INFO, f"{name} x{part.cpu_by_type[name]}: {why}"))
    log = None
    if compiler is None:
        out.append(Verdict("compiler", INFO, "edgetpu_compiler is not on PATH: the partition above is predicted "
                                             "from Coral's published rules, not compiled"))
    else:
        try:
            log = edgetpu.run_compiler(info.path, compiler)
        except Exception as err:  # the compiler's own failure is a verdict, not a crash
            out.append(Verdict("compiler", FAIL, error_line(err)))
            return out, part, None
        out.append(Verdict("compiler", PASS if not log.cpu_ops else WARN,
                           f"edgetpu_compiler {log.version}: {log.tpu_ops} ops on the Edge TPU, {log.cpu_ops} on the CPU"))
        differ = edgetpu.disagreements(part, log)
        for line in differ:
            out.append(Verdict("vs compiler", WARN, line))
        if not differ:
            out.append(Verdict("vs compiler", PASS, "the compiler maps the predicted ops, type by type"))
    return out + edgetpu_build_lines(info, graph), part, log


def edgetpu_build_lines(info: ArtifactInfo, graph) -> list[Verdict]:
    """What the best build edgekit makes (embedding lookup outside the model) moves to the TPU,
    predicted on that build, and the ceiling of any split build."""
    from edgekit.check import edgetpu
    from edgekit.check.edgetpu_build import mappable_share, split_embedding
    from edgekit.check.tflite_graph import read_graph

    ceiling = Verdict("ceiling", INFO, f"ops the TPU maps one by one hold {mappable_share(graph):.1%} of the MACs: "
                                       f"the most a model split at every unmapped op could move (not built)")
    try:
        body = read_graph(split_embedding(info.path.read_bytes()).body)
    except ValueError:
        return [ceiling]
    part = edgetpu.predict(body)
    where = (f"first unmapped op #{part.first.index} {part.first.name}" if part.first else "every op maps")
    return [Verdict("edgetpu build", INFO, f"embedding lookup outside the model (--edgetpu-build DIR writes it): "
                                           f"{part.mapped_ops}/{part.ops} ops, {part.mac_share:.1%} of MACs on the "
                                           f"TPU (predicted); {where}"), ceiling]


def npu_rules(info: ArtifactInfo, profile: DeviceProfile) -> list[Verdict]:
    """Compile the IR on the profile's OpenVINO device when it is present."""
    device = profile.openvino_device
    try:
        import openvino as ov
    except ImportError:
        return [Verdict("op support", ABSENT, f"openvino is not installed: cannot compile for {device}")]
    core = ov.Core()
    if device not in core.available_devices:
        return [Verdict("op support", ABSENT, f"{device} is not present on this host (OpenVINO sees "
                                              f"{', '.join(core.available_devices)}); not compiled")]
    try:
        core.compile_model(core.read_model(info.path), device)
    except Exception as err:  # the plugin's refusal is the verdict
        return [Verdict("op support", FAIL, f"compiling on {device} failed: {error_line(err)}")]
    name = core.get_property(device, "FULL_DEVICE_NAME")
    return [Verdict("op support", PASS, f"compiles on {device} ({name})")]


def runtime_rule(info: ArtifactInfo) -> Verdict:
    """CPU devices: the artifact loads (every op has a kernel) in its runtime on this host."""
    from edgekit.export.pipeline import BACKENDS

    try:
        runner = importlib.import_module(BACKENDS[info.format]).load(info.path, 1)
    except Exception as err:  # a missing kernel / plugin error is the verdict
        return Verdict("op support", FAIL, f"does not load: {error_line(err)}")
    return Verdict("op support", PASS, f"every op loads in {runner.runtime} on this host")


def is_edgetpu(profile: DeviceProfile) -> bool:
    return profile.compiler == "edgetpu_compiler"


def op_rules(info: ArtifactInfo, profile: DeviceProfile, graph, compiler: str | None):
    """(verdicts, Partition or None, CompilerLog or None)."""
    if profile.accepted(info.format) is None:
        return [Verdict("op support", SKIP, f"the device takes no {info.format.value}")], None, None
    if is_edgetpu(profile) and info.format is Format.TFLITE:
        return edgetpu_rules(info, graph, compiler)
    if info.format is Format.OPENVINO and profile.openvino_device not in (None, "CPU"):
        return npu_rules(info, profile), None, None
    return [runtime_rule(info)], None, None
