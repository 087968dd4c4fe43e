"""The bench's progress: a line per artifact × cell as its last round comes in.

    [bench] 3/8 student-onnx b1/s128 2t: p50 0.412 ms (3 rounds)
    [bench] 4/8 student-onnx real lengths b32 2t: 2,310 sentences/s

`progress` is the one function that says them, so a shared progress helper can replace it.
"""

from __future__ import annotations

import logging
import statistics
import sys
from typing import Any

log = logging.getLogger("distillery")


def progress(message: str) -> None:
    """One line per finished artifact × cell: on the console (stderr, so a table printed on
    stdout stays clean) and in the stage's log.txt (the `distillery` logger). The one place the
    bench reports progress, so a shared progress helper can replace it."""
    log.info(message)
    print(message, file=sys.stderr, flush=True)


def shown_error(text: str, limit: int = 160) -> str:
    line = text.strip().splitlines()[-1] if text.strip() else text
    return line if len(line) <= limit else line[: limit - 1] + "…"


def cell_lines(artifact: Any, threads: int, times, errors, real, count) -> None:
    """The progress lines of one artifact's cells, once its last round is in."""
    done, total = count
    for key in sorted(set(times) | set(errors)):
        done[0] += 1
        batch, seq = key
        if times.get(key):
            p50 = statistics.median([t for r in times[key] for t in r])
            what = f"p50 {p50:.3g} ms ({len(times[key])} rounds)"
        else:
            what = f"error: {shown_error(errors.get(key, 'not measured'))}"
        progress(f"[bench] {done[0]}/{total} {artifact.name} b{batch}/s{seq} {threads}t: {what}")
    if real and "error" in real[-1]:
        done[0] += 1
        progress(
            f"[bench] {done[0]}/{total} {artifact.name} real lengths {threads}t: error: "
            f"{shown_error(real[-1]['error'])}"
        )
    elif real:
        done[0] += 1
        values = [r["bucket"]["sentences_per_s"] for r in real if r["bucket"]["sentences_per_s"]]
        rate = f"{statistics.median(values):,.0f} sentences/s" if values else "not measured"
        progress(
            f"[bench] {done[0]}/{total} {artifact.name} real lengths "
            f"b{real[-1]['batch_size']} {threads}t: {rate}"
        )
