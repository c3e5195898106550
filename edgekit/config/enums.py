"""String enums for recipe and device-profile values.

They subclass ``str`` so YAML text maps onto them directly and they compare equal to
their spelling; the loader lists ``value``s in its error messages.
"""

import enum


class Task(str, enum.Enum):
    TEXT_CLASSIFICATION = "text-classification"
    FEATURE_EXTRACTION = "feature-extraction"
    TOKEN_CLASSIFICATION = "token-classification"
    QUESTION_ANSWERING = "question-answering"


class Format(str, enum.Enum):
    TFLITE = "tflite"
    ONNX = "onnx"
    OPENVINO = "openvino"


class Precision(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8_DYNAMIC = "int8-dynamic"
    INT8_FULL = "int8-full"
    INT8_QAT = "int8-qat"
    INT8_STATIC = "int8-static"
    INT8_WEIGHTS = "int8-weights"  # int8 weights, float activations and compute (OpenVINO weight compression)

    @property
    def is_int8(self) -> bool:
        return self.value.startswith("int8")


class Pooling(str, enum.Enum):
    CLS = "cls"
    MEAN = "mean"
    POOLER = "pooler"


class Distribute(str, enum.Enum):
    NONE = "none"
    MIRRORED = "mirrored"
    MULTI_WORKER = "multi_worker"
    TPU = "tpu"


class Runtime(str, enum.Enum):
    LITERT = "litert"
    TFLITE_RUNTIME = "tflite-runtime"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"


class ShapeMode(str, enum.Enum):
    DYNAMIC = "dynamic"
    STATIC = "static"


class PruneMethod(str, enum.Enum):
    STRUCTURED = "structured"
    MAGNITUDE = "magnitude"


class RecoveryTeacher(str, enum.Enum):
    """Whom a pruned model distils from while it recovers."""

    UNPRUNED = "unpruned"  # the prune stage's input: same layers, layer i learns from layer i
    TEACHER = "teacher"  # the distill stage's teacher, at the student's layers_from_teacher


class LoraTarget(str, enum.Enum):
    """The dense layers of every block a LoRA adapter may sit on (``finetune.lora.targets``)."""

    QUERY = "query"
    KEY = "key"
    VALUE = "value"
    ATTENTION_OUTPUT = "attention-output"
    FFN_IN = "ffn-in"  # the intermediate dense (every stacked FFN of a MobileBERT block)
    FFN_OUT = "ffn-out"


class Calibration(str, enum.Enum):
    """How activation ranges are chosen for static int8 (issue 4 notes: min/max breaks BERT)."""

    MINMAX = "minmax"
    PERCENTILE = "percentile"
    MSE = "mse"


class DataFormat(str, enum.Enum):
    TSV = "tsv"
    CSV = "csv"
    JSONL = "jsonl"
    CONLL = "conll"  # token-classification: `token ... TAG` lines, a blank line between sentences
    SQUAD = "squad"  # question-answering: SQuAD v1.1 JSON
    HF = "hf"


class Gate(str, enum.Enum):
    """What a failed evaluation gate does: fail the command, or only mark the report."""

    ENFORCE = "enforce"
    WARN = "warn"


class VocabularyKeep(str, enum.Enum):
    """Which tokens an export keeps in its word-embedding table (``export.vocabulary.keep``)."""

    ALL = "all"  # the model's whole vocabulary, as it is
    FROM_DATA = "from-data"  # what the task's training data uses, specials and spelling pieces (export.vocabulary)
