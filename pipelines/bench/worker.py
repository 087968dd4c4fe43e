"""Measure ONE artifact at ONE thread count, in rounds the parent interleaves with other workers.

The protocol, one JSON object per line:

    parent → worker   {"artifact": "student-onnx", "backend": "onnxruntime", "path": "...",
                       "precision": "fp32", "device": "cpu", "threads": 1, "batch_sizes": [1, 32],
                       "seq_lens": [128], "vocab_size": 30522, ...}            (the job, once)
    worker → parent   {"event": "ready", "import_s": ..., "load_s": ..., ...}  (model loaded)
    parent → worker   {"cmd": "round", "round": 0, "min_runs": 10, "min_seconds": 0.5,
                       "warmup_runs": 3}
    worker → parent   {"event": "round", "round": 0, "cells": [{"batch": 1, "seq": 128,
                       "times_ms": [...]}, ...]}
    parent → worker   {"cmd": "real_length", "modes": ["bucket"]} (every round; "padded" too
                       in the last) / {"cmd": "exit"}

The parent (`pipelines.bench.jobs`) starts one worker per artifact, then asks each in turn for a
round (A B C … A B C …), so a change of load on the machine lands on every artifact alike and each
speed-up can be taken within a round. `run_job(job)` measures one round in this process (tests).

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

from pipelines.bench.backends import BACKENDS, resolve
from pipelines.bench.loaders import Runner, random_inputs
from pipelines.bench.stats import summarize

THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
MAX_RUNS = 100_000  # a cap on timed runs per cell, whatever min_seconds asks
JOB_KEYS = ("artifact", "backend", "path", "precision", "device", "threads")


def peak_rss_mb() -> float:
    """ru_maxrss of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


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


def measure_round(runner: Runner, job: dict[str, Any], settings: dict[str, Any]) -> list[dict]:
    """Every (batch, seq) cell once: `warmup_runs` untimed, then timed runs until `min_runs` and
    `min_seconds` are both reached. A cell that fails reports `error`; the others go on."""
    cells = []
    for batch in job.get("batch_sizes", []):
        for seq in job.get("seq_lens", []):
            try:
                inputs = runner.feed(random_inputs(int(batch), int(seq), job["vocab_size"]))
                times = time_runs(
                    runner,
                    inputs,
                    int(settings["min_runs"]),
                    float(settings["min_seconds"]),
                    int(settings["warmup_runs"]),
                )
                cells.append({"batch": batch, "seq": seq, "times_ms": [t * 1e3 for t in times]})
            except Exception as exc:  # one bad shape must not lose the others
                cells.append({"batch": batch, "seq": seq, "error": f"{type(exc).__name__}: {exc}"})
    return cells


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


def real_length_feeds(runner: Runner, job: dict[str, Any], mode: str) -> tuple[list, list]:
    """(the serving plan, one fed input per batch) for `mode`: the eval rows' true lengths,
    right-padded as `export.parity.padded_batches` pads them."""
    import numpy as np

    spec = job["real_length"]
    lengths, max_length = [int(n) for n in spec["lengths"]], int(spec["max_length"])
    clipped = [min(max(n, 1), max_length) for n in lengths]
    plan = serving_batches(lengths, max_length, int(spec["batch_size"]), mode)
    feeds = []
    for rows, width in plan:
        arrays = random_inputs(len(rows), width, job["vocab_size"])
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, i in enumerate(rows):
            mask[r, : clipped[i]] = 1
        arrays["input_ids"] = np.where(mask == 1, arrays["input_ids"], 0)
        arrays["attention_mask"] = mask
        feeds.append(runner.feed(arrays))
    return plan, feeds


def measure_real_length(
    runner: Runner,
    job: dict[str, Any],
    modes: tuple[str, ...] = ("bucket", "padded"),
    cache: dict[str, tuple[list, list]] | None = None,
) -> dict[str, Any]:
    """Sentences/s over the eval rows' true lengths, length-bucketed and/or padded to max_length.

    Before the timer, one untimed run of each distinct input shape: a backend that compiles or
    plans per shape (OpenVINO's static shapes, ORT's memory plans) does so once per bucket, never
    inside a timed pass. `cache` keeps the fed inputs between rounds (one worker, many rounds).
    """
    spec = job["real_length"]
    max_length, batch_size = int(spec["max_length"]), int(spec["batch_size"])
    clipped = [min(max(int(n), 1), max_length) for n in spec["lengths"]]
    out: dict[str, Any] = {"rows": len(clipped), "max_length": max_length, "batch_size": batch_size}
    cache = {} if cache is None else cache
    for mode in modes:
        if mode not in cache:
            cache[mode] = real_length_feeds(runner, job, mode)
        plan, feeds = cache[mode]
        shapes: dict[tuple[int, int], Any] = {}
        for (rows, width), inputs in zip(plan, feeds, strict=True):
            shapes.setdefault((len(rows), width), inputs)
        for inputs in shapes.values():
            runner.run(inputs)
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
            "shapes": len(shapes),
            "rows_seen": len(seen),
            "rows_unique": len(set(seen)),
            "real_tokens": real,
            "padded_tokens": padded,
            "padding_fraction": 1.0 - real / padded if padded else 0.0,
        }
    if "bucket" in out and "padded" in out:
        bucket, padded = out["bucket"]["sentences_per_s"], out["padded"]["sentences_per_s"]
        out["bucket_speedup"] = bucket / padded if bucket and padded else None
    return out


def prepare(job: dict[str, Any]) -> tuple[Runner, dict[str, Any]]:
    """Import the backend and load the artifact; (runner, what the `ready` event reports)."""
    import importlib

    missing = [k for k in JOB_KEYS if k not in job]
    if missing:
        raise ValueError(f"bench job lacks {missing}; expected at least {list(JOB_KEYS)}")
    backend, threads = job["backend"], int(job["threads"])
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {sorted(BACKENDS)}")
    job.setdefault("vocab_size", 1000)
    job.setdefault("min_runs", 10)
    job.setdefault("min_seconds", 1.0)
    job.setdefault("warmup_runs", 3)
    t0 = time.perf_counter()
    entry = BACKENDS[backend]
    module = importlib.import_module(entry.module)
    import_s = time.perf_counter() - t0
    if entry.module == "torch":  # an ORT worker never imports torch
        module.set_num_threads(threads)
        module.set_num_interop_threads(1)
    t0 = time.perf_counter()
    runner = resolve(entry.loader)(job)
    load_s = time.perf_counter() - t0
    header = {
        "artifact": job["artifact"],
        "backend": backend,
        "device": job["device"],
        "precision": job["precision"],
        "threads": threads,
        "torch_threads": module.get_num_threads() if module.__name__ == "torch" else None,
        "import_s": import_s,
        "load_s": load_s,
        "load_rss_mb": peak_rss_mb(),
        "input_names": runner.input_names,
        "backend_version": getattr(module, "__version__", None),
        **runner.info,
    }
    return runner, header


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Load the artifact and measure every cell once, in this process: the one-round result."""
    runner, header = prepare(job)
    cells = [
        cell
        if "error" in cell
        else summarize(cell["batch"], cell["seq"], [t / 1e3 for t in cell["times_ms"]])
        for cell in measure_round(runner, job, job)
    ]
    real = measure_real_length(runner, job) if job.get("real_length") else None
    return {**header, "peak_rss_mb": peak_rss_mb(), "cells": cells, "real_length": real}


def serve(job: dict[str, Any], commands, reply) -> None:
    """Load, say `ready`, then answer commands until `exit` (or the end of the input)."""
    runner, header = prepare(job)
    reply({"event": "ready", **header})
    feeds: dict[str, tuple[list, list]] = {}  # the real-length inputs, built once
    for command in commands:
        kind = command.get("cmd")
        if kind == "round":
            cells = measure_round(runner, job, command)
            reply({"event": "round", "round": command.get("round"), "cells": cells})
        elif kind == "real_length":
            modes = tuple(command.get("modes") or ("bucket", "padded"))
            try:
                reply({"event": "real_length", **measure_real_length(runner, job, modes, feeds)})
            except Exception as exc:  # a length the model cannot take: the grid rows stand
                reply({"event": "real_length", "error": f"{type(exc).__name__}: {exc}"})
        elif kind == "exit":
            reply({"event": "bye", "peak_rss_mb": peak_rss_mb()})
            return
        else:
            raise ValueError(f"unknown command {command!r}")


def main() -> int:
    job = json.loads(sys.stdin.readline())
    threads = str(int(job.get("threads", 1)))
    for var in THREAD_ENV:
        os.environ[var] = threads
    # Backends may print to fd 1; keep it for the replies and send everything else to stderr.
    out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    commands = (json.loads(line) for line in sys.stdin if line.strip())
    serve(job, commands, reply)
    return 0


if __name__ == "__main__":
    sys.exit(main())
