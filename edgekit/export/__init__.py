"""Export backends (TFLite, ONNX, OpenVINO IR) and the export of a whole recipe.

Each backend is a subpackage with the same small set of modules; TensorFlow and the
runtimes are imported only inside them.
"""
