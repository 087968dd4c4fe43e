"""Measure ONE artifact at ONE thread count: a JSON job on stdin, a JSON result on stdout.

    echo '{"artifact": "student-onnx", "backend": "onnxruntime", "path": "runs/demo/export/student-onnx",
           "precision": "fp32", "device": "cpu", "threads": 1, "batch_sizes": [1, 32],
           "seq_lens": [128], "min_runs": 20, "min_seconds": 1.0, "warmup_runs": 5,
           "vocab_size": 30522}' | python -m pipelines.bench.worker

One process per (artifact, threads) so that PyTorch's and ONNX Runtime's thread pools never share
a process (they oversubscribe the cores when they do; onnxruntime #13808). The thread count is put
in OMP_NUM_THREADS/MKL_NUM_THREADS before numpy, torch or onnxruntime is imported, then set again
through `torch.set_num_threads` and ORT's `intra_op_num_threads` (inter-op 1, sequential).

Timings: `import_s` is the backend's import, `load_s` the model load after it (for INC that is
re-export plus re-calibration; `load_inc_model` rebuilds the graph; for an fp16 ORT row, the fp16
conversion; for TensorRT, the engine build or its load from the cache). Inputs are built once per
cell on the target device and are not part of a timed run (ORT on the GPU uses IO binding, inputs
and logits on the device; without it the host-to-device copy would be inside `run`). Each cell:
`warmup_runs` untimed runs, then timed runs (`time.perf_counter`, CUDA synchronised before and
after) until both `min_runs` and `min_seconds` are reached. `peak_rss_mb` is the process's ru_maxrss at the end (after load: `load_rss_mb`).

The worker inherits the parent's environment. On a machine whose cores are busy with other work,
export OMP_WAIT_POLICY=PASSIVE first: with OpenMP's default spin-wait, PyTorch at 2 threads on 2
contended cores measured ~200 ms per run for a model that takes 1.5 ms with PASSIVE. Leave it
unset on a dedicated machine, where spinning is what lowest latency wants.

A cell that fails (an out-of-range sequence length, say) reports `error` instead of numbers; a job
that cannot start exits non-zero with the reason on stderr.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

from pipelines.bench.loaders import BACKEND_MODULES, LOADERS, Runner, random_inputs

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
MAX_RUNS = 100_000  # a cap on timed runs per cell, whatever min_seconds asks
JOB_KEYS = ("artifact", "backend", "path", "precision", "device", "threads")


def peak_rss_mb() -> float:
    """ru_maxrss of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def percentiles(times_s: list[float]) -> dict[str, float]:
    """Per-run seconds → p50/p90/p99/mean in ms (linear interpolation, so p50 ≤ p90 ≤ p99)."""
    import numpy as np

    ms = np.asarray(times_s, dtype=np.float64) * 1000.0
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {
        "p50_ms": float(p50),
        "p90_ms": float(p90),
        "p99_ms": float(p99),
        "mean_ms": float(ms.mean()),
    }


def time_runs(
    runner: Runner, inputs: Any, min_runs: int, min_seconds: float, warmup_runs: int
) -> list[float]:
    """Warm up, then per-run seconds until both min_runs and min_seconds are reached."""
    for _ in range(warmup_runs):
        runner.run(inputs)
    runner.sync()
    times: list[float] = []
    started = time.perf_counter()
    while len(times) < MAX_RUNS and (
        len(times) < min_runs or time.perf_counter() - started < min_seconds
    ):
        runner.sync()
        t0 = time.perf_counter()
        runner.run(inputs)
        runner.sync()
        times.append(time.perf_counter() - t0)
    return times


def measure_cell(runner: Runner, job: dict[str, Any], batch: int, seq: int) -> dict[str, Any]:
    arrays = random_inputs(batch, seq, job["vocab_size"])
    inputs = runner.feed(arrays)
    times = time_runs(
        runner, inputs, int(job["min_runs"]), float(job["min_seconds"]), int(job["warmup_runs"])
    )
    stats = percentiles(times)
    return {
        "batch": batch,
        "seq": seq,
        **stats,
        "runs": len(times),
        "seconds": float(sum(times)),
        "throughput": batch * 1000.0 / stats["mean_ms"],  # sequences/s
    }


def serving_batches(
    lengths: list[int], max_length: int, batch_size: int, mode: str
) -> list[tuple[list[int], int]]:
    """Row indices per batch and the width it is padded to; every row exactly once.

    mode "bucket": rows sorted by length (stable), each batch padded to its longest row;
    mode "padded": rows in order, every batch padded to max_length.
    """
    clipped = [min(max(int(n), 1), max_length) for n in lengths]
    order = sorted(range(len(clipped)), key=clipped.__getitem__) if mode == "bucket" else None
    order = order if order is not None else list(range(len(clipped)))
    out = []
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(clipped[i] for i in rows) if mode == "bucket" else max_length
        out.append((rows, width))
    return out


def measure_real_length(runner: Runner, job: dict[str, Any]) -> dict[str, Any]:
    """Sentences/s over the eval rows' true lengths, length-bucketed vs padded to max_length."""
    import numpy as np

    spec = job["real_length"]
    lengths = [int(n) for n in spec["lengths"]]
    max_length, batch_size = int(spec["max_length"]), int(spec["batch_size"])
    clipped = [min(max(n, 1), max_length) for n in lengths]
    out: dict[str, Any] = {"rows": len(lengths), "max_length": max_length, "batch_size": batch_size}
    for mode in ("bucket", "padded"):
        plan = serving_batches(lengths, max_length, batch_size, mode)
        feeds = []
        for rows, width in plan:
            arrays = random_inputs(len(rows), width, job["vocab_size"])
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                mask[r, : clipped[i]] = 1  # right padding, as export.parity.padded_batches
            arrays["input_ids"] = np.where(mask == 1, arrays["input_ids"], 0)
            arrays["attention_mask"] = mask
            feeds.append(runner.feed(arrays))
        for _ in range(int(job["warmup_runs"])):
            runner.run(feeds[-1] if mode == "bucket" else feeds[0])
        seen = [i for rows, _ in plan for i in rows]
        runner.sync()
        t0 = time.perf_counter()
        for inputs in feeds:
            runner.run(inputs)
        runner.sync()
        seconds = time.perf_counter() - t0
        real = sum(clipped)
        padded = sum(len(rows) * width for rows, width in plan)
        out[mode] = {
            "sentences_per_s": len(seen) / seconds if seconds > 0 else None,
            "seconds": seconds,
            "batches": len(plan),
            "rows_seen": len(seen),
            "rows_unique": len(set(seen)),
            "real_tokens": real,
            "padded_tokens": padded,
            "padding_fraction": 1.0 - real / padded if padded else 0.0,
        }
    bucket, padded = out["bucket"]["sentences_per_s"], out["padded"]["sentences_per_s"]
    out["bucket_speedup"] = bucket / padded if bucket and padded else None
    return out


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Load the artifact, measure every (batch, seq) cell and the real-length mode if asked."""
    import importlib

    missing = [k for k in JOB_KEYS if k not in job]
    if missing:
        raise ValueError(f"bench job lacks {missing}; expected at least {list(JOB_KEYS)}")
    backend, threads = job["backend"], int(job["threads"])
    if backend not in LOADERS:
        raise ValueError(f"unknown backend {backend!r}; choose from {sorted(LOADERS)}")
    job.setdefault("vocab_size", 1000)
    job.setdefault("min_runs", 10)
    job.setdefault("min_seconds", 1.0)
    job.setdefault("warmup_runs", 3)

    t0 = time.perf_counter()
    module = importlib.import_module(BACKEND_MODULES[backend])
    import_s = time.perf_counter() - t0
    if BACKEND_MODULES[backend] == "torch":  # an ORT worker never imports torch
        module.set_num_threads(threads)
        module.set_num_interop_threads(1)
    t0 = time.perf_counter()
    runner = LOADERS[backend](job)
    load_s = time.perf_counter() - t0
    load_rss = peak_rss_mb()

    cells = []
    for batch in job.get("batch_sizes", []):
        for seq in job.get("seq_lens", []):
            try:
                cells.append(measure_cell(runner, job, int(batch), int(seq)))
            except Exception as exc:  # one bad shape must not lose the others
                cells.append({"batch": batch, "seq": seq, "error": f"{type(exc).__name__}: {exc}"})
    real = measure_real_length(runner, job) if job.get("real_length") else None
    return {
        "artifact": job["artifact"],
        "backend": backend,
        "device": job["device"],
        "precision": job["precision"],
        "threads": threads,
        "torch_threads": module.get_num_threads() if module.__name__ == "torch" else None,
        "import_s": import_s,
        "load_s": load_s,
        "load_rss_mb": load_rss,
        "peak_rss_mb": peak_rss_mb(),
        "input_names": runner.input_names,
        "backend_version": getattr(module, "__version__", None),
        **runner.info,
        "cells": cells,
        "real_length": real,
    }


def main() -> int:
    job = json.loads(sys.stdin.read())
    threads = str(int(job.get("threads", 1)))
    for var in THREAD_ENV:
        os.environ[var] = threads
    # Backends may print to fd 1; keep it for the result and send everything else to stderr.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    result = run_job(job)
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
