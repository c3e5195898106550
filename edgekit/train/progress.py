"""Rich progress bars for long stages: step count, loss, accuracy and ETA on one line."""

from __future__ import annotations

import contextlib
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextlib.contextmanager
def stage_progress(description: str, total: int, completed: int = 0, enabled: bool = True) -> Iterator:
    """Yields ``update(advance, **metrics)``; metrics (loss, acc) show beside the bar.

    Disabled (no output) when ``enabled`` is false, e.g. in tests.
    """
    console = Console(stderr=True)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=console, disable=not enabled, transient=False)
    with progress:
        task = progress.add_task(description, total=total, completed=completed, metrics="")

        def update(advance: int = 1, **metrics: float) -> None:
            text = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            progress.update(task, advance=advance, metrics=text)

        yield update
