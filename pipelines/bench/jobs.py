"""Benchmark jobs: one fresh `python -m pipelines.bench.worker` per (artifact, device, threads),
and the rows its JSON result becomes.

Each job runs in its own interpreter so thread pools of PyTorch and ONNX Runtime never meet in one
process (onnxruntime #13808) and a crash costs one row group, not the run: a failed worker yields
rows with `error`.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from pipelines.bench.artifacts import Artifact, vocab_size

ROOT = Path(__file__).resolve().parents[2]  # the checkout: workers import the same code

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


def run_worker(job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one `pipelines.bench.worker` job in a fresh interpreter; RuntimeError on failure."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(job["threads"])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.bench.worker"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=ROOT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"worker timed out after {timeout_s:g} s") from None
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        raise RuntimeError(f"worker exited {done.returncode}: {tail[0]}")
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"worker printed no JSON result: {done.stdout[-200:]!r}") from None


def rows_from_result(
    artifact: Artifact, job: dict[str, Any], result: dict[str, Any]
) -> list[dict[str, Any]]:
    base = base_row(artifact, job["device"], job["precision"], job["threads"])
    shared = {
        "peak_rss_mb": result["peak_rss_mb"],
        "load_s": result["load_s"],
        "import_s": result["import_s"],
        **{
            k: result[k]
            for k in ("providers", "io_binding", "compiled", "compile_s")
            if k in result
        },
        **({"accuracy_from": job["accuracy_from"]} if job.get("accuracy_from") else {}),
    }
    rows = []
    for cell in result["cells"]:
        row = {**empty_cell(base, cell["batch"], cell["seq"]), **shared}
        row.update({k: v for k, v in cell.items() if k not in ("batch", "seq")})
        rows.append(row)
    real = result.get("real_length")
    if real:
        row = {
            **empty_cell(base, real["batch_size"], real["max_length"]),
            **shared,
            "mode": "real_length",
        }
        row.update(
            {
                "rows": real["rows"],
                "rows_seen": {m: real[m]["rows_seen"] for m in ("bucket", "padded")},
                "rows_unique": {m: real[m]["rows_unique"] for m in ("bucket", "padded")},
                "bucket_sentences_per_s": real["bucket"]["sentences_per_s"],
                "padded_sentences_per_s": real["padded"]["sentences_per_s"],
                "bucket_speedup": real["bucket_speedup"],
                "padding_fraction": real["padded"]["padding_fraction"],
                "bucket_padding_fraction": real["bucket"]["padding_fraction"],
            }
        )
        rows.append(row)
    return rows


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


def run_jobs(plan: list[tuple[Artifact, dict[str, Any]]], timeout_s: float) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for index, (artifact, job) in enumerate(plan, 1):
        log.info("bench %d/%d: %s, %s threads", index, len(plan), artifact.name, job["threads"])
        try:
            result = run_worker(job, timeout_s)
        except RuntimeError as exc:
            base = base_row(artifact, job["device"], job["precision"], job["threads"])
            rows += [
                {**empty_cell(base, b, s), "error": str(exc)}
                for b in job["batch_sizes"]
                for s in job["seq_lens"]
            ]
            continue
        rows += rows_from_result(artifact, job, result)
    return rows
