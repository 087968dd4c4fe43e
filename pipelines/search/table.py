"""The search's candidate table (candidates.md) and plot (candidates.png: latency vs accuracy,
the Pareto front and the pick marked)."""

from __future__ import annotations

from pathlib import Path


def front(rows: list[dict]) -> set[str]:
    """Ids of trained rows no other trained row beats on both latency and accuracy."""
    trained = [r for r in rows if r.get("accuracy") is not None]
    out = set()
    for r in trained:
        beaten = any(
            o is not r
            and o["latency_ms"] <= r["latency_ms"]
            and o["accuracy"] >= r["accuracy"]
            and (o["latency_ms"], o["accuracy"]) != (r["latency_ms"], r["accuracy"])
            for o in trained
        )
        if not beaten:
            out.add(r["id"])
    return out


def markdown(rows: list[dict], chosen: str, teacher_ms: float | None) -> str:
    on_front = front(rows)
    lines = [
        "| candidate | kind | layers from teacher | init | params (M) | int8 p50 ms | "
        "vs teacher fp32 | short-run fp32 acc | short-run int8 acc | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda x: (x["latency_ms"] is None, x["latency_ms"] or 0)):
        ms = r["latency_ms"]
        speed = f"{teacher_ms / ms:.2f}×" if ms and teacher_ms else "–"
        acc = f"{r['fp32_accuracy']:.4f}" if r.get("fp32_accuracy") is not None else "–"
        int8 = f"{r['accuracy']:.4f}" if r.get("accuracy") is not None else "–"
        status = r["status"] + (" · front" if r["id"] in on_front else "")
        if r["id"] == chosen:
            status = "**chosen** · " + status
        kind = r.get("kind", "transformer")  # rows of searches before the kinds: transformers
        layers = r["layers"] or "–"  # a token kind takes the teacher's vectors, not its layers
        lines.append(
            f"| {r['id']} | {kind} | {layers} | {r['init']} | {r['parameters'] / 1e6:.1f} | "
            f"{'–' if ms is None else f'{ms:.3f}'} | {speed} | {acc} | {int8} | {status} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], chosen: str, floor_accuracy: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    trained = [r for r in rows if r.get("accuracy") is not None]
    on_front = front(rows)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for r in trained:
        colour = "tab:red" if r["id"] == chosen else "tab:blue" if r["id"] in on_front else "grey"
        ax.scatter(r["latency_ms"], r["accuracy"], color=colour, zorder=3)
        ax.annotate(
            r["id"],
            (r["latency_ms"], r["accuracy"]),
            fontsize=7,
            xytext=(4, 3),
            textcoords="offset points",
        )
    line = sorted((r["latency_ms"], r["accuracy"]) for r in trained if r["id"] in on_front)
    if line:
        ax.plot(*zip(*line, strict=True), color="tab:blue", lw=1, label="front")
    if floor_accuracy is not None:
        ax.axhline(floor_accuracy, color="tab:green", ls="--", lw=1, label="floor")
    ax.set_xlabel("int8 p50 latency (ms)")
    ax.set_ylabel("short-run int8 accuracy")
    ax.set_title("student search: candidates (red: chosen)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
