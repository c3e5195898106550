"""What an artifact file is: format, precision, input shapes, size on disk.

Format comes from the suffix (.tflite, .onnx, OpenVINO's .xml). Precision comes from the
``edgekit.json`` manifest next to the file when it lists the file (the exporter knows int8-qat
from int8-full); otherwise it is read from the graph: TFLite integer-only -> int8-full,
float16 weights -> fp16, int8 weights with float activations -> int8-dynamic; ONNX
QuantizeLinear -> int8-static, MatMulInteger / DynamicQuantizeLinear -> int8-dynamic;
OpenVINO FakeQuantize -> int8-static, u8 / i8 weights decompressed in the graph -> int8-weights
(checked before f16, since the compressed weights' scales are f16), f16 constants -> fp16;
anything else fp32.
An artifact the manifest lists has its files checked against the manifest's digests before
anything reads them (``verify``), so a verdict never describes a file changed after export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.config.enums import Format, Precision
from edgekit.errors import ModelLoadError
from edgekit.ondevice.bench import error_line, read_openvino
from edgekit.report.manifest import MANIFEST, read_manifest, verify as verify_files

SUFFIXES = {".tflite": Format.TFLITE, ".onnx": Format.ONNX, ".xml": Format.OPENVINO}


@dataclass(frozen=True)
class ArtifactInfo:
    path: Path
    format: Format
    precision: Precision
    precision_source: str  # "manifest" | "graph"
    files: tuple[Path, ...]  # the main file first (OpenVINO: .xml then .bin)
    input_shapes: dict[str, tuple[int | None, ...]]  # None: a dynamic size
    verified: bool | None = None  # against edgekit.json: True matched, False skipped, None not listed there

    @property
    def bytes(self) -> int:
        return sum(p.stat().st_size for p in self.files if p.is_file())

    @property
    def static(self) -> bool:
        return all(d is not None for shape in self.input_shapes.values() for d in shape)


def _manifest_row(path: Path, verify: bool) -> dict | None:
    """``path``'s row in the edgekit.json beside it (None: no manifest, or not listed there), its
    files verified first unless not ``verify``; a manifest that is not one is an error."""
    if not (path.parent / MANIFEST).exists():
        return None
    manifest = read_manifest(path.parent)
    row = next((r for r in manifest["artifacts"] if r["path"] == path.name), None)
    if row is not None and verify:
        verify_files(path.parent, manifest, row["files"])
    return row


def _tflite(path: Path) -> tuple[Precision, dict]:
    from edgekit.check.tflite_graph import read_graph
    from edgekit.export.tflite.inspect import op_listing

    listing = op_listing(path)
    if listing["integer_only"]:
        precision = Precision.INT8_FULL
    elif listing["weight_dtypes"].get("float16"):
        precision = Precision.FP16
    elif listing["weight_dtypes"].get("int8"):
        precision = Precision.INT8_DYNAMIC
    else:
        precision = Precision.FP32
    graph = read_graph(path)
    shapes = {t.name.removeprefix("serving_default_").split(":")[0]: tuple(None if t.dynamic else d for d in t.shape)
              for t in graph.inputs}
    return precision, shapes


def _onnx(path: Path) -> tuple[Precision, dict]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    ops = {n.op_type for n in model.graph.node}
    if "QuantizeLinear" in ops:
        precision = Precision.INT8_STATIC
    elif ops & {"MatMulInteger", "DynamicQuantizeLinear"}:
        precision = Precision.INT8_DYNAMIC
    else:
        precision = Precision.FP32
    shapes = {i.name: tuple(d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim)
              for i in model.graph.input}
    return precision, shapes


def _compressed_weights(model) -> bool:
    """NNCF weight compression's mark: a u8 / i8 Constant -> Convert -> Subtract (zero point) or
    Multiply (scale), the float weight rebuilt in the graph (other integer constants, e.g. a mask
    fill value, feed no such chain)."""
    import openvino as ov

    for op in model.get_ops():
        if op.get_type_name() != "Constant" or op.get_output_element_type(0) not in (ov.Type.u8, ov.Type.i8):
            continue
        for convert in (t.get_node() for t in op.output(0).get_target_inputs()):
            if convert.get_type_name() == "Convert" and any(
                    t.get_node().get_type_name() in ("Subtract", "Multiply") for t in convert.output(0).get_target_inputs()):
                return True
    return False


def _openvino(path: Path) -> tuple[Precision, dict]:
    import openvino as ov

    model = read_openvino(ov.Core(), path)
    types = {op.get_type_name() for op in model.get_ops()}
    f16 = any(op.get_type_name() == "Constant" and op.get_output_element_type(0) == ov.Type.f16
              for op in model.get_ops())
    if "FakeQuantize" in types:
        precision = Precision.INT8_STATIC
    elif _compressed_weights(model):
        precision = Precision.INT8_WEIGHTS
    else:
        precision = Precision.FP16 if f16 else Precision.FP32
    shapes = {}
    for port in model.inputs:
        shape = port.get_partial_shape()
        shapes[port.get_any_name()] = tuple(d.get_length() if d.is_static else None for d in shape)
    return precision, shapes


def identify(path: str | Path, verify: bool = True) -> ArtifactInfo:
    """Read an artifact file; ``ModelLoadError`` when it is not one edgekit can check, or when
    (``verify``) its files differ from the edgekit.json that lists it."""
    path = Path(path)
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise ModelLoadError(f"{path}: expected an artifact file ({', '.join(SUFFIXES)}) or a recipe (.yaml)")
    if not path.is_file():
        raise ModelLoadError(f"{path}: no such file")
    row = _manifest_row(path, verify)
    reader = {Format.TFLITE: _tflite, Format.ONNX: _onnx, Format.OPENVINO: _openvino}[fmt]
    try:
        precision, shapes = reader(path)
    except Exception as err:  # a corrupt or foreign file: one line, not a traceback
        reason = error_line(err) or type(err).__name__
        raise ModelLoadError(f"{path}: cannot read it as {fmt.value}: {reason}") from None
    files = (path, path.with_suffix(".bin")) if fmt is Format.OPENVINO else (path,)
    source = "graph"
    if row is not None and row.get("format") == fmt.value:
        try:
            precision, source = Precision(row["precision"]), "manifest"
        except (KeyError, ValueError):
            pass
    return ArtifactInfo(path=path, format=fmt, precision=precision, precision_source=source, files=files,
                        input_shapes=shapes, verified=None if row is None else verify)
