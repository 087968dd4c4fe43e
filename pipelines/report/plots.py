"""The report's two plots: accuracy vs latency (Pareto front marked) and latency vs length."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.report.selection import comparison_shape, measured_rows, pick_batch


def pareto_points(
    rows: list[dict[str, Any]], batch: int = 1, device: str = "cpu"
) -> list[dict[str, Any]]:
    """One point per artifact (accuracy vs p50 at `batch`, largest seq, most threads), front marked."""
    measured = measured_rows(rows, device)
    seq, threads = comparison_shape(measured)
    batch = pick_batch(measured, batch)
    points = [
        {
            "artifact": r["artifact"],
            "precision": r["precision"],
            "p50_ms": r["p50_ms"],
            "accuracy": r["accuracy"],
        }
        for r in measured
        if (r["batch"], r["seq"], r["threads"]) == (batch, seq, threads)
        and r.get("accuracy") is not None
    ]
    best = -float("inf")
    for p in sorted(points, key=lambda p: (p["p50_ms"], -p["accuracy"])):
        p["pareto"] = p["accuracy"] > best
        best = max(best, p["accuracy"])
    for p in points:
        p.update(batch=batch, seq=seq, threads=threads)
    return points


def plot_pareto(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p["p50_ms"] for p in points], [p["accuracy"] for p in points], zorder=3)
    for i, p in enumerate(sorted(points, key=lambda p: p["p50_ms"])):
        ax.annotate(  # labels staggered vertically: neighbours in latency often share accuracy
            p["artifact"],
            (p["p50_ms"], p["accuracy"]),
            fontsize=7,
            xytext=(4, 4 + 9 * (i % 4)),
            textcoords="offset points",
        )
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["p50_ms"])
    if front:
        ax.step(
            [p["p50_ms"] for p in front],
            [p["accuracy"] for p in front],
            where="post",
            color="C3",
            marker="o",
            markerfacecolor="none",
            markersize=10,
            label="Pareto front",
        )
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency (ms, log scale)")
    ax.set_ylabel("accuracy")
    if points:
        p = points[0]
        ax.set_title(
            f"accuracy vs latency, batch {p['batch']}, seq {p['seq']}, {p['threads']} threads"
        )
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_series(
    rows: list[dict[str, Any]], batch: int = 1, device: str = "cpu"
) -> dict[str, list[tuple[int, float]]]:
    measured = measured_rows(rows, device)
    _, threads = comparison_shape(measured)
    batch = pick_batch(measured, batch)
    series: dict[str, list[tuple[int, float]]] = {}
    for r in measured:
        if r["batch"] == batch and r["threads"] == threads:
            series.setdefault(r["artifact"], []).append((r["seq"], r["p50_ms"]))
    return {k: sorted(v) for k, v in series.items()}


def plot_latency(series: dict[str, list[tuple[int, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in series.items():
        ax.plot([s for s, _ in points], [ms for _, ms in points], marker="o", label=name)
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("p50 latency (ms)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
