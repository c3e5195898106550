"""Is a profile's device really here? ``edgekit bench`` measures on a device only when it is.

Checks, in order: the CPU architecture; the board (``/proc/device-tree/model``) for profiles
that name one; Android's system partition; the Edge TPU runtime library (``libedgetpu.so.1``)
for the Edge TPU delegate; the OpenVINO device (e.g. ``NPU``) in
``openvino.Core().available_devices``. An absent device is reported, never simulated.
"""

from __future__ import annotations

import ctypes
import platform
from pathlib import Path

from edgekit.config.device import DeviceProfile

ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
# profile name -> words one of which the device-tree model string of that board contains
BOARDS = {"rpi4": ("Raspberry Pi 4",), "rpi5": ("Raspberry Pi 5",), "coral-devboard": ("Phanbell", "Coral")}
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


def _board_model() -> str:
    try:
        return DEVICE_TREE_MODEL.read_bytes().decode("utf-8", "replace").strip("\x00 \n")
    except OSError:
        return ""


def absent_reason(profile: DeviceProfile) -> str | None:
    """Why the device of ``profile`` is not this machine or not attached (None: it is here)."""
    host = ARCH.get(platform.machine().lower(), platform.machine())
    if host != profile.arch:
        return f"{profile.name} is an {profile.arch} device and this host is {host}"
    words = BOARDS.get(profile.name)
    if words:
        model = _board_model()
        if not any(w in model for w in words):
            return f"this host is not a {words[0]} board (device-tree model: {model or 'none'})"
    if profile.name.startswith("android") and not Path("/system/build.prop").is_file():
        return "this host is not Android (no /system/build.prop)"
    if profile.delegate == "libedgetpu.so.1":
        try:
            ctypes.CDLL(profile.delegate)
        except OSError:
            return "the Edge TPU runtime libedgetpu.so.1 is not installed (no Coral device can be used)"
    if profile.openvino_device and profile.openvino_device != "CPU":
        import openvino as ov

        available = ov.Core().available_devices
        if profile.openvino_device not in available:
            return (f"OpenVINO device {profile.openvino_device} is not available "
                    f"(openvino.Core().available_devices: {', '.join(available) or 'none'})")
    return None
