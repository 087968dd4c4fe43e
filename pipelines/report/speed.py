"""Speed-ups taken within a round, and the report's verdict on how busy the machine was.

The bench times every artifact once per round, the rounds interleaved (A B C … A B C …). A ratio
of two artifacts is taken within each round, so a change of load between rounds cancels; the
report shows the median over rounds and their range. Rows without round data (old runs, GPU
rows) fall back to the ratio of pooled p50s.
"""

from __future__ import annotations

import statistics
from typing import Any

STEAL_BUSY_PCT = 5.0  # CPU time stolen by other guests during the bench, over which it is busy
BUSY_PCT = 25.0  # CPU use by others in the 2 s before the bench, over which the machine was busy


def speedup(
    base: dict[str, Any] | None, row: dict[str, Any] | None
) -> tuple[float, float, float] | None:
    """(median, lowest, highest) of base p50 ÷ row p50 over the rounds both were timed in."""
    if not base or not row or not base.get("p50_ms") or not row.get("p50_ms"):
        return None
    a, b = base.get("round_p50_ms") or [], row.get("round_p50_ms") or []
    if a and len(a) == len(b):
        ratios = [x / y for x, y in zip(a, b, strict=True) if x and y]
        if ratios:
            return statistics.median(ratios), min(ratios), max(ratios)
    ratio = base["p50_ms"] / row["p50_ms"]
    return ratio, ratio, ratio


def show(ratio: tuple[float, float, float] | None) -> str:
    if ratio is None:
        return "–"
    mid, lo, hi = ratio
    return f"{mid:.2f}×" if hi - lo < 0.005 else f"{mid:.2f}× ({lo:.2f}–{hi:.2f})"


def busy(rows: list[dict[str, Any]], conditions: dict[str, Any] | None, cores: int) -> list[str]:
    """Why the measurements cannot be trusted (empty when they can): noisy cells, the load
    before the bench, CPU steal during it."""
    reasons = []
    noisy = [r for r in rows if r.get("noisy") and r.get("device") == "cpu"]
    if noisy:
        worst = sorted(noisy, key=lambda r: -(r.get("round_spread") or 0))[:3]
        shown = "; ".join(
            f"{r['artifact']} b{r['batch']}/s{r['seq']}/{r['threads']}t: {r['noisy']}"
            for r in worst
        )
        reasons.append(f"{len(noisy)} of {len(rows)} cells were noisy ({shown})")
    if conditions:
        used = (conditions.get("before") or {}).get("busy_pct")
        if used is not None and used > BUSY_PCT:
            reasons.append(f"other processes used {used}% of the CPUs just before the bench")
        steal = conditions.get("steal_pct")
        if steal is not None and steal > STEAL_BUSY_PCT:
            reasons.append(f"{steal}% of CPU time was stolen by other guests during the bench")
    return reasons
