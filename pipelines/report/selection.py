"""Which benchmark rows are compared: measured grid rows, at one shape, on one device; which peer
baseline; and the task type (so the score's name) the manifests were written for."""

from __future__ import annotations

from typing import Any

PEER = "student-int8-peer"  # the baseline each speed-up is also shown against


def peer_of(artifact: str) -> str:
    """The peer baseline `artifact` is held against: optimum-cli's int8 of the same model (the
    quantize stage names it `<who>-int8-peer`), so a recommended teacher artifact is compared
    with the peer's int8 teacher, not with the peer's int8 student."""
    return f"{'teacher' if artifact.startswith('teacher') else 'student'}-int8-peer"


def peer_said(peer: str) -> str:
    """'`student-int8-peer`: optimum-cli's int8 of the same student'."""
    return f"`{peer}`: optimum-cli's int8 of the same {peer.split('-', 1)[0]}"


def no_peer(peer: str) -> str:
    return (
        f"the peer path: no `{peer}` row (quantize.peer is off, or bench.artifacts leaves it out)"
    )


def measured_rows(rows: list[dict[str, Any]], device: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in rows
        if r.get("mode", "grid") == "grid"
        and not r.get("error")
        and not r.get("skipped")
        and r.get("p50_ms") is not None
        and (device is None or r["device"] == device)
    ]


def real_rows(rows: list[dict[str, Any]], device: str = "cpu") -> dict[str, dict[str, Any]]:
    """{artifact: its real-length row at the most threads measured} (bucketed sentences/s)."""
    real = [
        r
        for r in rows
        if r.get("mode") == "real_length"
        and not r.get("error")
        and r.get("bucket_sentences_per_s")
        and r.get("device", "cpu") == device
    ]
    top = max((r.get("threads") or 0 for r in real), default=None)
    return {r["artifact"]: r for r in real if (r.get("threads") or 0) == top}


def comparison_shape(
    rows: list[dict[str, Any]], seq: int | None = None
) -> tuple[int | None, int | None]:
    """(seq, threads) used for comparisons: `seq` if measured else the largest; most threads."""
    seqs = sorted({r["seq"] for r in rows})
    threads = max((r["threads"] for r in rows), default=None)
    if not seqs:
        return None, threads
    return (seq if seq in seqs else seqs[-1]), threads


def pick_batch(rows: list[dict[str, Any]], wanted: int, largest: bool = False) -> int | None:
    batches = sorted({r["batch"] for r in rows})
    if not batches:
        return None
    if wanted in batches:
        return wanted
    return batches[-1] if largest else batches[0]


def devices(rows: list[dict[str, Any]]) -> list[str]:
    return [d for d in ("cpu", "cuda") if any(r["device"] == d for r in rows)]


def task_type_name(manifests: dict[str, dict]) -> str:
    for manifest in manifests.values():
        task = ((manifest or {}).get("config") or {}).get("task") or {}
        if task:
            return task.get("type", "single_label")
    return "single_label"


def score_metric(manifests: dict[str, dict]) -> str:
    """The name of the score the `accuracy` fields hold (modelkit.task_types)."""
    from modelkit.task_types import METRIC_LABELS, TASK_TYPES

    return METRIC_LABELS[TASK_TYPES[task_type_name(manifests)].metric]
