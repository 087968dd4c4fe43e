"""Distill stage: teacher (from the teacher stage) → student trained on the combined loss.

defaults sized to the data (`distill.auto`) → setup (teacher, data, student, loss spec) →
training rows (cached teacher logits, unlabelled text and augmented rows the teacher labels) →
`distill.distill` → evaluate → save the student in `save_pretrained` layout (no projections) →
optional measurements (QAT phase, cache speed-up, ablation table).

Under torchrun every process runs all of it (DDP through the Trainer, evaluation on every rank
over the whole eval split); rank 0 alone writes the cache, the student and the tables
(pipelines.core.distributed). A transfer recipe runs the stage's `multitask` variant instead
(pipelines/multitask/distill_variant.py).
"""

from __future__ import annotations

import copy
import logging
import shutil
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from distill.combined import LossSpec
from modelkit.task_types import TASK_TYPES
from pipelines.core.config import TORCH_DTYPES, Recipe, StudentConfig
from pipelines.core.context import StageContext, StageResult
from pipelines.core.distributed import is_main, main_first
from pipelines.core.errors import DistilleryError
from pipelines.core.models import MODEL_ARTIFACTS, load_stage_model, save_model
from pipelines.data.loading import require_rows, tokenize
from pipelines.distillation.ablation import int8_accuracy, run_ablation
from pipelines.distillation.augmented_set import with_augmented_rows
from pipelines.distillation.auto_defaults import sized_to_data
from pipelines.distillation.logits import cached_teacher_logits
from pipelines.distillation.loss import loss_spec
from pipelines.distillation.qat_phase import quantization_aware
from pipelines.distillation.speedup import measure_cache_speedup
from pipelines.distillation.student_choice import build_student, student_tokenizer
from pipelines.distillation.teacher_guard import check_teacher_lift
from pipelines.distillation.training import train_student, two_step
from pipelines.train.checkpoints import train_loss_across_resume
from pipelines.train.evaluation import evaluate_model
from pipelines.train.settings import batch_info, resolve_device, resolve_teacher_dtype

log = logging.getLogger("distillery")


@dataclass
class Setup:
    """What the stage trains with: the recipe (with the search's pick as its student), the
    teacher in its training dtype, the student and its copy before training, the loss."""

    recipe: Recipe
    picked: dict | None
    device: str
    teacher: Any
    tokenizer: Any  # the student's: the teacher's, or its own with `student.tokenizer: own`
    student: Any
    initial: Any  # the same starting point for every ablation variant
    copied: list
    spec: LossSpec
    teacher_dtype: str
    train_set: Any  # tokenized by the student's tokenizer
    eval_set: Any
    teacher_tokenizer: Any  # the same object as `tokenizer` unless the student reads its own
    teacher_rows: Any  # the train split as the teacher's tokenizer reads it (its logits' input)


def main(ctx: StageContext) -> StageResult:
    ctx, auto_defaults = sized_to_data(ctx)  # the recipe's distill section, sized to the data
    s = setup(ctx)
    d = ctx.recipe.distill
    logits, cache_info = teacher_logits(ctx, s)
    rows, rows_logits, added = with_augmented_rows(
        ctx, s.teacher, s.tokenizer, s.train_set, logits, s.device, s.teacher_tokenizer
    )
    checkpoints = ctx.out / "checkpoints"
    started = time.time()
    trainer, resumed, before = train_student(
        ctx,
        s.teacher,
        s.student,
        s.tokenizer,
        rows,
        s.spec,
        checkpoints,
        rows_logits,
        two_step_epochs=d.two_step,
    )
    # a resumed run: this session's time plus what the checkpoint had trained (callbacks.py)
    train_seconds = time.time() - started + getattr(trainer, "seconds_before_resume", 0.0)
    student = trainer.model.student  # the projections stay behind (trainer.model.loss)
    metrics, _ = evaluate_model(
        student, s.eval_set, s.tokenizer, d.eval_batch_size, s.device, "evaluate student"
    )
    teacher_acc = ctx.inputs["teacher"]["metrics"]["accuracy"]
    metrics["teacher_accuracy"] = teacher_acc
    metrics["retained"] = metrics["accuracy"] / teacher_acc if teacher_acc else 0.0
    if is_main():  # under DDP every rank holds the same student; rank 0 saves it
        save_model(student, s.tokenizer, ctx.out)

    facts = {
        "resumed_from": resumed,
        "before": before,
        "cache": cache_info,
        "train_seconds": train_seconds,
        "cached_teacher_logits": rows_logits is not None,
        "added": added,
    }
    extra = training_facts(s, student, trainer, rows, facts)
    extra.update(added)  # "augment", "unlabelled": the rows the teacher labelled
    if auto_defaults:
        extra["auto_defaults"] = auto_defaults
    measure(ctx, s, student, (rows, rows_logits), logits, metrics, extra, train_seconds)
    # Checkpoints go last: if the measurements above fail, a rerun resumes from the final one.
    if is_main():
        shutil.rmtree(checkpoints, ignore_errors=True)
    return StageResult(metrics=metrics, artifacts=dict(MODEL_ARTIFACTS), extra=extra)


def setup(ctx: StageContext) -> Setup:
    """Teacher, data and student as the recipe (or the search's pick) asks, the loss spec, and
    the teacher cast to its training dtype once the student has copied its fp32 layers."""
    import torch
    from transformers import set_seed

    r, d = ctx.recipe, ctx.recipe.distill
    picked = (ctx.inputs.get("search") or {}).get("chosen")
    if picked:  # the search stage's pick replaces the recipe's `student` section
        r = r.model_copy(update={"student": StudentConfig(**picked["student"])})
        log.info("distill: the student is the search's pick %s (%s)", picked["id"], picked["why"])
    device = resolve_device(r)
    set_seed(r.seed)
    teacher, tokenizer_t = load_stage_model(ctx.input_dir("teacher"), ctx.recipe.security)
    tokenizer = student_tokenizer(r, tokenizer_t)
    with main_first():  # under DDP rank 0 fills the dataset caches, then the others read them
        data = ctx.data()
        require_rows(
            data.train, r.data.train_split, d.batch_size, f"distill.batch_size is {d.batch_size}"
        )
        require_rows(data.eval, r.data.eval_split, 1, "evaluation needs at least one row")
        teacher_accuracy = ctx.inputs["teacher"]["metrics"]["accuracy"]
        check_teacher_lift(r, teacher_accuracy, list(data.eval["labels"]))
        train_set, eval_set = tokenize(data.train, tokenizer, r), tokenize(data.eval, tokenizer, r)
        # the same rows of text in the same order, as the teacher reads them
        teacher_rows = (
            train_set if tokenizer is tokenizer_t else tokenize(data.train, tokenizer_t, r)
        )
    student, copied = build_student(r, teacher, tokenizer_t, teacher_rows)
    initial = copy.deepcopy(student)
    spec = loss_spec(
        d,
        student.config.num_hidden_layers,
        teacher.config.num_hidden_layers,
        copied,
        task_type=ctx.recipe.task.type,
    )
    teacher_dtype = resolve_teacher_dtype(r, device)  # after the student copied its fp32 layers
    teacher = teacher.to(getattr(torch, TORCH_DTYPES[teacher_dtype]))
    return Setup(
        r,
        picked,
        device,
        teacher,
        tokenizer,
        student,
        initial,
        copied,
        spec,
        teacher_dtype,
        train_set,
        eval_set,
        tokenizer_t,
        teacher_rows,
    )


def teacher_logits(ctx: StageContext, s: Setup) -> tuple[np.ndarray | None, dict]:
    """The teacher's logits on the train split, cached once per (teacher, data), or None when
    the teacher runs live (features matched in one step, or per-token logits). The teacher reads
    each row through its own tokenizer, so a student with another (`student.tokenizer: own`,
    which the recipe's refusals keep on cached logits) learns the same logits per row of text."""
    d = ctx.recipe.distill
    live_teacher = s.spec.needs_teacher_features and not d.two_step  # step 2 of two: logits only
    # per-token logits ([rows, tokens, labels]) are not cached: the teacher runs live
    per_token = TASK_TYPES[s.recipe.task.type].token_level
    if d.cache_teacher_logits and per_token:
        log.info("distill: token classification runs the teacher live (no logit cache)")
    if d.cache_teacher_logits and not live_teacher and not per_token:
        return cached_teacher_logits(ctx, s.teacher, s.teacher_rows, s.teacher_tokenizer, s.device)
    if s.tokenizer is not s.teacher_tokenizer:  # the recipe's refusals keep this from happening
        raise DistilleryError(
            "distill: a student with its own tokenizer learns from cached teacher logits only; "
            "set distill.cache_teacher_logits: true and leave distill.matches empty."
        )
    return None, {}


def training_facts(s: Setup, student, trainer, rows, facts: dict) -> dict:
    """The manifest's `student`, `teacher_parameters`, `loss` and `training` entries."""
    r, d, spec = s.recipe, s.recipe.distill, s.spec
    return {
        "student": {
            "search_pick": s.picked["id"] if s.picked else None,
            "init": r.student.init,
            "init_weights": r.student.init_weights if r.student.init == "config" else None,
            "layers": s.copied,
            "model_layers": r.student.model_layers,
            "tokenizer": r.student.tokenizer,
            "vocab_size": len(s.tokenizer),
            "parameters": sum(p.numel() for p in student.parameters()),
            "hidden_size": student.config.hidden_size,
            "num_hidden_layers": student.config.num_hidden_layers,
        },
        "teacher_parameters": sum(p.numel() for p in s.teacher.parameters()),
        "loss": {
            "kd_loss": spec.kd_loss,
            "matches": spec.matches,
            "layer_map": spec.layer_map,
            "weights": {k: vars(v) for k, v in spec.weights.items()},
            "temperature": vars(spec.temperature),
            "projections": sorted(trainer.model.loss.projections.keys()),
        },
        "training": {
            "resumed_from": facts["resumed_from"],
            "global_step": trainer.state.global_step,
            "train_loss": train_loss_across_resume(
                trainer.state.log_history[-1].get("train_loss", float("nan")),
                trainer.state.global_step,
                facts["before"],
            ),
            "train_rows": len(rows),
            "augmented_rows": (facts["added"].get("augment") or {}).get("rows", 0),
            "unlabelled_rows": (facts["added"].get("unlabelled") or {}).get("rows", 0),
            "two_step": d.two_step if spec.matches else 0.0,
            "cached_teacher_logits": facts["cached_teacher_logits"],
            "cache": facts["cache"],
            "train_seconds": round(facts["train_seconds"], 1),
            "log_history": trainer.state.log_history[-1:],
            "teacher_dtype": s.teacher_dtype,
            **batch_info(trainer.args),
        },
    }


def measure(ctx: StageContext, s: Setup, student, training, logits, metrics, extra, seconds):
    """The optional measurements after training, into `metrics` and `extra`: the QAT phase,
    the cache speed-up and the ablation table. `training` is (rows, their logits)."""
    d, spec = ctx.recipe.distill, s.spec
    rows, rows_logits = training
    if d.qat.epochs > 0:
        final_spec = two_step(spec)[1] if d.two_step and spec.matches else spec
        extra["qat"] = quantization_aware(
            ctx,
            s.teacher,
            student,
            s.tokenizer,
            rows,
            s.eval_set,
            final_spec,
            rows_logits,
            s.device,
        )
        metrics["qat_fake_quant_accuracy"] = extra["qat"]["fake_quant_accuracy"]
    if d.cache_speedup_steps:
        extra["cache_speedup"] = measure_cache_speedup(
            ctx, s.teacher, s.initial, s.tokenizer, s.train_set, s.device, s.copied
        )
        metrics["cache_speedup"] = extra["cache_speedup"]["speedup"]
    if d.ablation:
        augmented = "augment" in extra or "unlabelled" in extra  # rows beyond the split
        main_row = {
            "accuracy": metrics["accuracy"],
            "int8_accuracy": int8_accuracy(student, s.tokenizer, s.eval_set),
            "train_rows": len(rows),
            "seconds": round(seconds, 1),
            "weights": {k: v.start for k, v in spec.weights.items()},
            "matches": list(spec.matches),
            "two_step": d.two_step if spec.matches else 0.0,
        }
        extra["ablation"] = run_ablation(
            ctx,
            s.teacher,
            s.initial,
            s.tokenizer,
            (s.train_set, logits),
            (rows, rows_logits) if augmented else None,
            s.eval_set,
            s.device,
            s.copied,
            {**main_row, "augment": augmented, "qat": extra.get("qat")},
        )
