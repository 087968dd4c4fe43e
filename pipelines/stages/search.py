"""Search stage: candidates from `search.space` → each built untrained, exported, quantized and
timed (interleaved rounds, bench workers) → candidates over the budget or dominated dropped → the
survivors distilled on a short schedule, in the order that can end the search soonest → the pick,
which the distill stage then trains in full as the run's student.

Runs only when `search.enabled` (the runner leaves it out of the plan otherwise, and the distill
stage then builds `student` as the recipe says). Under torchrun every rank trains; rank 0 alone
builds, times and writes.
"""

from __future__ import annotations

import logging

from pipelines.core.context import StageContext, StageResult
from pipelines.core.distributed import is_main, main_first, share
from pipelines.core.errors import StageFailedError
from pipelines.core.models import load_stage_model
from pipelines.core.runs import atomic_write_json, atomic_write_text, canonical_hash
from pipelines.data.loading import require_rows, tokenize
from pipelines.distillation.augmented_set import with_augmented_rows
from pipelines.distillation.logits import cached_teacher_logits
from pipelines.search.measure import build_candidate, time_candidates
from pipelines.search.select import meets_floor, pick, survivors, training_order
from pipelines.search.space import candidates
from pipelines.search.table import markdown, plot
from pipelines.search.train import short_distill
from pipelines.train.settings import resolve_device

log = logging.getLogger("distillery")


# What the latency of a built candidate depends on: changing the floor, the slack or the
# short schedule reuses the timings.
TIMED_BY = {"batch_size", "seq_len", "threads", "backend", "rounds", "min_runs", "min_seconds"}


def adopt_keyed_work(previous, out) -> None:
    """Bring the candidates and timings of a finished search set aside for this new config.

    The runner moves a finished stage aside before a rerun under another config, so a new floor
    or slack would otherwise rebuild, retime and retrain everything. Each candidate's build and
    short run, and the timings, carry the key of what decided them and are reused only when it
    matches, so copying them in is safe. Hard links: no extra disk for the model files.
    """
    import os
    import shutil

    if not (previous / "candidates").is_dir():
        return
    for src in sorted((previous / "candidates").iterdir()):
        dst = out / "candidates" / src.name
        if src.is_dir() and not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copytree(src, dst, copy_function=os.link)
            except OSError:  # another filesystem: copy
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst)
    if (previous / "latency.json").is_file() and not (out / "latency.json").exists():
        shutil.copy2(previous / "latency.json", out / "latency.json")


def main(ctx: StageContext) -> StageResult:
    from transformers import set_seed

    r, s = ctx.recipe, ctx.recipe.search
    device = resolve_device(r)
    set_seed(r.seed)
    teacher, tokenizer = load_stage_model(ctx.input_dir("teacher"), r.security)
    with main_first():
        data = ctx.data()
        require_rows(data.train, r.data.train_split, r.distill.batch_size, "search")
        train_set, eval_set = tokenize(data.train, tokenizer, r), tokenize(data.eval, tokenizer, r)
    cands = candidates(s.space, teacher.config)
    folders = {c.id: ctx.out / "candidates" / c.id for c in cands}
    if is_main():
        adopt_keyed_work(ctx.run.previous(ctx.name), ctx.out)
    log.info("search: %d candidates: %s", len(cands), ", ".join(folders))

    # Stage 1 (rank 0): build, export, quantize, time.
    build_keys, built, timing = build_and_time(ctx, cands, folders, teacher, tokenizer, train_set)
    kept, dropped = keep_timed(cands, timing, s.budget_ms)

    # Stage 2: short distillation of the survivors (every rank trains; rank 0 writes).
    teacher_acc = ctx.inputs["teacher"]["metrics"]["accuracy"]
    floor_accuracy = s.floor * teacher_acc
    training = _training_set(ctx, teacher, tokenizer, train_set, device)
    trained = train_short(
        ctx, kept, build_keys, folders, (teacher, tokenizer), training, eval_set, device
    )
    chosen, why = pick(trained, floor_accuracy, s.slack_points, s.budget_ms)
    pick_cand = {c.id: c for c in cands}[chosen["id"]]
    teacher_ms = timing["teacher"].get("p50_ms")
    rows = candidate_rows(s, cands, built, timing, trained, dropped, floor_accuracy)
    if is_main():
        atomic_write_text(ctx.out / "candidates.md", markdown(rows, pick_cand.id, teacher_ms))
        plot(
            rows,
            pick_cand.id,
            floor_accuracy if s.budget_ms is None else None,
            ctx.out / "candidates.png",
        )
    log.info("search: chose %s (%s)", pick_cand.id, why)
    return StageResult(
        metrics={
            "chosen": pick_cand.id,
            "chosen_latency_ms": chosen["latency_ms"],
            "chosen_short_int8_accuracy": chosen["accuracy"],
            "floor_accuracy": floor_accuracy,
            "teacher_latency_ms": teacher_ms,
            "candidates": len(cands),
            "trained": len(trained),
        },
        artifacts={"table": "candidates.md", "plot": "candidates.png"},
        extra={
            "chosen": {**pick_cand.to_dict(), "student": pick_cand.student_section(), "why": why},
            "mode": "budget" if s.budget_ms is not None else "floor",
            "measured_at": {
                "batch": s.batch_size,
                "seq": s.seq_len,
                "threads": s.threads,
                "backend": s.backend,
                "rounds": s.rounds,
            },
            "candidates": rows,
        },
    )


def build_and_time(ctx: StageContext, cands, folders, teacher, tokenizer, train_set):
    """(build keys, build records, timing rows) of every candidate, shared by every rank; rank 0
    builds, exports, quantizes and times. Keys say what decides each result, so a search
    interrupted under another config rebuilds instead of reusing."""
    import json

    r, s = ctx.recipe, ctx.recipe.search
    teacher_hash = ctx.inputs["teacher"]["hash"]
    build_keys = {
        c.id: canonical_hash(
            {
                "teacher": teacher_hash,
                "candidate": c.to_dict(),
                "backend": s.backend,
                "seed": r.seed,
            }
        )
        for c in cands
    }
    built, timing = {}, None
    if is_main():
        for c in cands:
            built[c.id] = build_candidate(
                c, folders[c.id], build_keys[c.id], r, teacher, tokenizer, train_set
            )
        saved = ctx.out / "latency.json"
        timing_key = canonical_hash({"builds": build_keys, "at": s.model_dump(include=TIMED_BY)})
        found = json.loads(saved.read_text()) if saved.is_file() else {}
        timing = found.get("rows") if found.get("key") == timing_key else None
        if not timing:
            log.info("search: timing %d candidates and the teacher, interleaved", len(cands))
            timing = time_candidates(folders, ctx.input_dir("teacher"), s, r.bench.timeout_s)
            atomic_write_json(saved, {"key": timing_key, "rows": timing})
    built, timing = share((built, timing))
    return build_keys, built, timing


def keep_timed(cands, timing: dict, budget_ms: float | None):
    """(kept [(candidate, p50 ms)], dropped {id: why}); no candidate left fails the stage."""
    timed, failed = [], {}
    for c in cands:
        row = timing[c.id]
        if row.get("p50_ms") is None:
            failed[c.id] = f"not timed: {row.get('error', 'no measurement')}"
        else:
            timed.append((c, row["p50_ms"]))
    kept, dropped = survivors(timed, budget_ms)
    dropped.update(failed)
    if not kept:
        raise StageFailedError(
            "search: no candidate is left after timing: "
            + "; ".join(f"{k}: {v}" for k, v in dropped.items())
            + ". Raise search.budget_ms or widen search.space."
        )
    return kept, dropped


def train_short(ctx, kept, build_keys, folders, teacher_tok, training, eval_set, device):
    """The survivors' short runs, in the order that can end the search soonest: with no budget,
    the first to meet the floor ends it (every later candidate is slower)."""
    s = ctx.recipe.search
    teacher, tokenizer = teacher_tok
    floor_accuracy = s.floor * ctx.inputs["teacher"]["metrics"]["accuracy"]
    latency = dict((c.id, ms) for c, ms in kept)
    short_settings = {
        "rows": s.short_rows,
        "epochs": s.short_epochs,
        "distill": ctx.recipe.distill.model_dump(exclude={"ablation", "ablation_variants", "qat"}),
        "train": ctx.recipe.train.model_dump(),
        "data": ctx.data().data_hash,
    }
    trained: list[dict] = []
    for c in training_order(kept, s.budget_ms)[: s.max_trained]:
        key = canonical_hash({"build": build_keys[c.id], **short_settings})
        rec = short_distill(
            ctx, c, folders[c.id], key, teacher, tokenizer, training, eval_set, device
        )
        trained.append(
            {
                "id": c.id,
                "latency_ms": latency[c.id],
                "accuracy": rec["int8_accuracy"],
                **_no_acc(rec),
            }
        )
        if s.budget_ms is None and meets_floor(
            rec["int8_accuracy"], floor_accuracy, s.slack_points
        ):
            break  # every later candidate is slower
    return trained


def candidate_rows(s, cands, built, timing, trained, dropped, floor_accuracy) -> list[dict]:
    """One row per candidate for the table, the plot and the manifest, with its status."""
    teacher_ms = timing["teacher"].get("p50_ms")
    short = {t["id"]: t for t in trained}
    untrained = (
        f"not trained (search.max_trained = {s.max_trained} reached)"
        if s.budget_ms is not None
        or not any(meets_floor(t["accuracy"], floor_accuracy, s.slack_points) for t in trained)
        else "not trained (a faster one met the floor)"
    )
    rows = []
    for c in cands:
        status = dropped.get(c.id) or ("trained" if c.id in short else untrained)
        rows.append(
            {
                **built[c.id],
                "latency_ms": timing[c.id].get("p50_ms"),
                "p99_ms": timing[c.id].get("p99_ms"),
                "speedup_vs_teacher": (
                    teacher_ms / timing[c.id]["p50_ms"]
                    if teacher_ms and timing[c.id].get("p50_ms")
                    else None
                ),
                "accuracy": short.get(c.id, {}).get("accuracy"),
                "fp32_accuracy": short.get(c.id, {}).get("fp32_accuracy"),
                "short_run": short.get(c.id),
                "status": status,
            }
        )
    return rows


def _no_acc(rec: dict) -> dict:
    """The short run's record, its fp32 accuracy renamed (the row's `accuracy` is the int8 one)."""
    out = {k: v for k, v in rec.items() if k not in ("accuracy", "id")}
    out["fp32_accuracy"] = rec["accuracy"]
    return out


def _training_set(ctx: StageContext, teacher, tokenizer, train_set, device: str):
    """(dataset, cached teacher logits or None) the short runs draw from: the train split (and the
    augmented rows when configured), with the same caches the distill stage reuses."""
    logits = None
    if ctx.recipe.distill.cache_teacher_logits:
        logits, _ = cached_teacher_logits(ctx, teacher, train_set, tokenizer, device)
    dataset, logits, _ = with_augmented_rows(ctx, teacher, tokenizer, train_set, logits, device)
    return dataset, logits
