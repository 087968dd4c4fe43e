"""predict.py's cold start (fresh processes: interpreter, imports, session, first line) and
steady-state latency, measured as a device user would run the bundle."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from pipelines.bundle.verify import BundleError


def measure_cold_start(
    out: Path, line: str, runs: int, threads: int | None, runner: list[str] | None = None
) -> dict[str, Any]:
    """Median over `runs` fresh processes of python startup + imports + session + first line.
    `runner`: another command with predict.py's options and --timings (`node predict.mjs`)."""
    cmd = [*(runner or [sys.executable, str(out / "predict.py")]), "--timings"]
    cmd += ["--threads", str(threads)] if threads else []
    samples = []
    for _ in range(runs):
        spawned, start = time.time(), time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        killer = threading.Timer(600, proc.kill)  # a hung start must not hang the pipeline
        killer.start()
        try:
            proc.stdin.write(line + "\n")
            proc.stdin.close()
            first = proc.stdout.readline()  # the first prediction: the clock stops here
            cold = time.perf_counter() - start
            proc.stdout.read()
            err = proc.stderr.read()
            proc.wait()
        finally:
            killer.cancel()
        if proc.returncode != 0 or not first:
            raise BundleError(f"{out}/predict.py failed on a cold start: {err.strip()[-800:]}")
        timing = json.loads(err.strip().splitlines()[-1])
        samples.append(
            {
                "cold_start_s": cold,
                "startup_import_s": timing["main_started"] - spawned,
                "session_s": timing["session_s"],
                "first_prediction_s": timing["first_prediction_s"],
            }
        )
    return {key: statistics.median(s[key] for s in samples) for key in samples[0]} | {"runs": runs}


def measure_steady_state(
    out: Path, rows_path: Path, repeats: int, threads: int | None, runner: list[str] | None = None
) -> dict[str, Any]:
    cmd = [*(runner or [sys.executable, str(out / "predict.py")]), "--input", str(rows_path)]
    cmd += ["--benchmark", str(repeats)] + (["--threads", str(threads)] if threads else [])
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise BundleError(f"{out}/predict.py --benchmark failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout)
