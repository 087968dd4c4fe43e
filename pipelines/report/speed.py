"""Speed-ups taken within a round, and the report's verdict on how busy the machine was.

The bench times every artifact once per round, the rounds interleaved (A B C … A B C …). A ratio
of two artifacts is taken within each round, so a change of load between rounds cancels; the
report shows the median over rounds and their range. Rows without round data (old runs, GPU
rows) fall back to the ratio of pooled p50s.
"""

from __future__ import annotations

import statistics
from typing import Any

from pipelines.report.selection import no_peer, peer_said

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


def real_speedup(
    base: dict[str, Any] | None, row: dict[str, Any] | None
) -> tuple[float, float, float] | None:
    """(median, lowest, highest) of row ÷ base sentences/s at real lengths over the rounds both
    were timed in (the real-length cell is timed in the same turn as the grid, every round)."""
    if not base or not row:
        return None
    a, b = base.get("round_sentences_per_s") or [], row.get("round_sentences_per_s") or []
    if a and len(a) == len(b):
        ratios = [y / x for x, y in zip(a, b, strict=True) if x and y]
        if ratios:
            return statistics.median(ratios), min(ratios), max(ratios)
    if not base.get("bucket_sentences_per_s") or not row.get("bucket_sentences_per_s"):
        return None
    ratio = row["bucket_sentences_per_s"] / base["bucket_sentences_per_s"]
    return ratio, ratio, ratio


def best_int8_teacher(
    by_name: dict[str, dict[str, Any]], real: bool = False, accuracy: float | None = None
) -> str | None:
    """The fastest int8 teacher among `by_name`'s rows (highest sentences/s with `real`, else
    lowest p50) at `accuracy` or better when one is (the rule of the fixed-shape line,
    `pipelines.report.comparisons.int8_teacher`), else the fastest: the strongest baseline
    distillation is measured against, or None."""
    teachers = [
        r
        for name, r in by_name.items()
        if name.startswith("teacher") and r.get("precision") == "int8"
    ]
    as_good = [r for r in teachers if accuracy is not None and (r.get("accuracy") or 0) >= accuracy]
    teachers = as_good or teachers
    if not teachers:
        return None
    if real:
        return max(teachers, key=lambda r: r.get("bucket_sentences_per_s") or 0)["artifact"]
    return min(teachers, key=lambda r: r.get("p50_ms") or float("inf"))["artifact"]


def _against(by_name: dict[str, dict], row: dict, real: bool, peer: str) -> list[str]:
    """'8.1× the teacher's fp32 PyTorch', '… the best int8 teacher', '… the peer path'."""
    ratio = real_speedup if real else speedup
    out = [f"**{show(ratio(by_name.get('teacher'), row))}** the teacher's fp32 PyTorch"]
    int8 = best_int8_teacher(by_name, real=real, accuracy=row.get("accuracy"))
    if int8:
        out.append(f"**{show(ratio(by_name[int8], row))}** the best int8 teacher (`{int8}`)")
    accuracy = (by_name.get(peer) or {}).get("accuracy")
    out.append(
        f"**{show(ratio(by_name[peer], row))}** the peer path ({peer_said(peer)}"
        + ("" if accuracy is None else f", accuracy {accuracy:.4f}")
        + ")"
        if peer in by_name
        else no_peer(peer)
    )
    return out


def speed_lines(
    best: dict[str, Any], compared: list[dict], real: dict[str, dict], serve: str, peer: str
) -> list[str]:
    """The summary's two speed lines for the pick: at the fixed shape (its p50 at batch 1) and at
    real lengths (sentences/s over the eval rows, length-bucketed), each against the teacher's
    fp32 PyTorch, the best int8 teacher and the peer path; the one `serve` ranks by is marked.

    `compared`: the grid rows at the pick's shape; `real`: {artifact: real-length row}."""
    by_name = {r["artifact"]: r for r in compared}
    mark = {serve: " (what it is recommended by, bench.serve: " + serve + ")"}
    shape = f"batch {best['batch']}, seq {best['seq']}, {best['threads']} threads"
    lines = [
        f"- Fixed shape{mark.get('latency', '')}, {shape}: "
        + ", ".join(_against(by_name, best, False, peer))
        + f". p50 {best['p50_ms']:.3g} ms, p99 {best['p99_ms']:.3g} ms."
    ]
    mine = real.get(best["artifact"])
    if mine:
        lines.append(
            f"- Real lengths{mark.get('throughput', '')}, the {mine.get('rows', '?')} eval rows "
            f"length-bucketed, batch {mine['batch']}, {mine['threads']} threads: "
            f"{mine['bucket_sentences_per_s']:,.0f} sentences/s, "
            + ", ".join(_against(real, mine, True, peer))
            + "."
        )
    else:
        lines.append("- Real lengths: not measured (bench.bucket off, or the pick's cell failed).")
    return lines
