"""One place for edgekit's error types.

Every error a user can cause (bad path, bad config, missing optional package) is an
``EdgekitError``: the CLI prints its message as one line and exits non-zero; anything
else is a bug and keeps its traceback (shown with ``--debug``).
"""


class EdgekitError(Exception):
    """Base class for user-facing errors; ``str(err)`` is the one-line message."""


class ConfigError(EdgekitError):
    """A recipe or device profile is invalid: the message names file, key path and expectation."""


class ModelLoadError(EdgekitError):
    """A model folder or artifact cannot be read (missing files, refused format, bad weights)."""


class MissingDependencyError(EdgekitError):
    """An optional backend package is not installed; the message says what to install."""


class DataError(EdgekitError):
    """A data file is unreadable or inconsistent: the message names file and line."""


class OutputError(EdgekitError):
    """An output path would overwrite files edgekit did not write, or cannot be written there."""
