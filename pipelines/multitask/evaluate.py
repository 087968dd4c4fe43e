"""Per-task metrics of a multi-head model: PyTorch (each head on its task's eval split) and
exported artifacts (each ONNX output `logits_<task>` on the same rows)."""

from __future__ import annotations

import numpy as np

from distill.heads import TaskHeads
from pipelines.multitask.tasks import Task, task_metric
from pipelines.train.evaluation import evaluate_model


def evaluate_tasks(
    model,
    heads: TaskHeads,
    tasks: list[Task],
    eval_sets: list,
    tokenizer,
    batch_size: int,
    device: str,
    who: str,
) -> dict[str, dict]:
    """{task: metrics} for each head on its own eval split (`score` = the task's metric)."""
    out = {}
    for task, rows in zip(tasks, eval_sets, strict=True):
        with heads.use(model, task.name):
            metrics, logits = evaluate_model(
                model, rows, tokenizer, batch_size, device, f"evaluate {who} on {task.name}"
            )
        out[task.name] = task_metric(logits, np.asarray(rows["labels"]), task.metric)
    return out


def output_name(task: str, default: str) -> str:
    """The ONNX output holding a task's logits: `logits` for the default task."""
    return "logits" if task == default else f"logits_{task}"


def artifact_task_scores(folder, tasks: list[Task], eval_sets: list, tokenizer) -> dict:
    """{task: metrics} of an exported artifact's extra heads (ONNX Runtime for model.onnx,
    OpenVINO for model.xml), each on its own task's eval split."""
    from pathlib import Path

    from export.parity import onnx_logits
    from modelkit.batching import padded_batches

    folder = Path(folder)
    out = {}
    for task, rows in zip(tasks, eval_sets, strict=True):
        output = f"logits_{task.name}"
        if (folder / "model.xml").is_file():
            from quantize.openvino import OVClassifier, openvino_logits

            batches = (b for _, b in padded_batches(rows, tokenizer.pad_token_id, 32))
            logits = openvino_logits(OVClassifier(folder), batches, output)
        else:
            logits = onnx_logits(folder, rows, tokenizer, output=output)
        out[task.name] = task_metric(logits, np.asarray(rows["labels"]), task.metric)
    return out
