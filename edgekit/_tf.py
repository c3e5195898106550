"""Lazy, quiet import of TensorFlow + tf-keras (the only place edgekit imports them)."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from types import ModuleType

from edgekit.errors import MissingDependencyError

# What TensorFlow's C++ start-up writes to fd 2 on a host without a GPU: absl's "before
# InitializeLog" warning, the oneDNN and CPU-feature notices and the CUDA probe. Most of it comes
# before TensorFlow reads TF_CPP_MIN_LOG_LEVEL, so no log level silences it.
_NOISE = re.compile(
    rb"absl::InitializeLog\(\)|\] oneDNN custom operations are on|cpu_feature_guard\.cc|"
    rb"^To enable the following instructions|cudart_stub\.cc:\d+\] Could not find cuda drivers|"
    rb"\] failed call to cuInit: |"
    rb"Unable to register cu(DNN|FFT|BLAS) factory"
)

_started = False


def tf_modules() -> tuple[ModuleType, ModuleType]:
    """Return ``(tensorflow, tf_keras)``, importing them on first use.

    TF_USE_LEGACY_KERAS is already set by ``edgekit/__init__``. TensorFlow starts (import and
    device probe) with stderr held aside and replayed without its start-up noise; every other
    line, real errors included, still shows. A user who asks for TensorFlow's info or warning
    logs (TF_CPP_MIN_LOG_LEVEL 0 or 1) gets all of it. (Level 2, the default set here, is
    inherited by the processes edgekit starts, so it cannot mean "the user chose it".)
    """
    global _started
    if _started:  # the fast path, also what the losses reach when tf.function traces them
        return sys.modules["tensorflow"], sys.modules["tf_keras"]
    level = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    quiet = not _started and level not in ("0", "1")
    with _without_noise() if quiet else contextlib.nullcontext():
        try:
            import tensorflow as tf
            import tf_keras
        except ImportError as err:  # pragma: no cover - depends on the install
            raise MissingDependencyError(
                f"TensorFlow with tf-keras is required ({err}); install edgekit as README.md says"
            ) from None
        if not _started:
            tf.config.list_physical_devices()  # the CUDA probe runs here, inside the quiet window
    _started = True
    return tf, tf_keras


@contextlib.contextmanager
def _without_noise():
    """Point fd 2 at a temporary file; afterwards write back every line that is not ``_NOISE``."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no usable stderr: nothing to keep clean
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True) if not _NOISE.search(line)]
            if kept:
                os.write(2, b"".join(kept))
