"""Teacher stage: fine-tune a BERT-family classifier (or evaluate one already fine-tuned).

setup (data, tokenizer, model) → train with the HF `Trainer` (resuming from the newest complete
checkpoint) → evaluate → save in `save_pretrained` layout with the tokenizer.

Under torchrun every process runs this (DDP through the Trainer); rank 0 prepares the data and the
vocabulary first and alone saves the model (pipelines.core.distributed). Every process evaluates the
same (synchronised) model on the whole eval split, so no process waits on another's evaluation.
"""

from __future__ import annotations

import logging
import shutil

from pipelines.core.context import StageContext, StageResult
from pipelines.core.distributed import is_main, main_first
from pipelines.core.models import MODEL_ARTIFACTS, save_model
from pipelines.data.loading import require_rows, seeded_rows, tokenize
from pipelines.data.words import collator
from pipelines.teacher.model import build_teacher
from pipelines.train.callbacks import (
    logging_callback,
    progress_callback,
    sampler_rng_sync,
    show_progress,
)
from pipelines.train.checkpoints import (
    last_checkpoint,
    loss_sum_before,
    train_loss_across_resume,
)
from pipelines.train.evaluation import evaluate_model
from pipelines.train.settings import batch_info, resolve_device, training_arguments

log = logging.getLogger("distillery")


def main(ctx: StageContext) -> StageResult:
    from transformers import set_seed

    from pipelines.teacher.checked_trainer import CheckedTrainer

    recipe, t = ctx.recipe, ctx.recipe.teacher
    device = resolve_device(recipe)
    set_seed(recipe.seed)
    with main_first():  # dataset caches and the vocabulary: written once, then read
        data = ctx.data()
        require_rows(data.eval, recipe.data.eval_split, 1, "evaluation needs at least one row")
        tokenizer, model = build_teacher(ctx, data)
        eval_set = tokenize(data.eval, tokenizer, recipe)
        if t.finetune:
            require_rows(
                data.train,
                recipe.data.train_split,
                t.batch_size,
                f"teacher.batch_size is {t.batch_size}",
            )
            # teacher.train_rows: a seeded sample of the train split only (a base-size teacher
            # costs hours per epoch on CPU); the eval split and later stages keep every row
            train_rows = seeded_rows(data.train, t.train_rows, recipe.seed)
            train_set = tokenize(train_rows, tokenizer, recipe)
    train_info = {}
    if t.finetune:
        checkpoints = ctx.out / "checkpoints"
        args = training_arguments(recipe, checkpoints, t, train_rows=len(train_set))
        trainer = CheckedTrainer(
            model=model,
            args=args,
            train_dataset=train_set,
            data_collator=collator(tokenizer, recipe.task.type),
            processing_class=tokenizer,
            callbacks=[logging_callback(), sampler_rng_sync()],
        )
        resume = last_checkpoint(checkpoints)
        before = loss_sum_before(resume)  # read now: training rotates old checkpoints away
        if resume:
            log.info("resuming teacher training from %s", resume)
        shown = progress_callback("training")
        show_progress(trainer, shown)
        try:
            output = trainer.train(resume_from_checkpoint=resume)
        finally:
            shown.stop()  # a no-op after a finished run; the log says where a failed one stopped
        model = trainer.model
        train_info = {
            "resumed_from": resume,
            "global_step": trainer.state.global_step,
            "train_loss": train_loss_across_resume(
                output.training_loss, trainer.state.global_step, before
            ),
            "train_rows": len(train_set),
            "train_seconds": output.metrics.get("train_runtime"),
            **batch_info(args),
        }
    metrics, _ = evaluate_model(
        model, eval_set, tokenizer, t.eval_batch_size, device, "evaluate teacher"
    )
    if is_main():
        save_model(model, tokenizer, ctx.out)
        shutil.rmtree(ctx.out / "checkpoints", ignore_errors=True)
        shutil.rmtree(ctx.out / "vocab", ignore_errors=True)
    return StageResult(
        metrics=metrics,
        artifacts=dict(MODEL_ARTIFACTS),
        extra={
            "training": train_info,
            "device": device,
            "parameters": sum(p.numel() for p in model.parameters()),
        },
    )
