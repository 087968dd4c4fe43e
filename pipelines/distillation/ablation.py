"""The ablation: the same student trained several ways (labels only, KD, KD + matches), tabulated."""

from __future__ import annotations

import copy
import json
import shutil
import time

from distill.weights import DEFAULT_WEIGHTS, MATCH_WEIGHT, full_weights
from pipelines.core.config import DistillConfig
from pipelines.core.distributed import is_main
from pipelines.core.runs import atomic_write_json, atomic_write_text
from pipelines.distillation.logits import cached_teacher_logits
from pipelines.distillation.loss import loss_spec
from pipelines.distillation.training import train_student
from pipelines.train.evaluation import evaluate_model

ABLATION_VARIANTS = ("labels_only", "logits_kd", "logits_kd_matches")


def ablation_spec(variant: str, d: DistillConfig) -> DistillConfig:
    """The recipe's distill section, changed to one ablation variant."""
    base = copy.deepcopy(d)
    kd_weights = {
        "task": d.weights.get("task", DEFAULT_WEIGHTS["task"]),
        "kd": d.weights.get("kd") or DEFAULT_WEIGHTS["kd"],  # KD variants need a KD term
    }
    if variant == "labels_only":
        base.weights, base.matches = {"task": 1.0, "kd": 0.0}, []
    elif variant == "logits_kd":
        base.weights, base.matches = kd_weights, []
    else:
        base.matches = d.matches or ["hidden_mse", "attention_kl"]
        base.weights = {**kd_weights, **{m: d.weights.get(m, MATCH_WEIGHT) for m in base.matches}}
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
        weights = full_weights(cfg.weights, cfg.matches)
        if cfg.matches == main_row["matches"] and weights == main_row["weights"]:
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
        trainer, _, _ = train_student(
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
            trainer.model.student, eval_set, tokenizer, d.eval_batch_size, device, variant
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
