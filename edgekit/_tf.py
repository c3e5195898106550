"""Lazy, quiet import of TensorFlow + tf-keras (the only place edgekit imports them)."""

from __future__ import annotations

import os
from types import ModuleType

from edgekit.errors import MissingDependencyError


def tf_modules() -> tuple[ModuleType, ModuleType]:
    """Return ``(tensorflow, tf_keras)``, importing them on first use.

    TF_USE_LEGACY_KERAS is already set by ``edgekit/__init__``; the C++ log level is lowered
    so that a CLI call does not print TensorFlow's start-up banner (a user's own setting wins).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
        import tf_keras
    except ImportError as err:  # pragma: no cover - depends on the install
        raise MissingDependencyError(
            f"TensorFlow with tf-keras is required ({err}); install edgekit as README.md says"
        ) from None
    return tf, tf_keras
