"""A cell's numbers from its per-run times, and whether the machine let it be measured cleanly."""

from __future__ import annotations

import statistics
from typing import Any


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


def summarize(batch: int, seq: int, times_s: list[float]) -> dict[str, Any]:
    """A cell's numbers from its per-run seconds."""
    stats = percentiles(times_s)
    return {
        "batch": batch,
        "seq": seq,
        **stats,
        "runs": len(times_s),
        "seconds": float(sum(times_s)),
        "throughput": batch * 1000.0 / stats["mean_ms"],  # sequences/s
    }


# A cell whose p99 is this many times its p50, or whose rounds' p50s differ by this factor, was
# measured while something else used the cores; the report says so instead of recommending.
# Thresholds from this project's 2-core VM: idle, sub-millisecond cells of the demo's tiny models
# reach p99/p50 ≈ 3 and round-to-round ≈ 1.9× (caches refilled after the other workers' turns);
# another job on the cores shows as 2-10× (the issue that asked for this: 18.8 → 185 ms p50).
NOISY_TAIL = 4.0
NOISY_SPREAD = 2.0
# the timing fields of a row that holds no latency (a real-length cell holds sentences/s)
EMPTY = dict.fromkeys(
    ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "runs", "throughput", "peak_rss_mb", "load_s")
)


def cell_row(
    base: dict[str, Any], batch: int, seq: int, rounds: list[list[float]], drift: list[float]
) -> dict:
    """A measured cell from its rounds' per-run ms: pooled percentiles, each round's p50.

    `drift[r]` is how much slower round r ran for every artifact of this cell (the median over
    artifacts of their p50 in r ÷ their median p50): a change of machine speed between rounds
    (CPU frequency, other guests) that cancels in the within-round speed-ups. What is left after
    dividing it out is this artifact's own disturbance; over NOISY_SPREAD, the cell is noisy.
    """
    times = [t / 1e3 for r in rounds for t in r]
    row = {**base, **summarize(batch, seq, times), "peak_rss_mb": None, "load_s": None}
    round_p50 = [statistics.median(r) for r in rounds if r]
    own = [p / d for p, d in zip(round_p50, drift, strict=False)] or round_p50
    row["round_p50_ms"] = round_p50
    row["round_drift"] = [round(d, 4) for d in drift]
    row["round_spread"] = max(own) / min(own) if own else None
    reasons = []
    if row["p99_ms"] > NOISY_TAIL * row["p50_ms"]:
        reasons.append(f"p99 {row['p99_ms'] / row['p50_ms']:.1f}× p50")
    if len(own) > 1 and row["round_spread"] > NOISY_SPREAD:
        reasons.append(f"its rounds differ {row['round_spread']:.2f}× beyond the machine's drift")
    if reasons:
        row["noisy"] = "; ".join(reasons)
    return row


def round_drift(
    times: dict[int, dict[tuple, list[list[float]]]], key: tuple, rounds: int
) -> list[float]:
    """Per round, the median over artifacts of (their p50 in the round ÷ their median p50)."""
    factors: list[list[float]] = [[] for _ in range(rounds)]
    for cells in times.values():
        per_round = cells.get(key) or []
        if len(per_round) != rounds:
            continue
        p50 = [statistics.median(r) for r in per_round]
        middle = statistics.median(p50)
        for number, value in enumerate(p50):
            factors[number].append(value / middle)
    return [statistics.median(f) if f else 1.0 for f in factors]


def real_length_row(
    base: dict[str, Any], shared: dict[str, Any], rounds: list[dict[str, Any]]
) -> dict[str, Any]:
    """The real-length cell from its rounds' replies: bucketed sentences/s is the median over the
    rounds (each also kept, `round_sentences_per_s`, for ratios taken within a round); the padded
    pass ran in the last round only (it is the comparison, not the figure)."""
    last = rounds[-1]
    per_round = [r["bucket"]["sentences_per_s"] for r in rounds if r["bucket"]["sentences_per_s"]]
    bucket = statistics.median(per_round) if per_round else None
    padded = (last.get("padded") or {}).get("sentences_per_s")
    modes = [m for m in ("bucket", "padded") if m in last]
    row = {**base, "batch": last["batch_size"], "seq": last["max_length"], **EMPTY, **shared}
    row.update(
        {
            "mode": "real_length",
            "rows": last["rows"],
            "rows_seen": {m: last[m]["rows_seen"] for m in modes},
            "rows_unique": {m: last[m]["rows_unique"] for m in modes},
            "bucket_sentences_per_s": bucket,
            "round_sentences_per_s": per_round,
            "bucket_shapes": last["bucket"]["shapes"],
            "padded_sentences_per_s": padded,
            "bucket_speedup": bucket / padded if bucket and padded else None,
            "padding_fraction": (last.get("padded") or {}).get("padding_fraction"),
            "bucket_padding_fraction": last["bucket"]["padding_fraction"],
        }
    )
    spread = max(per_round) / min(per_round) if len(per_round) > 1 else None
    row["round_spread"] = spread
    if spread and spread > NOISY_SPREAD:
        row["noisy"] = f"its rounds differ {spread:.2f}×"
    return row
