"""Benchmark jobs: one fresh `python -m pipelines.bench.worker` per (artifact, device, threads),
and the rows its JSON result becomes.

Each job runs in its own interpreter so thread pools of PyTorch and ONNX Runtime never meet in one
process (onnxruntime #13808) and a crash costs one row group, not the run: a failed worker yields
rows with `error`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import queue
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from pipelines.bench.artifacts import Artifact, vocab_size
from pipelines.bench.progress_lines import cell_lines, progress, shown_error
from pipelines.bench.stats import cell_row, real_length_row, round_drift

ROOT = Path(__file__).resolve().parents[2]  # the checkout: workers import the same code
PAUSE_S = 0.2  # between workers: the idle thread pools of the one before go back to sleep

log = logging.getLogger("distillery")


def base_row(
    artifact: Artifact, device: str, precision: str, threads: int | None
) -> dict[str, Any]:
    return {
        "artifact": artifact.name,
        "backend": artifact.backend,
        "device": device,
        "precision": precision,
        "threads": threads,
        "accuracy": artifact.accuracy,
        "size_mb": artifact.size_mb,
        "path": artifact.path,
        "role": artifact.role,
        "mode": "grid",
    }


def empty_cell(row: dict[str, Any], batch: int | None, seq: int | None) -> dict[str, Any]:
    return {
        **row,
        "batch": batch,
        "seq": seq,
        **{k: None for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "runs", "throughput")},
        "peak_rss_mb": None,
        "load_s": None,
    }


class Worker:
    """One `python -m pipelines.bench.worker` process holding one loaded artifact.

    `request(command)` sends a JSON line and returns the reply; a worker that dies, or does not
    answer within `timeout_s`, raises RuntimeError with the last line it wrote to stderr.
    """

    def __init__(self, job: dict[str, Any], timeout_s: float) -> None:
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(job["threads"])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        env.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.timeout_s = timeout_s
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pipelines.bench.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        self.replies: queue.Queue = queue.Queue()
        self.stderr: deque[str] = deque(maxlen=20)
        threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True).start()
        self.header = self.request(job)

    def _read(self, stream, replies: bool) -> None:
        for line in stream:
            if replies:
                self.replies.put(line)
            elif line.strip():
                self.stderr.append(line.rstrip())
        if replies:
            self.replies.put(None)  # end of output: the worker is gone

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except OSError:
            pass  # it died; the read below says why
        try:
            line = self.replies.get(timeout=self.timeout_s)
        except queue.Empty:
            self.close()
            raise RuntimeError(f"worker timed out after {self.timeout_s:g} s") from None
        if line is None:
            self.proc.wait()
            tail = list(self.stderr)[-1:] or ["(no stderr)"]
            raise RuntimeError(f"worker exited {self.proc.returncode}: {tail[0]}")
        return json.loads(line)

    def close(self) -> dict[str, Any] | None:
        bye = None
        if self.proc.poll() is None:
            try:
                bye = self.request({"cmd": "exit"}) if self.replies.empty() else None
            except RuntimeError:
                bye = None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        return bye


def grid_settings(
    batch_sizes: list[int],
    seq_lens: list[int],
    min_runs: int,
    min_seconds: float,
    warmup_runs: int,
    real_length: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What every job of one grid shares: its cells and each cell's timing budget."""
    return {
        "batch_sizes": [int(b) for b in batch_sizes],
        "seq_lens": [int(s) for s in seq_lens],
        "min_runs": int(min_runs),
        "min_seconds": float(min_seconds),
        "warmup_runs": int(warmup_runs),
        "real_length": real_length,
    }


def make_job(
    artifact: Artifact, device: str, precision: str, threads: int, settings: dict[str, Any]
) -> dict[str, Any]:
    return {
        "artifact": artifact.name,
        "backend": artifact.backend,
        "path": artifact.path,
        "precision": precision,
        "device": device,
        "threads": int(threads),
        "vocab_size": vocab_size(artifact),
        **settings,
    }


def _settings(job: dict[str, Any], rounds: int) -> dict[str, Any]:
    """One round's share of a cell's timing budget."""
    return {
        "min_runs": max(1, math.ceil(int(job["min_runs"]) / rounds)),
        "min_seconds": float(job["min_seconds"]) / rounds,
        "warmup_runs": int(job["warmup_runs"]),
    }


def run_jobs(
    plan: list[tuple[Artifact, dict[str, Any]]], timeout_s: float, rounds: int = 1
) -> list[dict[str, Any]]:
    """Rows for every job: the workers of one thread count are all loaded, then asked for a round
    each in turn (A B C … A B C …, the order rotated every round), `rounds` times; the
    real-length cell (a job's `real_length`) is timed in the same turn of every round."""
    rows: list[dict[str, Any]] = []
    groups: dict[int, list[tuple[Artifact, dict[str, Any]]]] = {}
    for artifact, job in plan:
        groups.setdefault(int(job["threads"]), []).append((artifact, job))
    total = sum(len(_cells(job)) + bool(job.get("real_length")) for _, job in plan)
    done = [0]
    for threads, group in groups.items():
        rows += _run_group(group, timeout_s, rounds, threads, (done, total))
    return rows


def _cells(job: dict[str, Any]) -> list[tuple[int, int]]:
    return [(int(b), int(s)) for b in job["batch_sizes"] for s in job["seq_lens"]]


def _start(group, timeout_s: float, threads: int) -> tuple[dict[int, Worker], dict[int, str]]:
    """Every worker of the group loaded, then an untimed round each (shapes planned, caches
    warm); {index: worker}, {index: why it failed}."""
    workers: dict[int, Worker] = {}
    failed: dict[int, str] = {}
    for index, (artifact, job) in enumerate(group):
        progress(f"[bench] loading {artifact.name} ({threads} threads)")
        try:
            workers[index] = Worker(job, timeout_s)
        except RuntimeError as exc:
            failed[index] = str(exc)
            progress(f"[bench] {artifact.name}: failed to load: {shown_error(str(exc))}")
    for index, worker in workers.items():
        try:
            job = group[index][1]
            warm = {"min_runs": max(1, int(job["warmup_runs"])), "min_seconds": 0.0}
            worker.request({"cmd": "round", "round": -1, **warm, "warmup_runs": 1})
        except RuntimeError as exc:
            failed[index] = str(exc)
    return workers, failed


def _run_group(group, timeout_s: float, rounds: int, threads: int, count) -> list[dict[str, Any]]:
    workers, failed = _start(group, timeout_s, threads)
    times: dict[int, dict[tuple, list[list[float]]]] = {i: {} for i in range(len(group))}
    errors: dict[int, dict[tuple, str]] = {i: {} for i in range(len(group))}
    real: dict[int, list[dict]] = {}
    for number in range(rounds):
        order = sorted(workers)
        shift = number % len(order) if order else 0
        log.info("bench: round %d/%d, %d threads", number + 1, rounds, threads)
        for index in order[shift:] + order[:shift]:
            if index in failed:
                continue
            job = group[index][1]
            last = number == rounds - 1
            try:
                command = {"cmd": "round", "round": number, **_settings(job, rounds)}
                reply = workers[index].request(command)
                if job.get("real_length") and "error" not in real.get(index, [{}])[-1]:
                    modes = ["bucket", "padded"] if last else ["bucket"]
                    ask = {"cmd": "real_length", "modes": modes}
                    real.setdefault(index, []).append(workers[index].request(ask))
            except RuntimeError as exc:
                failed[index] = str(exc)
                progress(f"[bench] {group[index][0].name}: worker failed: {shown_error(str(exc))}")
                continue
            for cell in reply["cells"]:
                key = (int(cell["batch"]), int(cell["seq"]))
                if "error" in cell:
                    errors[index][key] = cell["error"]
                else:
                    times[index].setdefault(key, []).append(cell["times_ms"])
            if last:
                cell_lines(
                    group[index][0], threads, times[index], errors[index], real.get(index), count
                )
            time.sleep(PAUSE_S)
    byes = {i: (w.close() or {}) for i, w in workers.items()}
    rows: list[dict[str, Any]] = []
    for index, (artifact, job) in enumerate(group):
        base = base_row(artifact, job["device"], job["precision"], job["threads"])
        if index not in workers:
            rows += [{**empty_cell(base, b, s), "error": failed[index]} for b, s in _cells(job)]
            continue
        shared = _shared(workers[index].header, byes[index], job, rounds)
        for b, s in _cells(job):
            if times[index].get((b, s)):
                drift = round_drift(times, (b, s), rounds)
                rows.append({**cell_row(base, b, s, times[index][(b, s)], drift), **shared})
            else:
                why = errors[index].get((b, s)) or failed.get(index, "not measured")
                rows.append({**empty_cell(base, b, s), **shared, "error": why})
        replies = real.get(index) or []
        if replies and "error" in replies[-1]:
            spec = job["real_length"]
            cell = empty_cell(base, spec["batch_size"], spec["max_length"])
            rows.append({**cell, **shared, "mode": "real_length", "error": replies[-1]["error"]})
        elif len(replies) == rounds:
            rows.append(real_length_row(base, shared, replies))
    return rows


def _shared(header: dict, bye: dict, job: dict, rounds: int) -> dict[str, Any]:
    """What every row of one worker carries: memory, load and import times, backend facts."""
    return {
        "peak_rss_mb": bye.get("peak_rss_mb", header.get("load_rss_mb")),
        "load_s": header["load_s"],
        "import_s": header["import_s"],
        "rounds": rounds,
        **{
            k: header[k]
            for k in (
                "providers",
                "io_binding",
                "compiled",
                "compile_s",
                "precision_hint",
                "static_shapes",
            )
            if k in header
        },
        **({"accuracy_from": job["accuracy_from"]} if job.get("accuracy_from") else {}),
    }
