"""Distill stage: teacher (from the teacher stage) → student trained on the combined loss.

setup (teacher, data, student, loss spec, cached teacher logits) → `distill.distill` → evaluate →
save the student in `save_pretrained` layout (no projections) → optional ablation table.

Under torchrun every process runs all of it (DDP through the Trainer, evaluation on every rank
over the whole eval split); rank 0 alone writes the cache, the student and the tables
(pipelines.core.distributed).
"""

from __future__ import annotations

import copy
import logging
import shutil
import time

import numpy as np

from modelkit.task_types import TASK_TYPES
from pipelines.core.config import TORCH_DTYPES, StudentConfig
from pipelines.core.context import StageContext, StageResult
from pipelines.core.distributed import is_main, main_first
from pipelines.core.models import MODEL_ARTIFACTS, load_stage_model, save_model
from pipelines.data.loading import require_rows, tokenize
from pipelines.distillation.ablation import int8_accuracy, run_ablation
from pipelines.distillation.augmented_set import augmented_set, train_texts
from pipelines.distillation.logits import cached_teacher_logits
from pipelines.distillation.loss import loss_spec
from pipelines.distillation.qat_phase import quantization_aware
from pipelines.distillation.speedup import measure_cache_speedup
from pipelines.distillation.student_choice import build_student
from pipelines.distillation.training import train_in_two_steps, train_student, two_step
from pipelines.train.checkpoints import train_loss_across_resume
from pipelines.train.evaluation import evaluate_model
from pipelines.train.settings import batch_info, resolve_device, resolve_teacher_dtype

log = logging.getLogger("distillery")


def main(ctx: StageContext) -> StageResult:
    import torch
    from datasets import concatenate_datasets
    from transformers import set_seed

    r, d = ctx.recipe, ctx.recipe.distill
    picked = (ctx.inputs.get("search") or {}).get("chosen")
    if picked:  # the search stage's pick replaces the recipe's `student` section
        r = r.model_copy(update={"student": StudentConfig(**picked["student"])})
        log.info("distill: the student is the search's pick %s (%s)", picked["id"], picked["why"])
    device = resolve_device(r)
    set_seed(r.seed)
    teacher, tokenizer = load_stage_model(ctx.input_dir("teacher"), ctx.recipe.security)
    with main_first():  # under DDP rank 0 fills the dataset caches, then the others read them
        data = ctx.data()
        require_rows(
            data.train, r.data.train_split, d.batch_size, f"distill.batch_size is {d.batch_size}"
        )
        require_rows(data.eval, r.data.eval_split, 1, "evaluation needs at least one row")
        train_set, eval_set = tokenize(data.train, tokenizer, r), tokenize(data.eval, tokenizer, r)
    student, copied = build_student(r, teacher, tokenizer, train_set)
    initial = copy.deepcopy(student)  # the same starting point for every ablation variant
    spec = loss_spec(
        d,
        student.config.num_hidden_layers,
        teacher.config.num_hidden_layers,
        copied,
        task_type=ctx.recipe.task.type,
    )
    teacher_dtype = resolve_teacher_dtype(r, device)  # after the student copied its fp32 layers
    teacher = teacher.to(getattr(torch, TORCH_DTYPES[teacher_dtype]))

    cache_info: dict = {}
    logits = None
    live_teacher = spec.needs_teacher_features and not d.two_step  # step 2 of two is logits only
    # per-token logits ([rows, tokens, labels]) are not cached: the teacher runs live
    per_token = TASK_TYPES[r.task.type].token_level
    if d.cache_teacher_logits and per_token:
        log.info("distill: token classification runs the teacher live (no logit cache)")
    if d.cache_teacher_logits and not live_teacher and not per_token:
        logits, cache_info = cached_teacher_logits(ctx, teacher, train_set, tokenizer, device)
    training_rows, training_logits, augment_info = train_set, logits, None
    if d.augment.factor > 0:  # the augmented training set: new rows the teacher labelled
        texts = train_texts(data.train, r.task.text_columns)
        rows, rows_logits, augment_info = augmented_set(ctx, teacher, tokenizer, texts, device)
        training_rows = concatenate_datasets([train_set, rows.cast(train_set.features)])
        if logits is not None:
            training_logits = np.concatenate([logits, rows_logits])

    checkpoints = ctx.out / "checkpoints"
    started = time.time()
    if d.two_step and spec.matches:
        trainer, resumed, before = train_in_two_steps(
            ctx, teacher, student, tokenizer, training_rows, spec, checkpoints, training_logits
        )
    else:
        trainer, resumed, before = train_student(
            ctx, teacher, student, tokenizer, training_rows, spec, checkpoints, training_logits
        )
    # a resumed run: this session's time plus what the checkpoint had trained (callbacks.py)
    train_seconds = time.time() - started + getattr(trainer, "seconds_before_resume", 0.0)
    student = trainer.model.student  # the projections stay behind (trainer.model.loss)
    metrics, _ = evaluate_model(
        student, eval_set, tokenizer, d.eval_batch_size, device, "evaluate student"
    )
    teacher_acc = ctx.inputs["teacher"]["metrics"]["accuracy"]
    metrics["teacher_accuracy"] = teacher_acc
    metrics["retained"] = metrics["accuracy"] / teacher_acc if teacher_acc else 0.0

    if is_main():  # under DDP every rank holds the same student; rank 0 saves it
        save_model(student, tokenizer, ctx.out)

    extra = {
        "student": {
            "search_pick": picked["id"] if picked else None,
            "init": r.student.init,
            "init_weights": r.student.init_weights if r.student.init == "config" else None,
            "layers": copied,
            "parameters": sum(p.numel() for p in student.parameters()),
            "hidden_size": student.config.hidden_size,
            "num_hidden_layers": student.config.num_hidden_layers,
        },
        "teacher_parameters": sum(p.numel() for p in teacher.parameters()),
        "loss": {
            "kd_loss": spec.kd_loss,
            "matches": spec.matches,
            "layer_map": spec.layer_map,
            "weights": {k: vars(v) for k, v in spec.weights.items()},
            "temperature": vars(spec.temperature),
            "projections": sorted(trainer.model.loss.projections.keys()),
        },
        "training": {
            "resumed_from": resumed,
            "global_step": trainer.state.global_step,
            "train_loss": train_loss_across_resume(
                trainer.state.log_history[-1].get("train_loss", float("nan")),
                trainer.state.global_step,
                before,
            ),
            "train_rows": len(training_rows),
            "augmented_rows": len(training_rows) - len(train_set),
            "two_step": d.two_step if spec.matches else 0.0,
            "cached_teacher_logits": training_logits is not None,
            "cache": cache_info,
            "train_seconds": round(train_seconds, 1),
            "log_history": trainer.state.log_history[-1:],
            "teacher_dtype": teacher_dtype,
            **batch_info(trainer.args),
        },
    }
    if augment_info:
        extra["augment"] = augment_info
    if d.qat.epochs > 0:
        final_spec = two_step(spec)[1] if d.two_step and spec.matches else spec
        extra["qat"] = quantization_aware(
            ctx,
            teacher,
            student,
            tokenizer,
            training_rows,
            eval_set,
            final_spec,
            training_logits,
            device,
        )
        metrics["qat_fake_quant_accuracy"] = extra["qat"]["fake_quant_accuracy"]
    if d.cache_speedup_steps:
        extra["cache_speedup"] = measure_cache_speedup(
            ctx, teacher, initial, tokenizer, train_set, device, copied
        )
        metrics["cache_speedup"] = extra["cache_speedup"]["speedup"]
    if d.ablation:
        main_row = {
            "accuracy": metrics["accuracy"],
            "int8_accuracy": int8_accuracy(student, tokenizer, eval_set),
            "train_rows": len(training_rows),
            "seconds": round(train_seconds, 1),
            "weights": {k: v.start for k, v in spec.weights.items()},
            "matches": list(spec.matches),
            "two_step": d.two_step if spec.matches else 0.0,
        }
        extra["ablation"] = run_ablation(
            ctx,
            teacher,
            initial,
            tokenizer,
            (train_set, logits),
            (training_rows, training_logits) if augment_info else None,
            eval_set,
            device,
            copied,
            {**main_row, "augment": augment_info is not None, "qat": extra.get("qat")},
        )
    # Checkpoints go last: if the measurements above fail, a rerun resumes from the final one.
    if is_main():
        shutil.rmtree(checkpoints, ignore_errors=True)
    return StageResult(
        metrics=metrics,
        artifacts=dict(MODEL_ARTIFACTS),
        extra=extra,
    )
