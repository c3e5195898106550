"""TFLite model metadata (tflite-support schema 1.x) so on-device text tooling can load the model.

What LiteRT's Task Library and MediaPipe text tasks read: a ``ModelMetadata`` flatbuffer
(file identifier ``M001``) in a model buffer named ``TFLITE_METADATA``, with one input
TensorMetadata per model input *in the subgraph's input order*, named ``ids`` / ``mask`` /
``segment_ids``, a subgraph-level ``BertTokenizerOptions`` process unit pointing at
``vocab.txt`` (WordPiece models; a BPE or SentencePiece/Unigram model, which the Task Library's
BERT APIs cannot tokenize, carries its ``tokenizer.json`` as a plain associated file and no
tokenizer unit), and one output TensorMetadata per model output in the subgraph's output order,
named as the signature names it. Per task:

* text classification: ``logits`` with ``labels.txt`` (TENSOR_AXIS_LABELS): Task Library
  ``BertNLClassifier`` (``tflite_support.task.text.BertNLClassifier``), MediaPipe
  ``TextClassifier``;
* feature extraction: ``embedding``: Task Library ``TextEmbedder``, MediaPipe ``TextEmbedder``;
* question answering: ``end_logits``, ``start_logits`` (the converter's output order, which is
  also the Task Library's fallback order): Task Library ``BertQuestionAnswerer``
  (``tflite_support.task.text.BertQuestionAnswerer``, C++ ``tflite::task::text``), which finds
  inputs and outputs by these metadata names, fills [1, 384] inputs and reads float outputs, so
  it loads a static ``seq_len: 384`` export at fp32 / fp16 / int8-dynamic;
* token classification: ``logits`` with ``labels.txt`` (the tags); no Task Library API runs
  NER, an app reads the tags from the labels file (see ``edgekit.ondevice.entities``).

The associated files themselves travel inside the .tflite as a zip archive appended after the
flatbuffer (what tflite-support's MetadataPopulator writes; TFLite ignores the trailing bytes,
``zipfile`` reads them). A second model buffer, ``base.OUTPUTS_KEY``, holds edgekit's outputs
record (which outputs are per token; ``read_outputs_record``).

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

from edgekit.export.base import OUTPUTS_KEY, outputs_record
from edgekit.tasks import Output

METADATA_NAME = "TFLITE_METADATA"
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.1.0"
ROLES = {"input_ids": "ids", "attention_mask": "mask", "token_type_ids": "segment_ids"}
_DESCRIPTIONS = {
    "ids": "Tokenized ids of the input text ({kind}, with the tokenizer's special tokens).",
    "mask": "Mask with 1 for real tokens and 0 for padding tokens.",
    "segment_ids": "0 for the first sequence, 1 for the second sequence if exists.",
}
# metadata_schema.fbs enums
VOCABULARY, TENSOR_AXIS_LABELS = 5, 2
LABELLED = "logits"  # the output labels.txt names the last axis of
FEATURE_PROPERTIES, BERT_TOKENIZER_OPTIONS = 1, 4


@dataclass
class ModelInfo:
    """What the metadata says; also what ``read_metadata`` returns."""

    name: str
    description: str
    version: str
    inputs: list[tuple[str, str]]  # (metadata name, description) in subgraph input order
    outputs: list[tuple[str, str]]  # (metadata name, description) in subgraph output order
    vocab_file: str | None = "vocab.txt"  # WordPiece vocabulary (BertTokenizerOptions); None: other tokenizers
    tokenizer_file: str | None = None  # tokenizer.json, for tokenizers without a metadata process unit
    label_file: str | None = None  # the labels of the ``logits`` output (classifiers, taggers)
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
    units = None
    if info.vocab_file is not None:
        vocab = w.associated_file(info.vocab_file, "WordPiece vocabulary of the tokenizer.", VOCABULARY)
        tokenizer = w.table(1, [(0, "off", w.vector([vocab]))])
        units = w.vector([w.table(2, [(0, "u8", BERT_TOKENIZER_OPTIONS), (1, "off", tokenizer)])])
    files = None
    if info.tokenizer_file is not None:
        files = w.vector([w.associated_file(info.tokenizer_file, "The tokenizer (Hugging Face tokenizers format).",
                                            0)])
    inputs = [w.tensor(name, desc) for name, desc in info.inputs]
    outputs = []
    for name, desc in info.outputs:
        labels = None
        if info.label_file and name == LABELLED:
            labels = [w.associated_file(info.label_file, "Labels of the output scores, one per line.",
                                        TENSOR_AXIS_LABELS)]
        outputs.append(w.tensor(name, desc, labels))
    name = w.string("main")
    subgraph = w.table(10, [(0, "off", name), (2, "off", w.vector(inputs)), (3, "off", w.vector(outputs)),
                            (4, "off", files), (5, "off", units)])
    fields = [w.string(s) for s in (info.name, info.description, info.version, info.author)]
    min_version = w.string(info.min_parser_version)
    root = w.table(8, [(0, "off", fields[0]), (1, "off", fields[1]), (2, "off", fields[2]),
                       (3, "off", w.vector([subgraph])), (4, "off", fields[3]), (7, "off", min_version)])
    w.b.Finish(root, file_identifier=FILE_IDENTIFIER)
    return bytes(w.b.Output())


def _order(model: bytes, kind: str) -> list[str]:
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(model, 0)
    g = m.Subgraphs(0)
    index_to_name = {}
    for s in range(m.SignatureDefsLength()):
        sig = m.SignatureDefs(s)
        entries, count = getattr(sig, kind.capitalize()), getattr(sig, f"{kind.capitalize()}Length")()
        for i in range(count):
            index_to_name[entries(i).TensorIndex()] = entries(i).Name().decode()
    tensors, count = getattr(g, kind.capitalize()), getattr(g, f"{kind.capitalize()}Length")()
    return [index_to_name.get(tensors(i), g.Tensors(tensors(i)).Name().decode()) for i in range(count)]


def input_order(model: bytes) -> list[str]:
    """Signature input names in the subgraph's input order."""
    return _order(model, "inputs")


def output_order(model: bytes) -> list[str]:
    """Signature output names in the subgraph's output order."""
    return _order(model, "outputs")


def _describe(config, output: Output) -> str:
    """The metadata description of one task output."""
    if output.name == "embedding":
        norm = "L2-normalised " if config.normalize else ""
        return f"{norm}{config.pooling}-pooled sentence embedding, {config.hidden_size} values."
    if output.name in ("start_logits", "end_logits"):
        edge = "first" if output.name == "start_logits" else "last"
        return f"Unnormalised score of each token being the answer's {edge} token (softmax over the context tokens)."
    if output.per_token:
        return ("Unnormalised scores per token and tag, in labels.txt order (a word's tag: the argmax at its "
                "first sub-token).")
    return "Unnormalised scores per label (softmax gives probabilities), in labels.txt order."


_KINDS = {"text-classification": "text classifier", "feature-extraction": "text embedder",
          "token-classification": "token classifier", "question-answering": "extractive question answerer"}


def model_info(pretrained, model: bytes, outputs: tuple[Output, ...], artifact: str) -> ModelInfo:
    config = pretrained.config
    kind = pretrained.tokenizer.kind
    inputs = [(ROLES.get(n, n), _DESCRIPTIONS.get(ROLES.get(n, n), n).format(kind=_TOKENIZER_NAMES[kind]))
              for n in input_order(model)]
    by_name = {o.name: o for o in outputs}
    described = [(n, _describe(config, by_name[n])) for n in output_order(model)]
    what = _KINDS[config.task] + (f" ({', '.join(config.id2label)})" if config.num_labels else "")
    wordpiece = kind == "wordpiece"
    return ModelInfo(name=Path(str(pretrained.source)).name or "model", version=artifact,
                     description=f"BERT-class ({config.model_type}) {what} exported by edgekit ({artifact}).",
                     inputs=inputs, outputs=described, label_file="labels.txt" if config.num_labels else None,
                     vocab_file="vocab.txt" if wordpiece else None,
                     tokenizer_file=None if wordpiece else "tokenizer.json")


_TOKENIZER_NAMES = {"wordpiece": "WordPiece", "bpe": "byte-level BPE", "unigram": "SentencePiece Unigram"}


def vocab_text(tokenizer) -> str:
    """vocab.txt of the tokenizer (the folder's own file, else tokenizer.json's WordPiece vocab)."""
    folder = Path(tokenizer.folder)
    if (folder / "vocab.txt").is_file():
        return (folder / "vocab.txt").read_text(encoding="utf-8")
    vocab = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    return "".join(token + "\n" for token, _ in sorted(vocab.items(), key=lambda kv: kv[1]))


def attach(model: bytes, entries: dict[str, bytes]) -> bytes:
    """The model with named metadata buffers added or replaced (``TFLITE_METADATA``, the outputs
    record; associated files are appended by ``write``)."""
    from ai_edge_litert import schema_py_generated as fb
    from ai_edge_litert.tools import flatbuffer_utils

    obj = flatbuffer_utils.convert_bytearray_to_object(model)
    kept = [m for m in (obj.metadata or []) if m.name not in {n.encode() for n in entries}]
    for name, data in entries.items():
        buffer = fb.BufferT()
        buffer.data = list(data)
        obj.buffers.append(buffer)
        entry = fb.MetadataT()
        entry.name = name
        entry.buffer = len(obj.buffers) - 1
        kept.append(entry)
    obj.metadata = kept
    return bytes(flatbuffer_utils.convert_object_to_bytearray(obj))


def write(path: Path, model: bytes, pretrained, outputs: tuple[Output, ...], artifact: str) -> ModelInfo:
    """Write ``model`` to ``path`` with metadata, the outputs record and the associated files
    (vocab, labels)."""
    info = model_info(pretrained, model, outputs, artifact)
    if info.vocab_file is not None:
        files = {info.vocab_file: vocab_text(pretrained.tokenizer).encode("utf-8")}
    else:
        files = {info.tokenizer_file: pretrained.tokenizer.definition().encode("utf-8")}
    if info.label_file:
        files[info.label_file] = "".join(f"{name}\n" for name in pretrained.config.id2label).encode("utf-8")
    data = attach(model, {METADATA_NAME: build_metadata(info), OUTPUTS_KEY: outputs_record(outputs).encode()})
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


def _metadata_buffer(data: bytes, name: str) -> bytes | None:
    """The model buffer of the metadata entry ``name`` (None: no such entry)."""
    from ai_edge_litert import schema_py_generated as fb

    m = fb.Model.GetRootAs(data, 0)
    for i in range(m.MetadataLength()):
        if m.Metadata(i).Name().decode() == name:
            return m.Buffers(m.Metadata(i).Buffer()).DataAsNumpy().tobytes()
    return None


def read_outputs_record(data: bytes) -> str | None:
    """The outputs record (``base.outputs_record``) ``write`` put into the model, or None."""
    blob = _metadata_buffer(data, OUTPUTS_KEY)
    return None if blob is None else blob.decode("utf-8")


def read_metadata(path: str | Path) -> ModelInfo | None:
    """The metadata and associated files of a .tflite written by ``write`` (None if it has none)."""
    from flatbuffers.table import Table

    blob = _metadata_buffer(Path(path).read_bytes(), METADATA_NAME)
    if blob is None:
        return None
    if blob[4:8] != FILE_IDENTIFIER:
        raise ValueError(f"{path}: metadata buffer lacks the {FILE_IDENTIFIER!r} identifier")
    root = Table(blob, int.from_bytes(blob[:4], "little"))
    [subgraph] = _tables(root, 3)
    inputs = [(_string(t, 0), _string(t, 1)) for t in _tables(subgraph, 2)]
    outputs = _tables(subgraph, 3)
    labels = [_string(f, 0) for out in outputs for f in _tables(out, 6) if _u8(f, 2) == TENSOR_AXIS_LABELS]
    vocab = None
    shipped = [_string(f, 0) for f in _tables(subgraph, 4)]
    for unit in _tables(subgraph, 5):
        if _u8(unit, 0) == BERT_TOKENIZER_OPTIONS:
            options = _sub_table(unit, 1)
            vocab = [_string(f, 0) for f in _tables(options, 0)][0]
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    return ModelInfo(name=_string(root, 0), description=_string(root, 1), version=_string(root, 2),
                     inputs=inputs, outputs=[(_string(t, 0), _string(t, 1)) for t in outputs], vocab_file=vocab,
                     tokenizer_file=shipped[0] if shipped else None,
                     label_file=labels[0] if labels else None, author=_string(root, 4),
                     min_parser_version=_string(root, 7), files=files)
