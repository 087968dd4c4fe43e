"""Cached vs recomputed teacher logits: the same logits-only steps timed both ways."""

from __future__ import annotations

import copy
import shutil
import time

from pipelines.core.distributed import is_main
from pipelines.distillation.ablation import ablation_spec
from pipelines.distillation.logits import cached_teacher_logits
from pipelines.distillation.loss import loss_spec
from pipelines.distillation.training import train_student
from pipelines.train.callbacks import step_timer


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
