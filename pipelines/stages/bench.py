"""Bench stage: measure every artifact the same way.

setup (the artifacts from the manifests, the eval split's real lengths) → the cells `bench.grid`
asks for (quick: batch 1 at the headline length; full: the grid) and the real-length cell, timed
in the same interleaved rounds (one worker process per artifact and thread count) → GPU rows or
their skip reasons → roofline at b1/s128 → rows.json, which the report stage reads.
"""

from __future__ import annotations

import json
from pathlib import Path

from distill.token_students import is_token_student
from pipelines.bench.artifacts import Artifact, absent_artifacts, discover_artifacts
from pipelines.bench.ceiling import measured_ceiling
from pipelines.bench.gpu import GPU_ROWS_FILE, TRT_CACHE, WORKER_TIMEOUT_S, gpu_rows
from pipelines.bench.grid import grid_shape, watched_grid
from pipelines.bench.jobs import base_row, empty_cell
from pipelines.bench.roofline import roofline
from pipelines.core.context import StageContext, StageResult
from pipelines.core.errors import DistilleryError, StageFailedError, shown
from pipelines.core.models import load_stage_model
from pipelines.core.runs import RunDir, atomic_write_json
from pipelines.data.loading import tokenize

ROWS_FILE = "rows.json"


def absent_row(name: str, why: str, backend: str) -> dict:
    """A CPU row for an artifact that could not be made here (its extra is not installed)."""
    base = base_row(
        Artifact(name, backend, "", "int8", "cpu", None, None, "quantize"), "cpu", "int8", None
    )
    return {**empty_cell(base, None, None), "skipped": why}


def _gpu_rows(artifacts: list[Artifact], recipe, timeout_s: float, cache_dir: Path) -> list[dict]:
    """The GPU rows of `artifacts` on the recipe's grid (`bench.grid`, `batch_sizes`, ...)."""
    b = recipe.bench
    batch_sizes, seq_lens, _ = grid_shape(b, recipe.data.max_length)
    return gpu_rows(
        artifacts,
        batch_sizes,
        seq_lens,
        min_runs=b.min_runs,
        min_seconds=b.min_seconds,
        warmup_runs=b.warmup_runs,
        timeout_s=timeout_s,
        cache_dir=cache_dir,
    )


def _selected(ctx: StageContext) -> list[Artifact]:
    """The run's artifacts, narrowed to `bench.artifacts` when the recipe names some."""
    b = ctx.recipe.bench
    artifacts = discover_artifacts(ctx.run.path)
    if b.artifacts:
        unknown = sorted(set(b.artifacts) - {a.name for a in artifacts})
        if unknown:
            raise DistilleryError(
                f"bench.artifacts: {unknown} not found; allowed values: {', '.join(a.name for a in artifacts)}."
            )
        artifacts = [a for a in artifacts if a.name in b.artifacts]
    return artifacts


def _real_lengths(ctx: StageContext) -> dict | None:
    """The eval split's token lengths, for the real-length serving rows (`bench.bucket`)."""
    b = ctx.recipe.bench
    if not b.bucket:
        return None
    _, tokenizer = load_stage_model(ctx.input_dir("distill"), ctx.recipe.security)
    lengths = [len(ids) for ids in tokenize(ctx.data().eval, tokenizer, ctx.recipe)["input_ids"]]
    return {
        "lengths": lengths,
        "max_length": ctx.recipe.data.max_length,
        "batch_size": b.real_length_batch,
    }


def _roofline(ctx: StageContext, rows: list[dict]) -> tuple[list[dict], dict | None]:
    """(roofline lines of the CPU rows at b1 × s128 (or the longest seq) and the most threads,
    the measured GEMM ceiling they are read against, or None)."""
    b = ctx.recipe.bench
    teacher_config = json.loads((ctx.input_dir("teacher") / "config.json").read_text())
    student_config = json.loads((ctx.input_dir("distill") / "config.json").read_text())
    _, seq_lens, threads = grid_shape(b, ctx.recipe.data.max_length)
    seq = 128 if 128 in seq_lens else max(seq_lens)
    top = max(threads)
    timed = [
        row
        for row in rows
        if row.get("mode", "grid") == "grid"
        and row.get("batch") == 1
        and row.get("seq") == seq
        and row.get("threads") == top
        and row.get("device") == "cpu"
        and row.get("p50_ms")
        # the BERT FLOP formula does not describe a static, CNN or BiLSTM student
        and (row["artifact"].startswith("teacher") or not is_token_student(student_config))
    ]
    # after the grid, so that it never runs beside a worker; only when a roofline line reads it
    ceiling = measured_ceiling(top, size=b.ceiling_size) if b.ceiling_size and timed else None
    roof = [
        {
            "artifact": row["artifact"],
            **roofline(
                teacher_config if row["artifact"].startswith("teacher") else student_config,
                1,
                seq,
                cpu={"cores": top},
                p50_ms=row["p50_ms"],
                precision=row["precision"],
                ceiling=ceiling,
            ),
        }
        for row in timed
    ]
    return roof, ceiling


def main(ctx: StageContext) -> StageResult:
    b = ctx.recipe.bench
    artifacts = _selected(ctx)
    real = _real_lengths(ctx)
    rows, conditions = watched_grid(
        artifacts, b, ctx.recipe.data.max_length, real, inc_compile=b.inc_compile
    )
    for name, (why, backend) in absent_artifacts(ctx.run.path).items():  # e.g. an extra missing
        rows.append(absent_row(name, why, backend))
    if b.gpu:  # TensorRT engines under bench/ survive reruns of the stage
        rows += _gpu_rows(artifacts, ctx.recipe, b.timeout_s, ctx.out / TRT_CACHE)
    roof, ceiling = _roofline(ctx, rows)
    if not any(r.get("p50_ms") is not None for r in rows):  # done only with a measurement
        raise StageFailedError(unmeasured_message(rows))
    atomic_write_json(
        ctx.out / ROWS_FILE,
        {"rows": rows, "roofline": roof, "ceiling": ceiling, "conditions": conditions},
    )
    errors = [r for r in rows if r.get("error")]
    return StageResult(
        metrics={"rows": len(rows), "errors": len(errors), "artifacts": len(artifacts)},
        artifacts={"rows": ROWS_FILE},
        extra={
            "measured": [a.to_dict() for a in artifacts],
            "conditions": conditions,
            "roofline": roof,
            "ceiling": ceiling,
            "errors": [
                {k: r.get(k) for k in ("artifact", "batch", "seq", "error")} for r in errors
            ][:20],
        },
    )


def unmeasured_message(rows: list[dict]) -> str:
    """Why a bench with no measured cell is not recorded as done."""
    failed = [r for r in rows if r.get("error") or r.get("skipped")]
    first = next(iter(failed), None)
    example = (
        f"; first: {first.get('artifact')} batch {first.get('batch')} seq {first.get('seq')}: "
        f"{shown(first.get('error') or first.get('skipped'), 300)}"
        if first
        else ""
    )
    return (
        f"bench: no cell was measured ({len(rows)} rows, each an error or skipped{example}). "
        "Nothing is recorded as done and a finished bench of another config is kept; fix the "
        "cause (the grid in bench.*, the artifacts) and rerun."
    )


def gpu_only(recipe, runs_dir: Path) -> tuple[list[dict], Path]:
    """`make bench-gpu`: the GPU rows of a finished run's artifacts, written to gpu-rows.json."""
    run = RunDir(runs_dir, recipe.name)
    artifacts = discover_artifacts(run.path)
    b = recipe.bench
    if b.artifacts:
        artifacts = [a for a in artifacts if a.name in b.artifacts]
    if not artifacts:
        raise DistilleryError(
            f"bench-gpu: no artifacts under {run.path}; run the pipeline first "
            "(distillery run RECIPE --stage quantize)."
        )
    rows = _gpu_rows(
        artifacts, recipe, min(b.timeout_s, WORKER_TIMEOUT_S), run.stage("bench") / TRT_CACHE
    )
    out = run.stage("bench") / GPU_ROWS_FILE
    atomic_write_json(out, {"rows": rows})
    return rows, out
