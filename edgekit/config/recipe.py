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
    LoraTarget,
    Pooling,
    Precision,
    PruneMethod,
    RecoveryTeacher,
    ShapeMode,
    Task,
    VocabularyKeep,
)
from edgekit.config.formats import precisions
from edgekit.config.loader import check_ranges, path_field, ranged, require

MAX_TOKENS = 4096  # the longest sequence a recipe, a device profile or `edgekit bench` may ask for
DISTRIBUTE_TIMEOUT = 300.0  # seconds a multi_worker task waits for the rest of its cluster


def _fraction(default: float | None = None, *, below_one: bool = False):
    return ranged(default, 0, 1, high_open=below_one)


def _weight(default: float = 0.0):
    """A loss weight: 0 (off) up to a generous 1000."""
    return ranged(default, 0, 1000)


def _temperature():
    return ranged(2.0, 0, 100, low_open=True)


@dataclass(frozen=True)
class ModelSection:
    """The teacher / starting checkpoint: a built-in name (`edgekit models`) or an HF folder."""

    source: str = "minilm-l6"
    max_length: int = ranged(128, 2, MAX_TOKENS)
    pooling: Pooling | None = None  # None: what the checkpoint says (sentence-transformers config)

    def __post_init__(self):
        check_ranges(self)


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
    max_examples: int | None = ranged(None, 1)  # cap per split (quick runs)
    # squad: the articles [first, stop) of the file each split keeps (0-based; one file split by article)
    train_articles: tuple[int, int] | None = None
    validation_articles: tuple[int, int] | None = None
    test_articles: tuple[int, int] | None = None

    def __post_init__(self):
        check_ranges(self)
        for split in ("train", "validation", "test"):
            key, articles = f"{split}_articles", getattr(self, f"{split}_articles")
            if articles is not None:
                require(self.format is DataFormat.SQUAD, key, "expected only with format 'squad'")
                require(getattr(self, split) is not None, key, f"expected a data.{split} file to take them from")
                require(len(articles) == 2 and 0 <= articles[0] < articles[1], key,
                        f"expected [first, stop) article indices with 0 <= first < stop, got {list(articles)}")
        named = [(s, getattr(self, s), getattr(self, f"{s}_articles")) for s in ("train", "validation", "test")]
        for i, (split, path, articles) in enumerate(named):  # an article on both sides would inflate every score
            for other, other_path, other_articles in named[:i]:
                if path is not None and path == other_path and self.format is DataFormat.SQUAD:
                    first, stop = (articles or (0, 1 << 30)), (other_articles or (0, 1 << 30))
                    shared = range(max(first[0], stop[0]), min(first[1], stop[1]))
                    require(not shared, f"{split}_articles",
                            f"expected articles apart from {other}_articles (the same file; articles "
                            f"{shared.start}..{shared.stop - 1} would be on both sides)")
        local = any(p is not None for p in (self.train, self.validation, self.test))
        if self.format is DataFormat.HF:
            require(self.hf_dataset is not None, "hf_dataset", "expected a dataset name when format is 'hf'")
            require(not local, "format", "expected local train/validation/test paths only with tsv, csv or jsonl")
        else:
            require(self.hf_dataset is None, "hf_dataset", "expected no hf_dataset unless format is 'hf'")
        require(len(set(self.labels)) == len(self.labels), "labels", f"expected distinct names, got {list(self.labels)}")
        named = [("text_column", self.text_column), ("text_pair_column", self.text_pair_column),
                 ("label_column", self.label_column)]
        for i, (key, column) in enumerate(named):  # one column read twice: labels that are the texts
            twin = next((k for k, c in named[:i] if column is not None and c == column), None)
            require(twin is None, key, f"expected a column other than {twin}'s, got {column!r}")


@dataclass(frozen=True)
class LoraSection:
    """Low-rank adapters (``edgekit.train.lora``): each target dense computes
    ``W x + b + (alpha / rank) · B A dropout(x)``; the base weights stay frozen, the task head
    (and the sentence head's dense layer) train whole, and the stage writes the merged weights."""

    rank: int = ranged(8, 1, 4096)
    alpha: float = ranged(16.0, 0, 1e6, low_open=True)
    dropout: float = _fraction(0.1, below_one=True)  # on the adapter's input only
    targets: tuple[LoraTarget, ...] = (LoraTarget.QUERY, LoraTarget.VALUE)

    def __post_init__(self):
        check_ranges(self)
        require(len(self.targets) > 0, "targets", "expected at least one of "
                                                  f"{', '.join(t.value for t in LoraTarget)}")
        twice = next((t for i, t in enumerate(self.targets) if t in self.targets[:i]), None)
        require(twice is None, "targets", f"expected each target once, got {getattr(twice, 'value', twice)!r} twice")


@dataclass(frozen=True)
class TrainSchedule:
    """Optimiser settings shared by the training stages (AdamW, linear warm-up then decay)."""

    epochs: float = ranged(3.0, 0, 1000, low_open=True)
    batch_size: int = ranged(32, 1, 4096)
    learning_rate: float = ranged(5e-5, 0, 1, low_open=True)
    warmup_ratio: float = _fraction(0.1)
    weight_decay: float = _fraction(0.01)
    # Keep the word-embedding table fixed: it is half of MiniLM's weights, and not updating
    # it made a MiniLM fine-tuning step 17% faster on 2 cores (345 -> 287 ms, batch 32).
    freeze_word_embeddings: bool = False
    lora: LoraSection | None = None  # train low-rank adapters and the head only (None: every weight)

    def __post_init__(self):
        check_ranges(self)


@dataclass(frozen=True)
class FinetuneSection(TrainSchedule):
    """Train a classification head and the encoder on the labelled task."""


@dataclass(frozen=True)
class StudentSection:
    """The smaller encoder: teacher layers to copy (0-based), optionally narrower."""

    layers_from_teacher: tuple[int, ...]
    hidden_size: int | None = ranged(None, 1)
    num_attention_heads: int | None = ranged(None, 1)
    intermediate_size: int | None = ranged(None, 1)
    family: str | None = None  # model_type of the student (None: the teacher's); see models.student

    def __post_init__(self):
        check_ranges(self)
        from edgekit.models import families

        require(self.family is None or self.family in families.names(), "family",
                f"expected one of {', '.join(families.names())}, got {self.family}")
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
    temperature: float = _temperature()
    alpha: float = _fraction(0.5)  # weight of the soft-target loss; 1 - alpha goes to the hard labels
    hidden_loss_weight: float = _weight()
    attention_loss_weight: float = _weight()
    unlabeled_text: Path | None = path_field()  # feature-extraction: one text per line

    def __post_init__(self):
        super().__post_init__()
        require(self.student is not None, "student", "missing required key (expected a mapping)")


@dataclass(frozen=True)
class RecoveryDistill:
    """Recover a pruned model by distillation (the distil stage's loss): soft targets at
    ``temperature`` + hard labels, and optionally hidden states, from the unpruned model
    (pruning keeps depth and width: layer i learns from layer i) or the distil stage's teacher."""

    teacher: RecoveryTeacher = RecoveryTeacher.UNPRUNED
    temperature: float = _temperature()
    alpha: float = _fraction(0.5)  # weight of the soft-target loss; 1 - alpha goes to the hard labels
    hidden_loss_weight: float = _weight()

    def __post_init__(self):
        check_ranges(self)


@dataclass(frozen=True)
class PruneSection:
    """Structured: drop attention heads / FFN neurons by importance, then recover.
    Magnitude: tfmot unstructured sparsity (only the compressed file shrinks)."""

    method: PruneMethod = PruneMethod.STRUCTURED
    head_sparsity: float = _fraction(0.0, below_one=True)  # structured: fraction of heads removed per layer
    ffn_sparsity: float = _fraction(0.0, below_one=True)  # structured: fraction of FFN neurons removed per layer
    target_sparsity: float = _fraction(0.0, below_one=True)  # magnitude: fraction of weights set to zero
    recovery: TrainSchedule = field(default_factory=lambda: TrainSchedule(epochs=1.0))
    recovery_distill: RecoveryDistill | None = None  # None: recovery trains on the labels only

    def __post_init__(self):
        check_ranges(self)
        require(self.recovery_distill is None or self.method is PruneMethod.STRUCTURED, "recovery_distill",
                "expected only with method 'structured' (magnitude pruning recovers on the labels)")
        require(self.recovery.lora is None or self.method is PruneMethod.STRUCTURED, "recovery.lora",
                "expected only with method 'structured' (magnitude pruning trains every weight it masks)")


@dataclass(frozen=True)
class QuantizeSection:
    """Settings for the int8 precisions (full, static, QAT); float targets ignore them."""

    calibration: Calibration = Calibration.PERCENTILE
    percentile: float = ranged(99.99, 50, 100, low_open=True)
    calibration_samples: int = ranged(256, 1, 100_000)
    per_channel: bool = True
    smoothquant_alpha: float | None = _fraction()  # migrate activation outliers into weights
    # additive attention-mask constant (bounded for int8)
    mask_bias: float | None = ranged(None, -1e9, 0, high_open=True)
    keep_float_ops: tuple[str, ...] = ()  # op names kept at higher precision where allowed
    qat: TrainSchedule = field(default_factory=lambda: TrainSchedule(epochs=1.0, learning_rate=1e-5))

    def __post_init__(self):
        check_ranges(self)
        require(self.qat.lora is None, "qat.lora", "expected no adapters (quantization-aware training trains "
                                                   "the merged weights the int8 model keeps)")


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
class VocabularySection:
    """The word-embedding rows every artifact keeps (``edgekit.export.vocabulary``): ``all``, or
    the special tokens, the tokens the task's training data (train and validation, never the
    evaluation split) gives at least ``min_count`` times, the pieces that spell its words
    letter by letter, the vocabulary's first ``frequent`` ids (its commonest tokens: WordPiece
    and BPE vocabularies are listed by frequency) and the ``extra`` tokens (each one of the
    model's vocabulary)."""

    keep: VocabularyKeep = VocabularyKeep.ALL
    min_count: int = ranged(1, 1, 2**31 - 1)  # occurrences in the counted splits
    frequent: int = ranged(0, 0, 2**31 - 1)  # ids 0..frequent-1 kept whatever the data
    extra: tuple[str, ...] = ()

    def __post_init__(self):
        check_ranges(self)
        if self.keep is VocabularyKeep.ALL:  # either would be ignored
            require(not self.extra, "extra", "expected only with keep 'from-data' (keep 'all' keeps every token)")
            require(self.min_count == 1, "min_count", "expected only with keep 'from-data' (keep 'all' keeps "
                                                      "every token)")
            require(self.frequent == 0, "frequent", "expected only with keep 'from-data' (keep 'all' keeps "
                                                    "every token)")
        twice = next((t for i, t in enumerate(self.extra) if t in self.extra[:i]), None)
        require(twice is None, "extra", f"expected each token once, got {twice!r} twice")


@dataclass(frozen=True)
class ExportSection:
    targets: tuple[ExportTarget, ...]
    seq_len: int = ranged(128, 2, MAX_TOKENS)  # static exports: fixed sequence length; dynamic: the upper bound
    shapes: ShapeMode = ShapeMode.DYNAMIC
    batch_size: int = ranged(1, 1, 1024)
    vocabulary: VocabularySection = field(default_factory=VocabularySection)

    def __post_init__(self):
        check_ranges(self)
        require(len(self.targets) > 0, "targets", "expected at least one {format, precision} target")


@dataclass(frozen=True)
class EvaluationSection:
    """The gate every artifact must pass, measured with the runtime that runs it."""

    split: str = "test"
    min_accuracy: float | None = _fraction()
    max_accuracy_drop: float | None = _fraction()  # vs the fp32 model, in accuracy points (0.01 = 1 pt)
    min_agreement: float | None = _fraction()  # share of labels equal to the teacher's
    min_cosine: float | None = _fraction()  # mean cosine of outputs to the fp32 reference
    min_f1: float | None = _fraction()  # token-classification: entity F1; question-answering: SQuAD F1
    max_f1_drop: float | None = _fraction()  # vs the fp32 model, in F1 points (0.01 = 1 pt)
    min_exact_match: float | None = _fraction()  # question-answering
    max_exact_match_drop: float | None = _fraction()
    gate: Gate = Gate.ENFORCE  # warn: failing artifacts are marked, the command still succeeds

    def __post_init__(self):
        check_ranges(self)
        require(self.split in ("train", "validation", "test"), "split",
                f"expected one of 'train', 'validation', 'test', got {self.split!r}")

    @property
    def gates(self) -> dict[str, float]:
        """The gate keys that are set: {key: threshold}."""
        return {k: v for k, v in vars(self).items() if k.startswith(("min_", "max_")) and v is not None}


@dataclass(frozen=True)
class Recipe:
    name: str
    task: Task
    description: str = ""
    seed: int = ranged(0, 0, 2**32 - 1)  # numpy's seed range
    distribute: Distribute = Distribute.NONE
    distribute_timeout: float = ranged(DISTRIBUTE_TIMEOUT, 0, 86400, low_open=True)  # multi_worker: wait for peers
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
        check_ranges(self)
        name = self.name
        plain = name == name.strip() and name not in ("", ".", "..") and not set("/\\\0") & set(name)
        require(plain, "name", f"expected a plain name without slashes (the export goes to edgekit-out/<name>), "
                               f"got {name!r}")
        from edgekit import tasks

        task = tasks.get(self.task)
        if self.finetune is not None:
            require(task.needs_labels, "finetune", f"expected a task with a head to train, not {task.name!r}")
            require(self.data is not None and (self.data.train or self.data.hf_dataset), "data.train",
                    "expected a training split for the finetune stage")
        if self.distill is not None and not task.needs_labels:
            require(self.distill.unlabeled_text is not None or self.data is not None, "distill.unlabeled_text",
                    "expected unlabeled text (or a data section) to distil a feature-extraction model")
        if self.distill is not None and self.distill.unlabeled_text is not None:
            require(self.task in (Task.TEXT_CLASSIFICATION, Task.FEATURE_EXTRACTION), "distill.unlabeled_text",
                    f"expected only for text-classification or feature-extraction (a {task.name} student learns "
                    "from data.train)")
            require(self.data is None or self.data.train is None, "distill.unlabeled_text",
                    "expected only without data.train (distillation trains on data.train, so this file "
                    "would be ignored)")
        if self.data is not None:
            allowed = (*task.formats, DataFormat.HF) if DataFormat.TSV in task.formats else task.formats
            require(self.data.format in allowed, "data.format",
                    f"expected one of {', '.join(f.value for f in allowed)} for task {task.name!r}, "
                    f"got {self.data.format.value!r}")
            if task.head_layer == "classifier":
                require(len(self.data.labels) != 1, "data.labels",
                        f"expected at least 2 label names for {task.name}, got {list(self.data.labels)}")
        for key in self.evaluation.gates:  # a key the task's metrics do not answer would never be checked
            require(task.check_gate(key), f"evaluation.{key}",
                    f"expected a gate of task {task.name!r} ({', '.join(task.gates)})")
        transfer = self.prune.recovery_distill if self.prune is not None else None
        if transfer is not None and transfer.teacher is RecoveryTeacher.TEACHER:
            require(self.distill is not None, "prune.recovery_distill.teacher",
                    "expected a distill stage for 'teacher' (or use 'unpruned')")
        if self.export is not None:  # the export measures every artifact on it, after any training
            split = self.evaluation.split
            require(self.data is not None and (getattr(self.data, split) or self.data.hf_dataset), "evaluation.split",
                    f"expected a data.{split} file to measure every exported artifact on")
            counted = [s for s in ("train", "validation") if s != split and getattr(self.data, s)]
            require(self.export.vocabulary.keep is VocabularyKeep.ALL or counted or self.data.hf_dataset,
                    "export.vocabulary.keep", f"expected a data.train or data.validation file (other than the "
                                              f"evaluation split, {split}) to count the tokens 'from-data' keeps")

    @property
    def stages(self) -> tuple[str, ...]:
        """Names of the stages this recipe runs, in order."""
        names = ("finetune", "distill", "prune", "quantize", "export")
        return tuple(n for n in names if getattr(self, n) is not None)
