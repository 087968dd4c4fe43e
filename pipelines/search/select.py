"""Which candidates survive the timing, which get trained, which one is picked. Pure functions."""

from __future__ import annotations

from pipelines.search.space import Candidate


def survivors(
    timed: list[tuple[Candidate, float]], budget_ms: float | None
) -> tuple[list[tuple[Candidate, float]], dict[str, str]]:
    """(survivors sorted fastest first, {id: why dropped}). Dropped: over the budget, or
    dominated (another candidate as large in every dimension runs at most as long)."""
    dropped: dict[str, str] = {}
    for cand, ms in timed:
        if budget_ms is not None and ms > budget_ms:
            dropped[cand.id] = f"over budget: {ms:.3f} ms > {budget_ms:g} ms"
    for cand, ms in timed:
        if cand.id in dropped:
            continue
        for other, other_ms in timed:
            if other is cand or other.id in dropped or not other.covers(cand):
                continue
            if (other.depth, other.width, other.ffn) == (cand.depth, cand.width, cand.ffn):
                continue  # the same shape from other layers: accuracy decides, not size
            if other_ms <= ms:
                dropped[cand.id] = (
                    f"dominated by {other.id}: at least as large, {other_ms:.3f} ms ≤ {ms:.3f} ms"
                )
                break
    kept = sorted(((c, ms) for c, ms in timed if c.id not in dropped), key=lambda x: x[1])
    return kept, dropped


def training_order(kept: list[tuple[Candidate, float]], budget_ms: float | None) -> list[Candidate]:
    """Floor mode: fastest first (the first one over the floor ends the search); budget mode:
    largest first (the most accurate under the budget is likeliest among the slowest)."""
    ordered = [c for c, _ in kept]
    return list(reversed(ordered)) if budget_ms is not None else ordered


def meets_floor(accuracy: float, floor_accuracy: float, slack_points: float) -> bool:
    return accuracy >= floor_accuracy - slack_points / 100.0


def pick(
    trained: list[dict], floor_accuracy: float, slack_points: float, budget_ms: float | None
) -> tuple[dict, str]:
    """(the chosen row, why). Rows: {"id", "latency_ms", "accuracy", ...} of trained candidates.

    Budget mode: the most accurate (ties: the faster). Floor mode: the fastest meeting the floor
    (within the slack); when none does, the most accurate, and the reason says so."""
    if not trained:
        raise ValueError("no candidate was trained")
    best_accuracy = max(trained, key=lambda r: (r["accuracy"], -r["latency_ms"]))
    if budget_ms is not None:
        return best_accuracy, f"most accurate within {budget_ms:g} ms"
    passing = [r for r in trained if meets_floor(r["accuracy"], floor_accuracy, slack_points)]
    if passing:
        chosen = min(passing, key=lambda r: r["latency_ms"])
        return (
            chosen,
            f"fastest at or over the floor {floor_accuracy:.4f} (slack {slack_points:g} pt)",
        )
    return best_accuracy, (
        f"no candidate reached the floor {floor_accuracy:.4f} on the short schedule: "
        "the most accurate one"
    )
