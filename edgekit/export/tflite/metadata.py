"""TFLite model metadata (tflite-support schema 1.x) so on-device text tooling can load the model.

What LiteRT's Task Library (BertNLClassifier / TextEmbedder) and MediaPipe text tasks read:
a ``ModelMetadata`` flatbuffer (file identifier ``M001``) in a model buffer named
``TFLITE_METADATA``, with one input TensorMetadata per model input *in the subgraph's input
order*, named ``ids`` / ``mask`` / ``segment_ids``, a subgraph-level ``BertTokenizerOptions``
process unit pointing at ``vocab.txt``, and, for classifiers, the output tensor's
``labels.txt`` (TENSOR_AXIS_LABELS). The associated files themselves travel inside the
.tflite as a zip archive appended after the flatbuffer (what tflite-support's
MetadataPopulator writes; TFLite ignores the trailing bytes, ``zipfile`` reads them).

Why hand-written: ``tflite-support`` (0.4.4, the last release) has a Python 3.11 wheel but
requires protobuf < 4, while TensorFlow 2.21 needs protobuf >= 6.31, so it cannot share the
environment. The writer below uses the ``flatbuffers`` runtime directly with the field slots
of ``metadata_schema.fbs`` (schema 1.5.0; only features of 1.1.0 and earlier are used, hence
``min_parser_version`` 1.1.0), and ``read_metadata`` parses it back the same way.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

METADATA_NAME = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.1.0"
ROLES = {"input_ids": "ids", "attention_mask": "mask", "token_type_ids": "segment_ids"}
_DESCRIPTIONS = {
    "ids": "Tokenized ids of the input text (WordPiece, [CLS] ... [SEP]).",
    "mask": "Mask with 1 for real tokens and 0 for padding tokens.",
    "segment_ids": "0 for the first sequence, 1 for the second sequence if exists.",
}
# metadata_schema.fbs enums
VOCABULARY, TENSOR_AXIS_LABELS = 5, 2
FEATURE_PROPERTIES, BERT_TOKENIZER_OPTIONS = 1, 4


@dataclass
class ModelInfo:
    """What the metadata says; also what ``read_metadata`` returns."""

    name: str
    description: str
    version: str
    inputs: list[tuple[str, str]]  # (metadata name, description) in subgraph input order
    output: tuple[str, str]
    vocab_file: str = "vocab.txt"
    label_file: str | None = None  # classifiers only
    author: str = "edgekit"
    min_parser_version: str = MIN_PARSER_VERSION
    files: dict[str, bytes] = field(default_factory=dict)  # associated files read back


class _Writer:
    def __init__(self):
        import flatbuffers

        self.b = flatbuffers.Builder(1024)

    def string(self, text: str | None):
        return None if text is None else self.b.CreateString(text)

    def vector(self, offsets: list[int]) -> int:
        self.b.StartVector(4, len(offsets), 4)
        for off in reversed(offsets):
            self.b.PrependUOffsetTRelative(off)
        return self.b.EndVector()

    def table(self, slots: int, fields: list[tuple[int, str, int | None]]) -> int:
        self.b.StartObject(slots)
        for slot, kind, value in fields:
            if value is None:
                continue
            if kind == "off":
                self.b.PrependUOffsetTRelativeSlot(slot, value, 0)
            elif kind == "u8":
                self.b.PrependUint8Slot(slot, value, 0)
            else:  # "i8"
                self.b.PrependInt8Slot(slot, value, 0)
        return self.b.EndObject()

    def associated_file(self, name: str, description: str, kind: int) -> int:
        n, d = self.string(name), self.string(description)
        return self.table(5, [(0, "off", n), (1, "off", d), (2, "i8", kind)])

    def tensor(self, name: str, description: str, files: list[int] | None = None) -> int:
        n, d = self.string(name), self.string(description)
        props = self.table(0, [])  # FeatureProperties: no fields
        content = self.table(3, [(0, "u8", FEATURE_PROPERTIES), (1, "off", props)])
        af = self.vector(files) if files else None
        return self.table(7, [(0, "off", n), (1, "off", d), (3, "off", content), (6, "off", af)])


def build_metadata(info: ModelInfo) -> bytes:
    """The ModelMetadata flatbuffer for ``info``."""
    w = _Writer()
    vocab = w.associated_file(info.vocab_file, "WordPiece vocabulary of the tokenizer.", VOCABULARY)
    tokenizer = w.table(1, [(0, "off", w.vector([vocab]))])
    unit = w.table(2, [(0, "u8", BERT_TOKENIZER_OPTIONS), (1, "off", tokenizer)])
    inputs = [w.tensor(name, desc) for name, desc in info.inputs]
    labels = None
    if info.label_file:
        labels = [w.associated_file(info.label_file, "Labels of the output scores, one per line.",
                                    TENSOR_AXIS_LABELS)]
    output = w.tensor(info.output[0], info.output[1], labels)
    name = w.string("main")
    subgraph = w.table(10, [(0, "off", name), (2, "off", w.vector(inputs)), (3, "off", w.vector([output])),
                            (5, "off", w.vector([unit]))])
    fields = [w.string(s) for s in (info.name, info.description, info.version, info.author)]
    min_version = w.string(info.min_parser_version)
    root = w.table(8, [(0, "off", fields[0]), (1, "off", fields[1]), (2, "off", fields[2]),
                       (3, "off", w.vector([subgraph])), (4, "off", fields[3]), (7, "off", min_version)])
    w.b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(w.b.Output())


def input_order(model: bytes) -> list[str]:
    """Signature input names in the subgraph's input order."""
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    index_to_name = {}
    for s in range(m.SignatureDefsLength()):
        sig = m.SignatureDefs(s)
        for i in range(sig.InputsLength()):
            index_to_name[sig.Inputs(i).TensorIndex()] = sig.Inputs(i).Name().decode()
    return [index_to_name.get(g.Inputs(i), g.Tensors(g.Inputs(i)).Name().decode()) for i in range(g.InputsLength())]


def model_info(pretrained, model: bytes, output: str, artifact: str) -> ModelInfo:
    config = pretrained.config
    inputs = [(ROLES.get(n, n), _DESCRIPTIONS.get(ROLES.get(n, n), n)) for n in input_order(model)]
    if config.num_labels:
        out = ("logits", "Unnormalised scores per label (softmax gives probabilities), in labels.txt order.")
        kind = f"text classifier ({', '.join(config.id2label)})"
    else:
        norm = "L2-normalised " if config.normalize else ""
        out = ("embedding", f"{norm}{config.pooling}-pooled sentence embedding, {config.hidden_size} values.")
        kind = "text embedder"
    return ModelInfo(name=Path(str(pretrained.source)).name or "model", version=artifact,
                     description=f"BERT-class {kind} exported by edgekit ({artifact}).",
                     inputs=inputs, output=out, label_file="labels.txt" if config.num_labels else None)


def vocab_text(tokenizer) -> str:
    """vocab.txt of the tokenizer (the folder's own file, else tokenizer.json's WordPiece vocab)."""
    folder = Path(tokenizer.folder)
    if (folder / "vocab.txt").is_file():
        return (folder / "vocab.txt").read_text(encoding="utf-8")
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    return "".join(token + "\n" for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]))


def attach(model: bytes, info: ModelInfo, files: dict[str, bytes]) -> bytes:
    """The model with the metadata buffer added (associated files are appended by ``write``)."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(model)
    buffer = fb.BufferT()
    buffer.data = list(build_metadata(info))
    obj.buffers.append(buffer)
    entry = fb.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(obj.buffers) - 1
    obj.metadata = [m for m in (obj.metadata or []) if m.name != METADATA_NAME.encode()] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def write(path: Path, model: bytes, pretrained, output: str, artifact: str) -> ModelInfo:
    """Write ``model`` to ``path`` with metadata and its associated files (vocab, labels)."""
    info = model_info(pretrained, model, output, artifact)
    files = {info.vocab_file: vocab_text(pretrained.tokenizer).encode("utf-8")}
    if info.label_file:
        files[info.label_file] = "".join(f"{name}\n" for name in pretrained.config.id2label).encode("utf-8")
    data = attach(model, info, files)
    path.write_bytes(data)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    info.files = files
    return info


# ---------------------------------------------------------------------------- reading back


def _table_field(tab, slot: int):
    return tab.Offset(4 + 2 * slot)


def _string(tab, slot):
    o = _table_field(tab, slot)
    return tab.String(o + tab.Pos).decode() if o else None


def _tables(tab, slot):
    from flatbuffers.table import Table

    o = _table_field(tab, slot)
    if not o:
        return []
    start, count = tab.Vector(o), tab.VectorLen(o)
    return [Table(tab.Bytes, tab.Indirect(start + 4 * i)) for i in range(count)]


def _sub_table(tab, slot):
    from flatbuffers.table import Table

    o = _table_field(tab, slot)
    return Table(tab.Bytes, tab.Indirect(o + tab.Pos)) if o else None


def _u8(tab, slot):
    import flatbuffers

    o = _table_field(tab, slot)
    return tab.Get(flatbuffers.number_types.Uint8Flags, o + tab.Pos) if o else 0


def read_metadata(path: str | Path) -> ModelInfo | None:
    """The metadata and associated files of a .tflite written by ``write`` (None if it has none)."""
    from flatbuffers.table import Table

    from ai_edge_litert import schema_py_generated as fb

    data = Path(path).read_bytes()
    m = fb.Model.GetRootAs(data, 0)
    blob = None
    for i in range(m.MetadataLength()):
        if m.Metadata(i).Name().decode() == METADATA_NAME:
            blob = m.Buffers(m.Metadata(i).Buffer()).DataAsNumpy().tobytes()
    if blob is None:
        return None
    if blob[4:8] != FILE_IDENTIFIER:
        raise ValueError(f"{path}: metadata buffer lacks the {FILE_IDENTIFIER!r} identifier")
    root = Table(blob, int.from_bytes(blob[:4], "little"))
    [subgraph] = _tables(root, 3)
    inputs = [(_string(t, 0), _string(t, 1)) for t in _tables(subgraph, 2)]
    [out] = _tables(subgraph, 3)
    labels = [_string(f, 0) for f in _tables(out, 6) if _u8(f, 2) == TENSOR_AXIS_LABELS]
    vocab = None
    for unit in _tables(subgraph, 5):
        if _u8(unit, 0) == BERT_TOKENIZER_OPTIONS:
            options = _sub_table(unit, 1)
            vocab = [_string(f, 0) for f in _tables(options, 0)][0]
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return ModelInfo(name=_string(root, 0), description=_string(root, 1), version=_string(root, 2),
                     inputs=inputs, output=(_string(out, 0), _string(out, 1)), vocab_file=vocab,
                     label_file=labels[0] if labels else None, author=_string(root, 4),
                     min_parser_version=_string(root, 7), files=files)
