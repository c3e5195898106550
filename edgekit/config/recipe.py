"""The recipe schema: how one checkpoint becomes a set of small, evaluated edge artifacts.

Stages run in the order of the fields below (finetune → distill → prune → quantize →
export) and each is optional; an unknown stage or key is an error, never ignored.
Learning rates are per step, lengths are in tokens, accuracies are fractions in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgekit.config.enums import (
    Calibration,
    DataFormat,
    Distribute,
    Format,
    Gate,
    Pooling,
    Precision,
    PruneMethod,
    RecoveryTeacher,
    ShapeMode,
    Task,
)
from edgekit.config.formats import precisions
from edgekit.config.loader import path_field, require


def _fraction(value: float | None, key: str) -> None:
    require(value is None or 0.0 <= value <= 1.0, key, f"expected a fraction between 0 and 1, got {value}")


def _positive(value: float | None, key: str) -> None:
    require(value is None or value > 0, key, f"expected a number greater than 0, got {value}")


@dataclass(frozen=True)
class ModelSection:
    """The teacher / starting checkpoint: a built-in name (`edgekit models`) or an HF folder."""

    source: str = "minilm-l6"
    max_length: int = 128
    pooling: Pooling | None = None  # None: what the checkpoint says (sentence-transformers config)

    def __post_init__(self):
        require(2 <= self.max_length <= 4096, "max_length", f"expected 2..4096 tokens, got {self.max_length}")


@dataclass(frozen=True)
class DataSection:
    """Labelled text splits: local TSV/CSV/JSONL files, or a Hugging Face dataset (online only)."""

    format: DataFormat = DataFormat.TSV
    train: Path | None = path_field()
    validation: Path | None = path_field()
    test: Path | None = path_field()
    hf_dataset: str | None = None
    hf_config: str | None = None
    text_column: str = "sentence"
    text_pair_column: str | None = None
    label_column: str | None = "label"
    labels: tuple[str, ...] = ()  # label names in output order; raw labels are names or indices
    max_examples: int | None = None  # cap per split (quick runs)

    def __post_init__(self):
        local = any(p is not None for p in (self.train, self.validation, self.test))
        if self.format is DataFormat.HF:
            require(self.hf_dataset is not None, "hf_dataset", "expected a dataset name when format is 'hf'")
            require(not local, "format", "expected local train/validation/test paths only with tsv, csv or jsonl")
        else:
            require(self.hf_dataset is None, "hf_dataset", "expected no hf_dataset unless format is 'hf'")
        require(len(set(self.labels)) == len(self.labels), "labels", f"expected distinct names, got {list(self.labels)}")
        require(self.max_examples is None or self.max_examples > 0, "max_examples", "expected a positive count")


@dataclass(frozen=True)
class TrainSchedule:
    """Optimiser settings shared by the training stages (AdamW, linear warm-up then decay)."""

    epochs: float = 3.0
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    # Keep the word-embedding table fixed: it is half of MiniLM's weights, and not updating
    # it made a MiniLM fine-tuning step 17% faster on 2 cores (345 -> 287 ms, batch 32).
    freeze_word_embeddings: bool = False

    def __post_init__(self):
        _positive(self.epochs, "epochs")
        _positive(self.learning_rate, "learning_rate")
        require(self.batch_size >= 1, "batch_size", f"expected at least 1, got {self.batch_size}")
        _fraction(self.warmup_ratio, "warmup_ratio")


@dataclass(frozen=True)
class FinetuneSection(TrainSchedule):
    """Train a classification head and the encoder on the labelled task."""


@dataclass(frozen=True)
class StudentSection:
    """The smaller encoder: teacher layers to copy (0-based), optionally narrower."""

    layers_from_teacher: tuple[int, ...]
    hidden_size: int | None = None
    num_attention_heads: int | None = None
    intermediate_size: int | None = None

    def __post_init__(self):
        layers = self.layers_from_teacher
        require(len(layers) > 0, "layers_from_teacher", "expected at least one teacher layer index")
        require(all(i >= 0 for i in layers), "layers_from_teacher", f"expected indices >= 0, got {list(layers)}")
        require(list(layers) == sorted(set(layers)), "layers_from_teacher",
                f"expected increasing distinct indices, got {list(layers)}")
        if self.hidden_size is not None and self.num_attention_heads is not None:
            require(self.hidden_size % self.num_attention_heads == 0, "num_attention_heads",
                    f"expected a divisor of hidden_size {self.hidden_size}, got {self.num_attention_heads}")


@dataclass(frozen=True)
class DistillSection(TrainSchedule):
    """Teacher → student: soft targets (temperature) + hard labels + optional layer transfer."""

    student: StudentSection | None = None  # required; None only so the schedule defaults come first
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the soft-target loss; 1 - alpha goes to the hard labels
    hidden_loss_weight: float = 0.0
    attention_loss_weight: float = 0.0
    unlabeled_text: Path | None = path_field()  # feature-extraction: one text per line

    def __post_init__(self):
        super().__post_init__()
        require(self.student is not None, "student", "missing required key (expected a mapping)")
        _check_soft_targets(self)
        require(self.attention_loss_weight >= 0, "attention_loss_weight", "expected a weight >= 0")


def _check_soft_targets(section) -> None:
    _positive(section.temperature, "temperature")
    _fraction(section.alpha, "alpha")
    require(section.hidden_loss_weight >= 0, "hidden_loss_weight", "expected a weight >= 0")


@dataclass(frozen=True)
class RecoveryDistill:
    """Recover a pruned model by distillation (the distil stage's loss): soft targets at
    ``temperature`` + hard labels, and optionally hidden states, from the unpruned model
    (pruning keeps depth and width: layer i learns from layer i) or the distil stage's teacher."""

    teacher: RecoveryTeacher = RecoveryTeacher.UNPRUNED
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the soft-target loss; 1 - alpha goes to the hard labels
    hidden_loss_weight: float = 0.0

    def __post_init__(self):
        _check_soft_targets(self)


@dataclass(frozen=True)
class PruneSection:
    """Structured: drop attention heads / FFN neurons by importance, then recover.
    Magnitude: tfmot unstructured sparsity (only the compressed file shrinks)."""

    method: PruneMethod = PruneMethod.STRUCTURED
    head_sparsity: float = 0.0  # structured: fraction of heads removed per layer
    ffn_sparsity: float = 0.0  # structured: fraction of FFN neurons removed per layer
    target_sparsity: float = 0.0  # magnitude: fraction of weights set to zero
    recovery: TrainSchedule = field(default_factory=lambda: TrainSchedule(epochs=1.0))
    recovery_distill: RecoveryDistill | None = None  # None: recovery trains on the labels only

    def __post_init__(self):
        for key in ("head_sparsity", "ffn_sparsity", "target_sparsity"):
            value = getattr(self, key)
            require(0.0 <= value < 1.0, key, f"expected a fraction in [0, 1), got {value}")
        require(self.recovery_distill is None or self.method is PruneMethod.STRUCTURED, "recovery_distill",
                "expected only with method 'structured' (magnitude pruning recovers on the labels)")


@dataclass(frozen=True)
class QuantizeSection:
    """Settings for the int8 precisions (full, static, QAT); float targets ignore them."""

    calibration: Calibration = Calibration.PERCENTILE
    percentile: float = 99.99
    calibration_samples: int = 256
    per_channel: bool = True
    smoothquant_alpha: float | None = None  # migrate activation outliers into weights
    mask_bias: float | None = None  # additive attention-mask constant (bounded for int8)
    keep_float_ops: tuple[str, ...] = ()  # op names kept at higher precision where allowed
    qat: TrainSchedule = field(default_factory=lambda: TrainSchedule(epochs=1.0, learning_rate=1e-5))

    def __post_init__(self):
        require(50.0 < self.percentile <= 100.0, "percentile", f"expected 50 < p <= 100, got {self.percentile}")
        require(self.calibration_samples >= 1, "calibration_samples", "expected at least 1 sample")
        _fraction(self.smoothquant_alpha, "smoothquant_alpha")
        require(self.mask_bias is None or self.mask_bias < 0, "mask_bias", "expected a negative number")


@dataclass(frozen=True)
class ExportTarget:
    format: Format
    precision: Precision = Precision.FP32
    shapes: ShapeMode | None = None  # None: the export section's (or device profile's) setting

    def __post_init__(self):
        allowed = precisions(self.format)
        require(self.precision in allowed, "precision",
                f"expected one of {', '.join(p.value for p in allowed)} for {self.format.value}, "
                f"got {self.precision.value!r}")


@dataclass(frozen=True)
class ExportSection:
    targets: tuple[ExportTarget, ...]
    seq_len: int = 128  # static exports: fixed sequence length; dynamic: the upper bound
    shapes: ShapeMode = ShapeMode.DYNAMIC
    batch_size: int = 1

    def __post_init__(self):
        require(len(self.targets) > 0, "targets", "expected at least one {format, precision} target")
        require(2 <= self.seq_len <= 4096, "seq_len", f"expected 2..4096 tokens, got {self.seq_len}")
        require(self.batch_size >= 1, "batch_size", f"expected at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class EvaluationSection:
    """The gate every artifact must pass, measured with the runtime that runs it."""

    split: str = "test"
    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None  # vs the fp32 model, in accuracy points (0.01 = 1 pt)
    min_agreement: float | None = None  # share of labels equal to the teacher's
    min_cosine: float | None = None  # mean cosine of outputs to the fp32 reference
    gate: Gate = Gate.ENFORCE  # warn: failing artifacts are marked, the command still succeeds

    def __post_init__(self):
        require(self.split in ("train", "validation", "test"), "split",
                f"expected one of 'train', 'validation', 'test', got {self.split!r}")
        for key in ("min_accuracy", "max_accuracy_drop", "min_agreement", "min_cosine"):
            _fraction(getattr(self, key), key)


@dataclass(frozen=True)
class Recipe:
    name: str
    task: Task
    description: str = ""
    seed: int = 0
    distribute: Distribute = Distribute.NONE
    device: str | None = None  # a device profile name (devices/*.yaml)
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection | None = None
    finetune: FinetuneSection | None = None
    distill: DistillSection | None = None
    prune: PruneSection | None = None
    quantize: QuantizeSection | None = None
    export: ExportSection | None = None
    evaluation: EvaluationSection = field(default_factory=EvaluationSection)

    def __post_init__(self):
        classify = self.task is Task.TEXT_CLASSIFICATION
        if self.finetune is not None:
            require(classify, "finetune", "expected task 'text-classification' for a finetune stage")
            require(self.data is not None and (self.data.train or self.data.hf_dataset), "data.train",
                    "expected a training split for the finetune stage")
        if self.distill is not None and not classify:
            require(self.distill.unlabeled_text is not None or self.data is not None, "distill.unlabeled_text",
                    "expected unlabeled text (or a data section) to distil a feature-extraction model")
        transfer = self.prune.recovery_distill if self.prune is not None else None
        if transfer is not None and transfer.teacher is RecoveryTeacher.TEACHER:
            require(self.distill is not None, "prune.recovery_distill.teacher",
                    "expected a distill stage for 'teacher' (or use 'unpruned')")
        if self.evaluation.min_accuracy is not None or self.evaluation.max_accuracy_drop is not None:
            require(classify, "evaluation", "expected accuracy gates only for task 'text-classification'")

    @property
    def stages(self) -> tuple[str, ...]:
        """Names of the stages this recipe runs, in order."""
        names = ("finetune", "distill", "prune", "quantize", "export")
        return tuple(n for n in names if getattr(self, n) is not None)
