"""Progress for long stages: a rich bar (step count, loss, accuracy, ETA) on a terminal, and a
plain log line every 5% when stderr is a file or a CI log, where a live bar would print nothing."""

from __future__ import annotations

import contextlib
import time
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@contextlib.contextmanager
def stage_progress(description: str, total: int, completed: int = 0, enabled: bool = True) -> Iterator:
    """Yields ``update(advance, **metrics)``; metrics (loss, acc) show beside the bar."""
    console = Console(stderr=True)
    if enabled and not console.is_terminal:
        yield _log_lines(console, description, total, completed)
        return
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(), TextColumn("eta"),
                        TimeRemainingColumn(), console=console, disable=not enabled)
    with progress:
        task = progress.add_task(description, total=total, completed=completed, metrics="")

        def update(advance: int = 1, **metrics: float) -> None:
            text = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
            progress.update(task, advance=advance, metrics=text)

        yield update


def _log_lines(console: Console, description: str, total: int, completed: int):
    state = {"done": completed, "metrics": "", "next": completed + max(1, total // 20)}
    began, first = time.monotonic(), completed

    def update(advance: int = 1, **metrics: float) -> None:
        if metrics:
            state["metrics"] = "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        state["done"] += advance
        if advance and (state["done"] >= state["next"] or state["done"] == total):
            state["next"] += max(1, total // 20)
            elapsed = time.monotonic() - began
            rate = (state["done"] - first) / elapsed if elapsed > 0 else 0.0
            eta = (total - state["done"]) / rate if rate else 0.0
            console.print(f"{description} {state['done']}/{total}  {state['metrics']}  "
                          f"{elapsed:.0f}s elapsed, eta {eta:.0f}s", highlight=False, soft_wrap=True)

    return update
