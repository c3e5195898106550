"""The host CPU's vector and matrix extensions: latency tables say which kernels the runtimes could pick.

ONNX Runtime, OpenVINO and XNNPACK choose their int8 / fp32 kernels at run time from these (AVX2,
AVX-512, VNNI dot products, AMX tiles), so the same artifact differs by machine. Read from the
``flags`` line of ``/proc/cpuinfo`` (Linux x86); elsewhere unknown.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.ondevice.bench import cpu_model

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path = CPUINFO) -> dict[str, bool] | None:
    """{flag: present} for each of ``ISA_FLAGS``; None without an x86 ``flags`` line to read."""
    try:
        lines = cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    line = next((x for x in lines if x.split(":", 1)[0].strip() == "flags" and ":" in x), None)
    if line is None:
        return None
    have = set(line.split(":", 1)[1].split())
    return {flag: flag in have for flag in ISA_FLAGS}


def cpu_line(flags: dict[str, bool] | None) -> str:
    """``CPU: <model> — avx2 yes, avx512f yes, avx512_vnni no, …`` (the flags as ``cpu_flags`` gives them)."""
    shown = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in flags.items()) if flags else \
        f"flags unknown (no x86 flags line in {CPUINFO})"
    return f"CPU: {cpu_model()} — {shown}"
