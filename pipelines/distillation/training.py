"""One distillation run with the recipe's training settings, resuming from its checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from distill.api import distill
from distill.combined import LossSpec
from pipelines.core.context import StageContext
from pipelines.train.callbacks import (
    logging_callback,
    progress_callback,
    sampler_rng_sync,
    seconds_before,
    seconds_in_checkpoints,
)
from pipelines.train.checkpoints import last_checkpoint, loss_sum_before
from pipelines.train.settings import training_arguments

log = logging.getLogger("distillery")


def train_student(  # -> (trainer, checkpoint resumed from, loss summed before it)
    ctx: StageContext,
    teacher,
    student,
    tokenizer,
    train_set,
    spec: LossSpec,
    out_dir: Path,
    logits: np.ndarray | None,
    callbacks: list | None = None,
    tasks=None,
    two_step_epochs: float = 0.0,
    **overrides,
):
    """One distillation run, or TinyBERT's two steps (`train_in_two_steps`, step 1 running
    `two_step_epochs`) when `two_step_epochs` > 0 and the spec has matches. `overrides` set
    fields of the one run's TrainingArguments."""
    if two_step_epochs and spec.matches:
        return train_in_two_steps(
            ctx, teacher, student, tokenizer, train_set, spec, out_dir, logits, two_step_epochs
        )
    args = training_arguments(ctx.recipe, out_dir, ctx.recipe.distill, train_rows=len(train_set))
    for key, value in overrides.items():
        setattr(args, key, value)
    resume = last_checkpoint(out_dir)
    before = loss_sum_before(resume)  # read now: training rotates old checkpoints away
    earlier_seconds = seconds_before(resume)
    if resume:
        log.info("resuming distillation from %s", resume)
    shown = progress_callback("training")
    try:
        trainer = distill(
            teacher,
            student,
            train_set,
            tokenizer,
            spec,
            args,
            cached_logits=logits,
            resume_from_checkpoint=resume,
            callbacks=[
                logging_callback(),
                sampler_rng_sync(),
                seconds_in_checkpoints(earlier_seconds),
                *(callbacks or []),
            ],
            tasks=tasks,
            progress=shown,
        )
    finally:
        shown.stop()  # a no-op after a finished run; the log line says where a failed one stopped
    trainer.seconds_before_resume = earlier_seconds  # the distill stage adds them to its time
    return trainer, resume, before


def two_step(spec: LossSpec) -> tuple[LossSpec, LossSpec]:
    """TinyBERT's task distillation in two steps: the intermediate matches alone (no task, no
    KD), then the logits alone (task and KD, no matches)."""
    from dataclasses import replace

    from distill.combined import Schedule

    matches_only = replace(
        spec,
        weights={
            **{k: v for k, v in spec.weights.items() if k in spec.matches},
            "task": Schedule(0.0),
            "kd": Schedule(0.0),
        },
    )
    logits_only = replace(
        spec,
        matches=[],
        layer_map=[],
        weights={k: v for k, v in spec.weights.items() if k in ("task", "kd")},
    )
    return matches_only, logits_only


def train_in_two_steps(
    ctx: StageContext,
    teacher,
    student,
    tokenizer,
    train_set,
    spec,
    checkpoints: Path,
    logits,
    first_epochs: float | None = None,
):
    """Step 1 (`first_epochs`, default `distill.two_step`, of matches alone, the teacher run
    live), then step 2 (the
    recipe's epochs of logits, from cached logits when there are). A finished step 1 leaves the
    student in `checkpoints/step1-done`, so a resumed run starts at step 2."""
    from pipelines.core.models import head_class, saved_head

    first, second = two_step(spec)
    done = checkpoints / "step1-done"
    if (done / "config.json").is_file():
        student = head_class(saved_head(done), "AutoModel").from_pretrained(
            done, use_safetensors=True
        )
        log.info("two-step distillation: step 1 already done (%s)", done)
    else:
        trainer, _, _ = train_student(
            ctx,
            teacher,
            student,
            tokenizer,
            train_set,
            first,
            checkpoints / "step1",
            None,
            num_train_epochs=first_epochs or ctx.recipe.distill.two_step,
        )
        student = trainer.model.student
        student.save_pretrained(done, safe_serialization=True)
    return train_student(
        ctx, teacher, student, tokenizer, train_set, second, checkpoints / "step2", logits
    )
