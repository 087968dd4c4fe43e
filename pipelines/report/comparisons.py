"""The recommendation against what a user would otherwise ship, all from one bench run (the rows
the rule compares: one shape, one device): the teacher's fp32 PyTorch, the best int8 teacher and
the peer path; and against its neighbours in accuracy, each within noise or not.

    baselines(compared, best)                     # [Baseline('teacher fp32 PyTorch', row, ...)]
    noise_lines(compared, best, floor, evidence)  # the report's sentences on what noise allows
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pipelines.data.confidence import eval_size_note
from pipelines.report.noise import Evidence
from pipelines.report.selection import peer_of, peer_said


@dataclass(frozen=True)
class Baseline:
    label: str  # what it is, for prose: "the teacher's fp32 PyTorch"
    row: dict[str, Any]
    note: str = ""  # why this row (which int8 teacher, and why)


def int8_teacher(compared: list[dict[str, Any]], best: dict[str, Any]) -> Baseline | None:
    """The fastest int8 teacher at equal or better accuracy than `best`; if none is as accurate,
    the fastest int8 teacher overall (the smallest speed-up one could claim), saying so."""
    teachers = [
        r for r in compared if r["artifact"].startswith("teacher") and r["precision"] == "int8"
    ]
    if not teachers:
        return None
    acc = best.get("accuracy")
    as_good = [r for r in teachers if acc is not None and (r.get("accuracy") or 0) >= acc - 1e-12]
    if as_good:
        pick = min(as_good, key=lambda r: r["p50_ms"])
        return Baseline(
            f"`{pick['artifact']}`", pick, "the fastest int8 teacher at equal or better accuracy"
        )
    pick = min(teachers, key=lambda r: r["p50_ms"])
    top = max((r.get("accuracy") or 0) for r in teachers)
    return Baseline(
        f"`{pick['artifact']}`",
        pick,
        f"the fastest int8 teacher; none of the {len(teachers)} is as accurate as the "
        f"recommendation (the best reaches {top:.4f})",
    )


def baselines(compared: list[dict[str, Any]], best: dict[str, Any]) -> list[Baseline]:
    """The three baselines the summary states speed-ups over, those that were measured."""
    by_name = {r["artifact"]: r for r in compared}
    out = []
    if "teacher" in by_name:
        out.append(Baseline("the teacher's fp32 PyTorch", by_name["teacher"]))
    teacher8 = int8_teacher(compared, best)
    if teacher8:
        out.append(teacher8)
    peer = peer_of(best["artifact"])
    if peer in by_name:
        out.append(Baseline("the peer path", by_name[peer], peer_said(peer)))
    return out


def _said(name: str, row: dict[str, Any], evidence: Evidence) -> str:
    return f"`{name}` at {evidence.text(row.get('accuracy'))}"


def _pair(a: dict[str, Any], b: dict[str, Any], evidence: Evidence, why: str) -> str | None:
    verdict = evidence.compare(a, b)
    if verdict is None:
        return None
    said = "are within noise of each other" if verdict.within_noise else "differ beyond noise"
    return (
        f"- {_said(a['artifact'], a, evidence)} and {_said(b['artifact'], b, evidence)} {said}"
        f" ({verdict.how}){why}."
    )


def noise_lines(
    compared: list[dict[str, Any]],
    best: dict[str, Any] | None,
    floor: float | None,
    evidence: Evidence,
) -> list[str]:
    """What the eval split's noise allows one to say: the recommendation against the teacher,
    the next artifact the rule would pick, and the fastest artifact the floor left out; and, when
    the split is too small to tell artifacts a few points apart, its size and interval width."""
    if not evidence.rows or not evidence.proportion:
        return []
    lines = []
    teacher = next((r for r in compared if r["artifact"] == "teacher"), None)
    note = eval_size_note(evidence.rows, (teacher or best or {}).get("accuracy") or 0.9)
    if note:
        lines.append(f"- **Eval split too small:** {note}")
    if best:
        if teacher and teacher is not best:
            lines.append(_pair(best, teacher, evidence, ""))
        eligible = sorted(
            (
                r
                for r in compared
                if r.get("role", "model") != "baseline"
                and r["artifact"] != best["artifact"]
                and r.get("accuracy") is not None
                and (floor is None or r["accuracy"] >= floor - 1e-12)
            ),
            key=lambda r: r["p50_ms"],
        )
        if eligible:
            lines.append(_pair(best, eligible[0], evidence, "; the latter is the rule's next pick"))
    left_out = [
        r
        for r in compared
        if floor is not None
        and r.get("role", "model") != "baseline"
        and r.get("accuracy") is not None
        and r["accuracy"] < floor - 1e-12
        and (best is None or r["p50_ms"] < best["p50_ms"])
    ]
    if left_out:
        fastest = min(left_out, key=lambda r: r["p50_ms"])
        span = evidence.interval(fastest["accuracy"])
        reach = span is not None and span[1] >= floor
        lines.append(
            f"- {_said(fastest['artifact'], fastest, evidence)} is faster but under the accuracy "
            f"floor {floor:.4f}; "
            + (
                "its interval reaches the floor, so the floor's verdict on it is within noise: "
                "more eval rows could change the pick."
                if reach
                else "its whole interval is under the floor, so leaving it out is not noise."
            )
        )
    lines = [line for line in lines if line]
    if not lines:
        return []
    return ["**Accuracy, and what noise allows (95% intervals):**", "", *lines]
