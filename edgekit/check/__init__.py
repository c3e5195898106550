"""Device compatibility checks: will this artifact run on that device, and how much of it on
the accelerator? ``check_artifact`` returns one verdict per rule (see ``rules``); the Edge
TPU partition predictor lives in ``edgetpu``, the .tflite reader in ``tflite_graph``.
Importing this package does not import TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.check.artifact import ArtifactInfo, identify
from edgekit.check.rules import FAIL, Verdict
from edgekit.config import DeviceProfile, Format


@dataclass
class CheckReport:
    info: ArtifactInfo
    profile: DeviceProfile
    verdicts: list[Verdict]
    partition: object = None  # edgetpu.Partition for Edge TPU devices
    compiler_log: object = None  # edgetpu.CompilerLog when edgetpu_compiler ran

    @property
    def ok(self) -> bool:
        return not any(v.status == FAIL for v in self.verdicts)

    def lines(self) -> list[str]:
        i = self.info
        head = (f"check    {i.path.name}: {i.format.value} {i.precision.value}, {i.bytes / 1e6:.1f} MB "
                f"on {self.profile.name} ({self.profile.description})")
        failed = [v.rule for v in self.verdicts if v.status == FAIL]
        tail = (f"verdict  ready for {self.profile.name}" if not failed else
                f"verdict  not ready for {self.profile.name}: {', '.join(dict.fromkeys(failed))} failed")
        return [head, *(v.line() for v in self.verdicts), tail]


def check_artifact(path: str | Path, profile: DeviceProfile, compiler: str | None = None,
                   verify: bool = True) -> CheckReport:
    """Every rule for ``profile`` on the artifact at ``path``. ``compiler``: the
    ``edgetpu_compiler`` executable to run (None: found on PATH for Edge TPU profiles).
    ``verify``: an artifact listed in the edgekit.json beside it must match its digests."""
    from edgekit.check import rules

    info = identify(path, verify)
    graph = None
    if info.format is Format.TFLITE:
        from edgekit.check.tflite_graph import read_graph

        graph = read_graph(info.path)
    if compiler is None and rules.is_edgetpu(profile):
        from edgekit.check.edgetpu import compiler_path

        compiler = compiler_path(profile.compiler)
    verdicts = [rules.integrity_rule(info), rules.format_rule(info, profile), rules.precision_rule(info, profile),
                rules.shapes_rule(info, profile), rules.rank_rule(info, profile, graph)]
    op_verdicts, partition, log = rules.op_rules(info, profile, graph, compiler)
    verdicts += op_verdicts + rules.memory_rule(info, profile)
    return CheckReport(info=info, profile=profile, verdicts=verdicts, partition=partition, compiler_log=log)


__all__ = ["CheckReport", "Verdict", "check_artifact", "identify"]
