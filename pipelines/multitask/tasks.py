"""The tasks of a transfer recipe, target first, each as a recipe of its own.

A source task is the recipe with its `task` and `data` sections swapped for the source's, so every
loader, check and tokenizer of a single-task run applies to it unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

from distill.combined import Schedule
from pipelines.core.config import Recipe, ScheduleConfig


@dataclass
class Task:
    name: str
    role: str  # "target" | "source"
    recipe: Recipe  # the run's recipe with this task's `task` and `data`
    weight: Schedule  # λ
    metric: str  # headline metric: accuracy | f1

    @property
    def labels(self) -> list[str]:
        return list(self.recipe.task.labels)

    @cached_property
    def data(self):
        from pipelines.data.loading import load_task_data

        return load_task_data(self.recipe)


def _schedule(start: float, config: ScheduleConfig) -> Schedule:
    return Schedule(start, config.kind, config.end)


def transfer_tasks(recipe: Recipe, target_data=None) -> list[Task]:
    """[target, *sources]; `target_data` (the run's loaded TaskData) saves loading it twice."""
    t = recipe.transfer
    target = Task(
        t.target,
        "target",
        recipe,
        _schedule(t.target_weight, t.target_weight_schedule),
        t.target_metric,
    )
    if target_data is not None:
        target.__dict__["data"] = target_data  # fills the cached_property
    tasks = [target]
    for source in t.sources:
        sub = recipe.model_copy(update={"task": source.task, "data": source.data})
        tasks.append(
            Task(
                source.name,
                "source",
                sub,
                _schedule(source.weight, source.weight_schedule),
                source.metric,
            )
        )
    return tasks


def data_fingerprint(recipe: Recipe) -> str:
    """The data's content hash for stage hashes: the target's, or every task's when transferring."""
    from pipelines.data.loading import source_fingerprint

    target = source_fingerprint(recipe)
    if not recipe.transfer.enabled:
        return target
    parts = {task.name: source_fingerprint(task.recipe) for task in transfer_tasks(recipe)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def task_metric(logits, labels, metric: str) -> dict[str, float]:
    """accuracy (and f1 for two labels), with `score` = the task's headline metric."""
    import numpy as np

    from pipelines.train.evaluation import classification_metrics

    out = classification_metrics(np.asarray(logits), np.asarray(labels))
    out["score"] = out[metric]
    out["metric"] = metric
    out["eval_rows"] = len(labels)
    return out


def tokenized_tasks(tasks: list[Task], tokenizer, split: str) -> list:
    """Each task's split ("train" or "eval") tokenized, with a `task` column: its position."""
    from pipelines.data.loading import tokenize

    out = []
    for index, task in enumerate(tasks):
        rows = tokenize(getattr(task.data, split), tokenizer, task.recipe)
        out.append(rows.add_column("task", [index] * len(rows)))
    return out


def bundle_tasks(recipe: Recipe, artifact_folder) -> dict:
    """config.json keys of a bundle whose graph has one output per task (`tasks`, each with its
    labels, output and text columns, and `default_task`); {} for a single-task artifact."""
    from distill.heads import read_heads_config

    heads = read_heads_config(artifact_folder)
    if not heads:
        return {}
    columns = {s.name: s.task.text_columns for s in recipe.transfer.sources}
    default = heads["default"]
    return {
        "tasks": [
            {
                "name": t["name"],
                "labels": t["labels"],
                "output_name": "logits" if t["name"] == default else f"logits_{t['name']}",
                "text_columns": list(columns.get(t["name"], recipe.task.text_columns)),
            }
            for t in heads["tasks"]
        ],
        "default_task": default,
    }
