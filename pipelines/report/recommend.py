"""The recommendation rule: the fastest artifact that keeps `min_retained` of the teacher's accuracy.

"Fastest" is by what the user serves (`bench.serve`): `latency`, the p50 at batch 1 (the fixed
shape); `throughput`, the sentences/s over the eval rows at their real lengths, length-bucketed
(the bench's real-length cell). The report states its pick and the bundle ships it (or the same
rule among ONNX artifacts).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pipelines.report.selection import comparison_shape, measured_rows, pick_batch, real_rows

SERVES = ("latency", "throughput")  # bench.serve


@dataclass
class RecommendRule:
    """Fastest p50 at batch × seq keeping min_retained of the teacher's accuracy, on `device`."""

    min_retained: float = 0.99  # fraction of the teacher's accuracy to keep, (0, 1]
    batch: int = 1  # latency-bound serving: one request at a time
    seq: int | None = 128  # None or unmeasured: the largest measured seq
    device: str = "cpu"  # cpu | cuda
    serve: str = "latency"  # latency: by that p50 | throughput: by real-length sentences/s

    def __post_init__(self) -> None:
        if not 0 < self.min_retained <= 1:
            raise ValueError(f"min_retained must be in (0, 1], got {self.min_retained}")
        if self.serve not in SERVES:
            raise ValueError(f"serve must be one of {list(SERVES)}, got {self.serve!r}")

    def describe(self) -> str:
        keep = f"keeping ≥ {self.min_retained:.0%} of the teacher's accuracy"
        if self.serve == "throughput":
            return (
                f"most sentences/s on {self.device} over the eval rows at their real lengths "
                f"(length-bucketed), most threads, {keep}"
            )
        return (
            f"fastest p50 on {self.device} at batch {self.batch}, seq {self.seq or 'max'} (or the "
            f"largest measured), most threads, {keep}"
        )


def as_rule(rule: RecommendRule | dict | None) -> RecommendRule:
    if rule is None:
        return RecommendRule()
    if isinstance(rule, dict):
        return RecommendRule(**rule)
    return rule


def teacher_accuracy(rows: list[dict[str, Any]], manifests: dict[str, dict]) -> float | None:
    for r in rows:
        if r["artifact"] == "teacher" and r.get("accuracy") is not None:
            return float(r["accuracy"])
    acc = (manifests.get("teacher") or {}).get("metrics", {}).get("accuracy")
    return None if acc is None else float(acc)


def compared_rows(
    rows: list[dict[str, Any]], rule: RecommendRule | dict | None = None
) -> list[dict[str, Any]]:
    """The measured rows the rule compares: its batch and seq (or the nearest measured), the
    most threads, on its device."""
    rule = as_rule(rule)
    measured = measured_rows(rows, rule.device)
    seq, threads = comparison_shape(measured, rule.seq)
    batch = pick_batch(measured, rule.batch)
    return [r for r in measured if (r["batch"], r["seq"], r["threads"]) == (batch, seq, threads)]


def recommend(
    rows: list[dict[str, Any]], manifests: dict[str, dict], rule: RecommendRule | dict | None = None
) -> dict[str, Any] | None:
    """The row the rule picks (with `reason`), or None when nothing measured qualifies.
    Baselines (the peer path) are compared against, never recommended."""
    rule = as_rule(rule)
    at = [r for r in compared_rows(rows, rule) if r.get("role", "model") != "baseline"]
    if not at:
        return None
    batch, seq, threads = at[0]["batch"], at[0]["seq"], at[0]["threads"]
    teacher = teacher_accuracy(rows, manifests)
    if teacher is None:
        keep, floor = [r for r in at if r.get("accuracy") is not None] or at, None
    else:
        floor = teacher * rule.min_retained
        keep = [r for r in at if r.get("accuracy") is not None and r["accuracy"] >= floor - 1e-12]
    if not keep:
        return None
    floor_text = "no teacher accuracy known" if floor is None else f"accuracy ≥ {floor:.4f}"
    among = f"among {len(keep)} of {len(at)} artifacts with {floor_text}"
    served = real_rows(rows, rule.device)
    if rule.serve == "throughput" and any(r["artifact"] in served for r in keep):
        # the grid row of the pick is returned (its p50, size, path), picked by its real lengths
        best = max(
            (r for r in keep if r["artifact"] in served),
            key=lambda r: served[r["artifact"]]["bucket_sentences_per_s"],
        )
        real = served[best["artifact"]]
        reason = (
            f"most sentences/s ({real['bucket_sentences_per_s']:,.0f}) over the "
            f"{real.get('rows', '?')} eval rows, length-bucketed, batch {real['batch']}, "
            f"{real['threads']} threads on {rule.device} {among}"
        )
        return {**best, "reason": reason, "rule": asdict(rule)}
    best = min(keep, key=lambda r: r["p50_ms"])
    unserved = (
        "; no real-length rows (bench.bucket off), so by latency, not bench.serve: throughput"
        if rule.serve == "throughput"
        else ""
    )
    reason = (
        f"fastest p50 ({best['p50_ms']:.3f} ms) at batch {batch}, seq {seq}, {threads} "
        f"threads on {rule.device} {among}{unserved}"
    )
    return {**best, "reason": reason, "rule": asdict(rule)}


def decisive_noisy(
    rows: list[dict[str, Any]],
    manifests: dict[str, dict],
    best: dict[str, Any] | None,
    rule: RecommendRule | dict | None = None,
) -> list[str]:
    """The noisy cells the recommendation rests on: the pick itself, the teacher's fp32 PyTorch
    and the peer baseline (its speed-ups are ratios to them), and any artifact over the accuracy
    floor whose fastest round was as fast as the pick (noise may have hidden a better pick). A
    noisy cell that could not have changed the pick or its ratios is reported, not decisive."""
    rule = as_rule(rule)
    compared = compared_rows(rows, rule)
    if rule.serve == "throughput":  # the real-length cells the pick rests on are compared too
        compared += list(real_rows(rows, rule.device).values())
    if not best:
        return [r["artifact"] for r in compared if r.get("noisy")]
    teacher = teacher_accuracy(rows, manifests)
    floor = None if teacher is None else teacher * rule.min_retained
    out = []
    for r in compared:
        if not r.get("noisy"):
            continue
        anchor = r["artifact"] in (best["artifact"], "teacher") or r.get("role") == "baseline"
        if r.get("mode") == "real_length":
            if anchor:
                out.append(f"{r['artifact']} (real lengths)")
            continue
        fastest = min(r.get("round_p50_ms") or [r["p50_ms"]])
        eligible = floor is None or (r.get("accuracy") is not None and r["accuracy"] >= floor)
        if anchor or (eligible and fastest <= best["p50_ms"]):
            out.append(r["artifact"])
    return out
