"""The CPU latency grid over a run's artifacts: artifact × batch × seq × threads.

    rows = run_grid(discover_artifacts(Path("runs/demo")), batch_sizes=[1, 32], seq_lens=[32, 128],
                    threads_list=[1, 2], min_runs=20, min_seconds=1.0, warmup_runs=5)

One worker process per (artifact, threads) (`pipelines.bench.jobs`); what a worker times is
described in `pipelines.bench.worker`.
"""

from __future__ import annotations

from typing import Any

from modelkit.cpu import usable_cores
from pipelines.bench.artifacts import Artifact
from pipelines.bench.jobs import grid_settings, make_job, run_jobs

HEADLINE_SEQ = 128  # the report's headline shape is batch 1 at this length (RecommendRule.seq)
FULL_BATCHES = [1, 8, 32]  # bench.grid: full, where bench.batch_sizes is null
FULL_SEQS = [16, 64, 128]  # bench.grid: full, where bench.seq_lens is null


def grid_shape(bench: Any, max_length: int) -> tuple[list[int], list[int], list[int]]:
    """(batch sizes, sequence lengths, thread counts) the bench section asks for.

    `grid: quick` with neither `batch_sizes` nor `seq_lens` set: batch 1 at the headline length
    (128, or `data.max_length` when the model serves shorter rows) on all cores: the one cell
    the recommendation reads (the real-length cell is `bench.bucket`). Otherwise the full grid,
    the lists the recipe sets and [1, 8, 32] × [16, 64, 128] × [1, all cores] where null, as
    before `bench.grid` existed.
    """
    cores = usable_cores()
    if bench.grid == "quick" and bench.batch_sizes is None and bench.seq_lens is None:
        return [1], [min(HEADLINE_SEQ, int(max_length))], bench.threads or [cores]
    return (
        bench.batch_sizes or FULL_BATCHES,
        bench.seq_lens or FULL_SEQS,
        bench.threads or sorted({1, cores}),
    )


def run_grid(
    artifacts: list[Artifact],
    batch_sizes: list[int],
    seq_lens: list[int],
    threads_list: list[int],
    min_runs: int = 20,
    min_seconds: float = 1.0,
    warmup_runs: int = 5,
    real_lengths: dict[str, Any] | None = None,
    timeout_s: float = 1800.0,
    inc_compile: bool = True,
    rounds: int = 3,
) -> list[dict[str, Any]]:
    """One row per artifact × batch × seq × threads on the artifact's device (CPU here).

    The artifacts of one thread count are timed in `rounds` interleaved rounds, each worker
    spending a `1/rounds` share of `min_runs` / `min_seconds` per cell per round; every row keeps
    its rounds' p50s (`round_p50_ms`) and is flagged `noisy` when they disagree.
    real_lengths: {"lengths": [...], "max_length": n, "batch_size": b} adds one row per
    (artifact, threads) with mode "real_length": sentences/s length-bucketed vs padded.
    """
    settings = {
        **grid_settings(batch_sizes, seq_lens, min_runs, min_seconds, warmup_runs, real_lengths),
        "inc_compile": bool(inc_compile),
    }
    plan = [
        (a, make_job(a, a.device, a.precision, t, settings))
        for a in artifacts
        for t in threads_list
    ]
    return run_jobs(plan, timeout_s, rounds)


def watched_grid(
    artifacts: list[Artifact], bench: Any, max_length: int, real_lengths=None, **extra
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(rows, conditions): `run_grid` over the recipe's grid (`bench`), with the machine's load
    before and after and the CPU steal during it; the bench stage and `distillery bench` both
    report both."""
    from pipelines.bench.conditions import machine_load, steal_since

    before = machine_load(sample_s=bench.load_sample_s)
    rows = run_grid(
        artifacts,
        *grid_shape(bench, max_length),
        bench.min_runs,
        bench.min_seconds,
        bench.warmup_runs,
        real_lengths=real_lengths,
        timeout_s=bench.timeout_s,
        rounds=bench.rounds,
        **extra,
    )
    return rows, {"before": before, "after": machine_load(), "steal_pct": steal_since(before)}
