"""The distill stage's `multitask` variant (a recipe with `transfer.enabled`; the registry runs
its `main` instead of pipelines/stages/distill.py's): one student with a head per task learns
from the multi-task teacher (TextBrewer's MultiTaskDistiller, one teacher head per task here).

Every task's train rows form the training set; each batch is one task's (transfer.sampling), the
student's head for that task is trained on the combined loss (w_task·CE + w_kd·KD + matches)
against the teacher's head for the same task, times the task's λ. Terms are logged per task
(`loss_<task>/kd`, `loss_<task>/task`, `lambda_<task>`). The student's heads start as copies of
the teacher's (same width) or fresh ones (a narrower student).
"""

from __future__ import annotations

import logging
import shutil
import time

from distill.api import MultiTask
from distill.heads import TaskHeads, load_heads
from distill.multitask import TaskBatchSampler
from pipelines.core.config import TORCH_DTYPES
from pipelines.core.context import StageContext, StageResult
from pipelines.core.distributed import is_main
from pipelines.core.errors import DistilleryError
from pipelines.core.models import (
    HEADS_ARTIFACTS,
    MODEL_ARTIFACTS,
    load_stage_model,
    save_model,
)
from pipelines.data.loading import require_rows
from pipelines.distillation.logits import cached_teacher_logits
from pipelines.distillation.loss import loss_spec
from pipelines.distillation.student_choice import build_student
from pipelines.distillation.training import train_student
from pipelines.multitask.evaluate import evaluate_tasks
from pipelines.multitask.tasks import tokenized_tasks, transfer_tasks
from pipelines.train.settings import batch_info, resolve_device, resolve_teacher_dtype

log = logging.getLogger("distillery")


def main(ctx: StageContext) -> StageResult:
    import torch
    from datasets import concatenate_datasets
    from transformers import set_seed

    r, d = ctx.recipe, ctx.recipe.distill
    device = resolve_device(r)
    set_seed(r.seed)
    teacher, tokenizer, teacher_heads, tasks = teacher_and_tasks(ctx)
    train_sets = tokenized_tasks(tasks, tokenizer, "train")
    eval_sets = tokenized_tasks(tasks, tokenizer, "eval")
    for task, rows in zip(tasks, train_sets, strict=True):
        require_rows(
            rows, f"{task.name}: train", d.batch_size, f"distill.batch_size is {d.batch_size}"
        )
    student, copied = build_student(r, teacher, tokenizer, train_sets[0])
    student_heads = TaskHeads.for_model(student, {t.name: t.labels for t in tasks})
    student_heads.copy_from(teacher_heads)
    spec = loss_spec(d, student.config.num_hidden_layers, teacher.config.num_hidden_layers, copied)
    teacher_dtype = resolve_teacher_dtype(r, device)
    teacher = teacher.to(getattr(torch, TORCH_DTYPES[teacher_dtype]))
    teacher_heads.to(getattr(torch, TORCH_DTYPES[teacher_dtype]))

    logits, cache_info = None, {}
    if d.cache_teacher_logits and not spec.needs_teacher_features:
        logits = []
        for task, rows in zip(tasks, train_sets, strict=True):
            task_logits, cache_info[task.name] = cached_teacher_logits(
                ctx, teacher, rows, tokenizer, device, task=task, heads=teacher_heads
            )
            logits.extend(task_logits)
    training_rows = concatenate_datasets(train_sets)
    batches = TaskBatchSampler(
        training_rows["task"],
        d.batch_size,
        r.transfer.sampling,
        r.transfer.sampling_temperature,
        r.seed,
    )
    multitask = MultiTask(student_heads, teacher_heads, {t.name: t.weight for t in tasks}, batches)
    checkpoints = ctx.out / "checkpoints"
    started = time.time()
    trainer, resumed, _ = train_student(
        ctx, teacher, student, tokenizer, training_rows, spec, checkpoints, logits, tasks=multitask
    )
    train_seconds = time.time() - started + getattr(trainer, "seconds_before_resume", 0.0)
    student, student_heads = trainer.model.student, trainer.model.heads
    per_task = evaluate_tasks(
        student, student_heads, tasks, eval_sets, tokenizer, d.eval_batch_size, device, "student"
    )
    metrics = target_metrics(ctx, per_task, tasks[0].name)
    if is_main():
        save_model(student, tokenizer, ctx.out)
        student_heads.save(ctx.out, {t.name: t.metric for t in tasks})
        shutil.rmtree(checkpoints, ignore_errors=True)
    facts = {
        "resumed_from": resumed,
        "train_rows": {t.name: len(rows) for t, rows in zip(tasks, train_sets, strict=False)},
        "cached_teacher_logits": logits is not None,
        "cache": cache_info,
        "train_seconds": round(train_seconds, 1),
        "teacher_dtype": teacher_dtype,
    }
    return StageResult(
        metrics=metrics,
        artifacts={**MODEL_ARTIFACTS, **HEADS_ARTIFACTS},
        extra=manifest_extra(ctx, tasks, per_task, student, copied, spec, trainer, facts),
    )


def teacher_and_tasks(ctx: StageContext):
    """(teacher, tokenizer, its task heads, the recipe's tasks); a teacher whose heads are not
    the recipe's tasks (trained for another recipe) is refused with the command that fixes it."""
    teacher_dir = ctx.input_dir("teacher")
    teacher, tokenizer = load_stage_model(teacher_dir, ctx.recipe.security)
    teacher_heads = load_heads(teacher_dir, teacher)
    tasks = transfer_tasks(ctx.recipe, ctx.data())
    if teacher_heads is None or teacher_heads.names != [t.name for t in tasks]:
        raise DistilleryError(
            f"distill: the teacher in {teacher_dir} has heads "
            f"{teacher_heads.names if teacher_heads else 'for one task'}, the recipe's tasks are "
            f"{[t.name for t in tasks]}; rerun the teacher stage (--stage teacher --force)."
        )
    return teacher, tokenizer, teacher_heads, tasks


def target_metrics(ctx: StageContext, per_task: dict, target: str) -> dict:
    """The stage's metrics: the target task's, with what it retains of the teacher; each task's
    entry in `per_task` gains its teacher score and retained fraction."""
    teacher_tasks = ctx.inputs["teacher"].get("tasks") or {}
    for name, metrics in per_task.items():
        teacher_score = (teacher_tasks.get(name) or {}).get("score")
        metrics["teacher_score"] = teacher_score
        metrics["retained"] = metrics["score"] / teacher_score if teacher_score else None
    teacher_acc = ctx.inputs["teacher"]["metrics"]["accuracy"]
    skip = ("metric", "teacher_score", "retained")
    metrics = {k: v for k, v in per_task[target].items() if k not in skip}
    metrics["teacher_accuracy"] = teacher_acc
    metrics["retained"] = metrics["accuracy"] / teacher_acc if teacher_acc else 0.0
    return metrics


def manifest_extra(ctx, tasks, per_task, student, copied, spec, trainer, facts: dict) -> dict:
    """The manifest's `tasks`, `student`, `loss` and `training` entries."""
    r = ctx.recipe
    return {
        "tasks": per_task,
        "student": {
            "init": r.student.init,
            "layers": copied,
            "parameters": sum(p.numel() for p in student.parameters()),
            "hidden_size": student.config.hidden_size,
            "num_hidden_layers": student.config.num_hidden_layers,
        },
        "loss": {
            "kd_loss": spec.kd_loss,
            "matches": spec.matches,
            "weights": {k: vars(v) for k, v in spec.weights.items()},
            "task_weights": {t.name: vars(t.weight) for t in tasks},
            "sampling": r.transfer.sampling,
        },
        "training": {
            "resumed_from": facts["resumed_from"],
            "global_step": trainer.state.global_step,
            "train_rows": facts["train_rows"],
            "cached_teacher_logits": facts["cached_teacher_logits"],
            "cache": facts["cache"],
            "train_seconds": facts["train_seconds"],
            "log_history": trainer.state.log_history[-2:],
            "teacher_dtype": facts["teacher_dtype"],
            **batch_info(trainer.args),
        },
    }
