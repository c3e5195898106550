"""edgekit: ship BERT-class text models to the edge (TFLite, ONNX, OpenVINO IR).

Importing edgekit is cheap: TensorFlow and the runtimes are imported only by the code
that needs them. The public API is re-exported here; see README.md.
"""

import os as _os

# tensorflow-model-optimization 0.8.1 only accepts tf-keras (Keras 2) models. edgekit builds
# every model with tf-keras, and TensorFlow must see this flag before it is first imported,
# so set it here rather than asking users to export it.
_os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"

from edgekit.errors import (  # noqa: E402
    ConfigError,
    EdgekitError,
    MissingDependencyError,
    ModelLoadError,
)

__all__ = [
    "ConfigError",
    "EdgekitError",
    "MissingDependencyError",
    "ModelLoadError",
    "__version__",
]
