"""Bench and report stages: measure every artifact the same way, then write the report.

bench: discover the artifacts from the manifests → latency grid (one worker process per artifact
and thread count) → real-length serving → GPU rows or their skip reasons → roofline at b1/s128.
report: results.json, README.md (tables, model card), pareto.png, latency.png; the terminal gets
the same table.
"""

from __future__ import annotations

import json
import os

from pipelines.bench_gpu import TRT_CACHE
from pipelines.benchmark import discover_artifacts, gpu_rows, roofline, run_grid
from pipelines.data import tokenize
from pipelines.errors import DistilleryError
from pipelines.models import load_stage_model
from pipelines.report import RecommendRule, terminal_table, write_report
from pipelines.runs import atomic_write_json, machine
from pipelines.stages import StageContext, StageResult

ROWS_FILE = "rows.json"


def _threads(requested: list[int] | None) -> list[int]:
    cores = (
        len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
    return requested or sorted({1, cores})


def bench(ctx: StageContext) -> StageResult:
    b = ctx.recipe.bench
    artifacts = discover_artifacts(ctx.run.path)
    if b.artifacts:
        unknown = sorted(set(b.artifacts) - {a.name for a in artifacts})
        if unknown:
            raise DistilleryError(
                f"bench.artifacts: {unknown} not found; allowed values: {', '.join(a.name for a in artifacts)}."
            )
        artifacts = [a for a in artifacts if a.name in b.artifacts]
    real = None
    if b.bucket:
        _, tokenizer = load_stage_model(ctx.input_dir("distill"))
        lengths = [
            len(ids) for ids in tokenize(ctx.data().eval, tokenizer, ctx.recipe)["input_ids"]
        ]
        real = {
            "lengths": lengths,
            "max_length": ctx.recipe.data.max_length,
            "batch_size": b.real_length_batch,
        }
    rows = run_grid(
        artifacts,
        b.batch_sizes,
        b.seq_lens,
        _threads(b.threads),
        b.min_runs,
        b.min_seconds,
        b.warmup_runs,
        real_lengths=real,
        timeout_s=b.timeout_s,
        inc_compile=b.inc_compile,
    )
    if b.gpu:
        rows += gpu_rows(
            artifacts,
            b.batch_sizes,
            b.seq_lens,
            min_runs=b.min_runs,
            min_seconds=b.min_seconds,
            warmup_runs=b.warmup_runs,
            timeout_s=b.timeout_s,
            cache_dir=ctx.out / TRT_CACHE,  # TensorRT engines survive reruns of the stage
        )
    teacher_config = json.loads((ctx.input_dir("teacher") / "config.json").read_text())
    student_config = json.loads((ctx.input_dir("distill") / "config.json").read_text())
    seq = 128 if 128 in b.seq_lens else max(b.seq_lens)
    top = max(_threads(b.threads))
    roof = []
    for row in rows:
        if (
            row.get("mode", "grid") == "grid"
            and row.get("batch") == 1
            and row.get("seq") == seq
            and row.get("threads") == top
            and row.get("device") == "cpu"
            and row.get("p50_ms")
        ):
            config = teacher_config if row["artifact"].startswith("teacher") else student_config
            roof.append(
                {
                    "artifact": row["artifact"],
                    **roofline(
                        config,
                        1,
                        seq,
                        cpu={"cores": top},
                        p50_ms=row["p50_ms"],
                        precision=row["precision"],
                    ),
                }
            )
    atomic_write_json(ctx.out / ROWS_FILE, {"rows": rows, "roofline": roof})
    errors = [r for r in rows if r.get("error")]
    return StageResult(
        metrics={"rows": len(rows), "errors": len(errors), "artifacts": len(artifacts)},
        artifacts={"rows": ROWS_FILE},
        extra={
            "measured": [a.to_dict() for a in artifacts],
            "roofline": roof,
            "errors": [
                {k: r.get(k) for k in ("artifact", "batch", "seq", "error")} for r in errors
            ][:20],
        },
    )


def report(ctx: StageContext) -> StageResult:
    data = json.loads((ctx.input_dir("bench") / ROWS_FILE).read_text())
    manifests = {
        name: ctx.run.read_manifest(name)
        for name in ("teacher", "distill", "export", "quantize", "bench")
    }
    manifests = {k: v for k, v in manifests.items() if v}
    rule = RecommendRule(min_retained=ctx.recipe.bench.min_retained)
    result = write_report(
        ctx.out, data["rows"], manifests, machine(), rule, roofline=data["roofline"]
    )
    print(terminal_table(data["rows"]))
    if result.get("recommended"):
        print(f"recommended: {result['recommended']} ({result.get('reason', '')})")
    best = next((r for r in data["rows"] if r.get("artifact") == result.get("recommended")), {})
    return StageResult(
        metrics={"accuracy": best.get("accuracy"), "recommended": result.get("recommended")},
        artifacts={
            k: os.path.basename(str(result[k])) for k in ("results", "readme", "pareto", "latency")
        },
        extra={
            "recommended": result.get("recommended"),
            "reason": result.get("reason"),
            "recommended_path": str(result.get("recommended_path")),
        },
    )
