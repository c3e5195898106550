"""How closely an artifact reproduces the tf-keras model it was exported from, per output.

One measurement for the family tests and ``benchmarks/family_matrix.py``: the artifact's runner
and the model get the same int32 inputs; per-token outputs are compared at real tokens only
(padding's values are free). Per output: max |Δ|, Pearson r over every compared value, and
the share of rows (or real tokens) whose argmax agrees (None for [B, S] scores and embeddings).
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from edgekit.config import Format, Precision
from edgekit.config.formats import find
from edgekit.export.base import ExportJob, task_outputs
from edgekit.export.pipeline import BACKENDS
from edgekit.models.pretrained import Pretrained


def random_rows(pretrained: Pretrained, count: int, max_len: int, seed: int = 0) -> tuple[dict, ...]:
    """``count`` single-row inputs of random vocabulary ids framed by the tokenizer's own specials
    ([CLS] ... [SEP], <s> ... </s>), lengths 4..max_len: calibration for random-weight models."""
    rng = np.random.default_rng(seed)
    frame = pretrained.tokenizer.backend.encode("").ids
    rows = []
    for n in rng.integers(4, max_len + 1, count):
        ids = np.array([frame[0], *rng.integers(5, pretrained.config.vocab_size, n - 2), frame[-1]], np.int32)
        row = {"input_ids": ids[None], "attention_mask": np.ones((1, n), np.int32),
               "token_type_ids": np.zeros((1, n), np.int32)}
        rows.append({k: row[k] for k in pretrained.model.input_names})
    return tuple(rows)


def export_and_load(pretrained: Pretrained, fmt: Format | str, precision: Precision | str, folder: Path, *,
                    seq_len: int, static: bool = False, batch_size: int = 1, calibration: tuple = ()):
    """Export one artifact of ``pretrained`` into ``folder`` and load its runner (1 thread)."""
    row = find(Format(fmt), Precision(precision))
    job = ExportJob(row=row, pretrained=pretrained, folder=Path(folder), seq_len=seq_len, static=static,
                    batch_size=batch_size, calibration=calibration if row.precision.is_int8 else (), threads=1)
    backend = importlib.import_module(BACKENDS[row.format])
    return backend.load(backend.export(job).files[0], 1)


def agreement(runner, pretrained: Pretrained, inputs: dict[str, np.ndarray]) -> dict[str, dict]:
    """{output name: {"max_abs", "scale" (max |reference|), "r", "argmax"}} of ``runner`` against ``pretrained.model`` on
    ``inputs`` ([B, S] int32 arrays; each side gets the ones it takes)."""
    got = runner({n: inputs[n] for n in runner.input_names})
    want = pretrained.model({n: inputs[n] for n in pretrained.model.input_names}, training=False)
    real = inputs["attention_mask"].astype(bool)
    result = {}
    for o in task_outputs(pretrained):
        a, b = np.asarray(got[o.name], np.float64), want[o.name].numpy().astype(np.float64)
        if a.shape != b.shape:
            raise ValueError(f"{o.name}: the artifact returns {a.shape}, the model {b.shape}")
        if o.per_token:
            a, b = a[real], b[real]
        argmax = float((a.argmax(-1) == b.argmax(-1)).mean()) if a.ndim == 2 and o.name != "embedding" else None
        result[o.name] = {"max_abs": float(np.abs(a - b).max()), "scale": float(np.abs(b).max()),
                          "r": float(np.corrcoef(a.reshape(-1), b.reshape(-1))[0, 1]), "argmax": argmax}
    return result
