"""Tasks: what a model is trained to answer, and how its outputs become answers.

``get(task)`` is the one table of tasks; ``for_config(config)`` the task of a model.
"""

from __future__ import annotations

from edgekit.config.enums import Task
from edgekit.tasks.base import Head, Output, TaskSpec


def _table() -> dict[Task, TaskSpec]:
    from edgekit.tasks.embedding import FeatureExtraction
    from edgekit.tasks.question_answering import QuestionAnswering
    from edgekit.tasks.sentence import TextClassification
    from edgekit.tasks.token_classification import TokenClassification

    return {t.task: t for t in (TextClassification(), FeatureExtraction(), TokenClassification(),
                                QuestionAnswering())}


_TASKS: dict[Task, TaskSpec] = {}


def get(task: Task | str) -> TaskSpec:
    if not _TASKS:
        _TASKS.update(_table())
    return _TASKS[Task(task)]


def for_config(config) -> TaskSpec:
    """The task of a ``BertConfig`` (its ``task`` field)."""
    return get(config.task)


def by_architecture(name: str) -> TaskSpec | None:
    """The task of transformers' class ``name`` by its suffix (``...ForTokenClassification``,
    ``...Model``); None for a head edgekit does not build (masked LM, multiple choice)."""
    for task in (get(t) for t in Task):
        if name.endswith(task.architecture.removeprefix("Bert")):
            return task
    return None


__all__ = ["Head", "Output", "TaskSpec", "by_architecture", "for_config", "get"]
