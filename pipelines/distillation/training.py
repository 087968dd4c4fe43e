"""One distillation run with the recipe's training settings, resuming from its checkpoints."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from distill.api import distill
from distill.combined import LossSpec
from pipelines.core.context import StageContext
from pipelines.train.callbacks import logging_callback, sampler_rng_sync
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
    **overrides,
):
    d = ctx.recipe.distill
    args = training_arguments(
        ctx.recipe,
        out_dir,
        epochs=d.epochs,
        learning_rate=d.learning_rate,
        batch_size=d.batch_size,
        eval_batch_size=d.eval_batch_size,
        warmup_ratio=d.warmup_ratio,
        weight_decay=d.weight_decay,
        train_rows=len(train_set),
    )
    for key, value in overrides.items():
        setattr(args, key, value)
    resume = last_checkpoint(out_dir)
    before = loss_sum_before(resume)  # read now: training rotates old checkpoints away
    if resume:
        log.info("resuming distillation from %s", resume)
    trainer = distill(
        teacher,
        student,
        train_set,
        tokenizer,
        spec,
        args,
        cached_logits=logits,
        resume_from_checkpoint=resume,
        callbacks=[logging_callback(), sampler_rng_sync(), *(callbacks or [])],
    )
    return trainer, resume, before
