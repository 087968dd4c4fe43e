"""Distill stage: teacher (from the teacher stage) → student trained on the combined loss.

setup (teacher, data, student, loss spec, cached teacher logits) → `distill.distill` → evaluate →
save the student in `save_pretrained` layout (no projections) → optional ablation table.

Under torchrun every process runs all of it (DDP through the Trainer, evaluation on every rank
over the whole eval split); rank 0 alone writes the cache, the student and the tables
(pipelines.distributed).
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from distill.api import distill, teacher_logits
from distill.combined import LossSpec, Schedule
from distill.layer_map import resolve as resolve_layer_map
from distill.prune import prune_teacher
from distill.student import (
    check_same_vocab,
    from_config,
    from_teacher_layers,
    load_pretrained_student,
)
from pipelines.config import DistillConfig, Recipe
from pipelines.data import require_rows, tokenize
from pipelines.distributed import is_main, main_first
from pipelines.errors import ConfigError
from pipelines.evaluation import evaluate_model
from pipelines.models import load_stage_model, load_tokenizer, resolve_model
from pipelines.runs import atomic_write_json, atomic_write_text, canonical_hash
from pipelines.stages import StageContext, StageResult
from pipelines.training import (
    TORCH_DTYPES,
    batch_info,
    last_checkpoint,
    logging_callback,
    resolve_device,
    resolve_teacher_dtype,
    sampler_rng_sync,
    step_timer,
    training_arguments,
)

log = logging.getLogger("distillery")


def build_student(recipe: Recipe, teacher, tokenizer_t, train_set=None):
    """(student, teacher layers it was copied or cut from, or None)."""
    s = recipe.student
    try:
        if s.init == "teacher_layers":
            return from_teacher_layers(teacher, s.layers), list(s.layers)
        if s.init == "config" and s.init_weights == "prune":
            student, kept = prune_teacher(
                teacher,
                s.config,
                s.layers,
                calibration_batches(train_set, tokenizer_t, s.prune_rows, recipe.seed),
                recipe.seed,
            )
            log.info(
                "student cut from teacher layers %s: %d of %d channels, heads per layer %s",
                s.layers,
                len(kept["channels"]),
                teacher.config.hidden_size,
                kept["heads"],
            )
            return student, list(s.layers)
        if s.init == "config":
            shape = s.config
            return from_config(
                teacher,
                shape.num_hidden_layers,
                shape.hidden_size,
                shape.num_attention_heads,
                shape.intermediate_size,
                s.init_embeddings,
                recipe.seed,
            ), None
        source = resolve_model(s.model, recipe.security, "student.model")
        check_same_vocab(tokenizer_t, load_tokenizer(source, recipe.security), "student.model")
        return load_pretrained_student(
            source.value,
            teacher,
            use_safetensors=not recipe.security.allow_pickle,
            trust_remote_code=recipe.security.trust_remote_code,
        ), None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def calibration_batches(train_set, tokenizer, rows: int, seed: int, batch_size: int = 64):
    """A seeded sample of `rows` training rows, padded per batch: what the teacher runs on to rank
    channels, heads and neurons for pruning."""
    from transformers import DataCollatorWithPadding

    if train_set is None:
        raise ValueError("student.init_weights 'prune' needs the training split to rank weights")
    sample = train_set.shuffle(seed=seed).select(range(min(rows, len(train_set))))
    keep = [
        c for c in ("input_ids", "attention_mask", "token_type_ids") if c in sample.column_names
    ]
    sample = sample.select_columns(keep)
    pad = DataCollatorWithPadding(tokenizer)
    for start in range(0, len(sample), batch_size):
        yield pad([sample[i] for i in range(start, min(start + batch_size, len(sample)))])


def loss_spec(
    d: DistillConfig, n_student: int, n_teacher: int, copied: list[int] | None
) -> LossSpec:
    def schedule(name: str, start: float) -> Schedule:
        cfg = d.weight_schedules.get(name)
        return Schedule(start, cfg.kind, cfg.end) if cfg else Schedule(start)

    weights = {"task": 0.5, "kd": 0.5, **{m: 1.0 for m in d.matches}, **d.weights}
    try:
        layer_map = (
            resolve_layer_map(d.layer_map, n_student, n_teacher, copied) if d.matches else []
        )
        return LossSpec(
            kd_loss=d.kd_loss,
            temperature=Schedule(
                d.temperature, d.temperature_schedule.kind, d.temperature_schedule.end
            ),
            weights={k: schedule(k, v) for k, v in weights.items()},
            matches=list(d.matches),
            layer_map=layer_map,
            label_smoothing=d.label_smoothing,
        )
    except ValueError as exc:
        raise ConfigError(f"distill: {exc}") from None


def cached_teacher_logits(
    ctx: StageContext, teacher, train_set, tokenizer, device: str
) -> tuple[np.ndarray, dict]:
    """Teacher logits over the train split, stored under runs/<name>/cache/ keyed by teacher + data.

    Under DDP rank 0 computes and writes them; the other ranks wait, then load the file.
    """
    with main_first():
        return _cached_teacher_logits(ctx, teacher, train_set, tokenizer, device)


def _cached_teacher_logits(ctx, teacher, train_set, tokenizer, device) -> tuple[np.ndarray, dict]:
    r = ctx.recipe
    key = canonical_hash(
        {
            "teacher": ctx.inputs["teacher"]["hash"],
            "data": ctx.data().data_hash,
            "rows": len(train_set),
            "max_length": r.data.max_length,
            "max_train_samples": r.data.max_train_samples,
            "seed": r.seed,
        }
    )
    path = ctx.run.path / "cache" / f"teacher-logits-{key[:20]}.npy"
    if path.is_file():
        logits = np.load(path, allow_pickle=False)
        if logits.shape[0] == len(train_set):
            return logits, {"path": str(path), "reused": True, "seconds": 0.0}
    started = time.time()
    logits = teacher_logits(teacher, train_set, tokenizer, r.distill.eval_batch_size, device)
    seconds = time.time() - started
    if is_main():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, logits, allow_pickle=False)
        tmp.replace(path)
    return logits, {"path": str(path), "reused": False, "seconds": round(seconds, 2)}


def train_student(
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
    return trainer, resume


def main(ctx: StageContext) -> StageResult:
    import torch
    from transformers import set_seed

    r, d = ctx.recipe, ctx.recipe.distill
    device = resolve_device(r)
    set_seed(r.seed)
    teacher, tokenizer = load_stage_model(ctx.input_dir("teacher"))
    with main_first():  # under DDP rank 0 fills the dataset caches, then the others read them
        data = ctx.data()
        require_rows(
            data.train, r.data.train_split, d.batch_size, f"distill.batch_size is {d.batch_size}"
        )
        require_rows(data.eval, r.data.eval_split, 1, "evaluation needs at least one row")
        train_set, eval_set = tokenize(data.train, tokenizer, r), tokenize(data.eval, tokenizer, r)
    student, copied = build_student(r, teacher, tokenizer, train_set)
    initial = copy.deepcopy(student)  # the same starting point for every ablation variant
    spec = loss_spec(d, student.config.num_hidden_layers, teacher.config.num_hidden_layers, copied)
    teacher_dtype = resolve_teacher_dtype(r, device)  # after the student copied its fp32 layers
    teacher = teacher.to(getattr(torch, TORCH_DTYPES[teacher_dtype]))

    cache_info: dict = {}
    logits = None
    if d.cache_teacher_logits and not spec.needs_teacher_features:
        logits, cache_info = cached_teacher_logits(ctx, teacher, train_set, tokenizer, device)

    checkpoints = ctx.out / "checkpoints"
    started = time.time()
    trainer, resumed = train_student(
        ctx, teacher, student, tokenizer, train_set, spec, checkpoints, logits
    )
    train_seconds = time.time() - started
    student = trainer.model
    metrics, _ = evaluate_model(
        student, eval_set, tokenizer, d.eval_batch_size, device, "evaluate student"
    )
    teacher_acc = ctx.inputs["teacher"]["metrics"]["accuracy"]
    metrics["teacher_accuracy"] = teacher_acc
    metrics["retained"] = metrics["accuracy"] / teacher_acc if teacher_acc else 0.0

    if is_main():  # under DDP every rank holds the same student; rank 0 saves it
        student.save_pretrained(ctx.out, safe_serialization=True)
        tokenizer.save_pretrained(ctx.out)

    extra = {
        "student": {
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
            "projections": sorted(trainer.loss_fn.projections.keys()),
        },
        "training": {
            "resumed_from": resumed,
            "global_step": trainer.state.global_step,
            "train_rows": len(train_set),
            "cached_teacher_logits": logits is not None,
            "cache": cache_info,
            "train_seconds": round(train_seconds, 1),
            "log_history": trainer.state.log_history[-1:],
            "teacher_dtype": teacher_dtype,
            **batch_info(trainer.args),
        },
    }
    if d.cache_speedup_steps:
        extra["cache_speedup"] = measure_cache_speedup(
            ctx, teacher, initial, tokenizer, train_set, device, copied
        )
        metrics["cache_speedup"] = extra["cache_speedup"]["speedup"]
    if d.ablation:
        main_row = {
            "accuracy": metrics["accuracy"],
            "seconds": round(train_seconds, 1),
            "weights": {k: v.start for k, v in spec.weights.items()},
            "matches": list(spec.matches),
        }
        extra["ablation"] = run_ablation(
            ctx, teacher, initial, tokenizer, train_set, eval_set, device, copied, main_row
        )
    # Checkpoints go last: if the measurements above fail, a rerun resumes from the final one.
    if is_main():
        shutil.rmtree(checkpoints, ignore_errors=True)
    return StageResult(
        metrics=metrics,
        artifacts={
            "model": "model.safetensors",
            "config": "config.json",
            "tokenizer": "tokenizer.json",
        },
        extra=extra,
    )


def measure_cache_speedup(ctx, teacher, initial, tokenizer, train_set, device, copied) -> dict:
    """Logits-only KD for the same N steps, teacher recomputed vs cached logits, back to back.

    Times the training steps only; building the cache (one teacher pass, reused across epochs and
    runs) is reported separately as `cache_build_seconds`.
    """
    d = ctx.recipe.distill
    steps = d.cache_speedup_steps
    n_s, n_t = initial.config.num_hidden_layers, teacher.config.num_hidden_layers
    spec = loss_spec(ablation_spec("logits_kd", d), n_s, n_t, copied)
    logits, cache = cached_teacher_logits(ctx, teacher, train_set, tokenizer, device)
    timings, per_step = {}, {}
    skip = min(10, steps // 5)
    for mode in ("recompute", "cached"):
        out = ctx.out / f"speedup-{mode}"
        timer = step_timer(skip)
        started = time.time()
        train_student(
            ctx,
            teacher,
            copy.deepcopy(initial),
            tokenizer,
            train_set,
            spec,
            out,
            logits if mode == "cached" else None,
            [timer],
            max_steps=steps,
            save_strategy="no",
            report_to=[],
        )
        timings[mode] = time.time() - started
        per_step[mode] = timer.seconds_per_step
        if is_main():
            shutil.rmtree(out, ignore_errors=True)
    return {
        "steps": steps,
        "timed_steps": steps - skip,
        "recompute_seconds_per_step": round(per_step["recompute"], 5),
        "cached_seconds_per_step": round(per_step["cached"], 5),
        "speedup": round(per_step["recompute"] / per_step["cached"], 3),
        "recompute_seconds_total": round(timings["recompute"], 2),
        "cached_seconds_total": round(timings["cached"], 2),
        "cache_build_seconds": cache["seconds"],
        "cache_reused": cache["reused"],
    }


ABLATION_VARIANTS = ("labels_only", "logits_kd", "logits_kd_matches")


def ablation_spec(variant: str, d: DistillConfig) -> DistillConfig:
    """The recipe's distill section, changed to one ablation variant."""
    base = copy.deepcopy(d)
    kd_weights = {"task": d.weights.get("task", 0.5), "kd": d.weights.get("kd", 0.5) or 0.5}
    if variant == "labels_only":
        base.weights, base.matches = {"task": 1.0, "kd": 0.0}, []
    elif variant == "logits_kd":
        base.weights, base.matches = kd_weights, []
    else:
        base.matches = d.matches or ["hidden_mse", "attention_kl"]
        base.weights = {**kd_weights, **{m: d.weights.get(m, 1.0) for m in base.matches}}
    base.weight_schedules = {k: v for k, v in d.weight_schedules.items() if k in base.weights}
    return base


def run_ablation(
    ctx, teacher, initial, tokenizer, train_set, eval_set, device, copied, main_row: dict
) -> dict:
    """Train the same student three ways and write ablation.json / ablation.md in the stage folder.

    A variant whose loss equals the recipe's own (same weights and matches) reuses the main run's
    result instead of training the same thing twice.
    """
    d = ctx.recipe.distill
    rows = []
    for variant in ABLATION_VARIANTS:
        cfg = ablation_spec(variant, d)
        full_weights = {"task": 0.5, "kd": 0.5, **{m: 1.0 for m in cfg.matches}, **cfg.weights}
        if cfg.matches == main_row["matches"] and full_weights == main_row["weights"]:
            rows.append({"variant": variant, **main_row, "reused_main_run": True})
            continue
        spec = loss_spec(
            cfg, initial.config.num_hidden_layers, teacher.config.num_hidden_layers, copied
        )
        logits = None
        if d.cache_teacher_logits and not spec.needs_teacher_features:
            logits, _ = cached_teacher_logits(ctx, teacher, train_set, tokenizer, device)
        out = ctx.out / "ablation" / variant
        started = time.time()
        trainer, _ = train_student(
            ctx,
            teacher,
            copy.deepcopy(initial),
            tokenizer,
            train_set,
            spec,
            out,
            logits,
            save_strategy="no",
        )
        seconds = time.time() - started
        metrics, _ = evaluate_model(
            trainer.model, eval_set, tokenizer, d.eval_batch_size, device, variant
        )
        rows.append(
            {
                "variant": variant,
                "accuracy": metrics["accuracy"],
                "seconds": round(seconds, 1),
                "weights": cfg.weights,
                "matches": cfg.matches,
            }
        )
        if is_main():
            shutil.rmtree(out, ignore_errors=True)
    base = rows[0]["accuracy"]
    lines = [
        "| variant | accuracy | Δ vs labels only (points) | train seconds | weights | matches |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        row["delta_points"] = round(100 * (row["accuracy"] - base), 2)
        lines.append(
            f"| {row['variant']} | {row['accuracy']:.4f} | {row['delta_points']:+.2f} | "
            f"{row['seconds']} | {json.dumps(row['weights'])} | {', '.join(row['matches']) or '-'} |"
        )
    if is_main():
        atomic_write_json(ctx.out / "ablation.json", rows)
        atomic_write_text(ctx.out / "ablation.md", "\n".join(lines) + "\n")
        shutil.rmtree(ctx.out / "ablation", ignore_errors=True)
    return {"rows": rows, "table": "ablation.md"}
