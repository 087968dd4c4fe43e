"""The report's two plots: accuracy vs latency (Pareto front drawn) and latency vs length.

Both colour an artifact by its family (`pipelines.report.palette`), the same colour and marker
in both; the teacher's own int8 and ONNX copies are drawn hollow. Legends sit outside the axes, so they hide no point.
Each plot function returns what it drew (the layout), which the tests check.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pipelines.report.noise import Evidence
from pipelines.report.palette import Family, family_of, hollow
from pipelines.report.selection import comparison_shape, measured_rows, pick_batch

MIN_SPAN = 0.02  # the accuracy axis spans at least 2 points: half a point is not a cliff
LINE_STYLES = ["-", "--", ":", "-."]  # one per thread count (latency plot)


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
            "backend": r["backend"],
            "precision": r["precision"],
            "role": r.get("role", "model"),
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


def accuracy_range(points: list[dict[str, Any]], evidence: Evidence) -> tuple[float, float]:
    """The y-axis range: every error bar inside, at least MIN_SPAN tall, within [0, 1] plus a
    margin for markers at 1.0."""
    lows, highs = [], []
    for p in points:
        span = evidence.interval(p["accuracy"]) or (p["accuracy"], p["accuracy"])
        lows.append(span[0])
        highs.append(span[1])
    lo, hi = (min(lows), max(highs)) if points else (0.0, 1.0)
    pad = max(MIN_SPAN - (hi - lo), 0) / 2 + 0.08 * max(hi - lo, MIN_SPAN)
    lo, hi = lo - pad, hi + pad
    if hi > 1.01:
        lo, hi = lo - (hi - 1.01), 1.01
    if lo < 0:
        lo, hi = 0.0, hi - lo
    return lo, hi


# Where a number may go, nearest first: 16 directions (right and up first) at growing distances
# (points); beyond the first ring a thin leader line ties the number to its point.
OFFSETS = [
    (r * math.cos(math.radians(a)), r * math.sin(math.radians(a)))
    for r in (7, 12, 18, 26, 36, 48, 62, 80)
    for a in (45, -45, 135, -135, 0, 180, 90, -90, 22.5, -22.5, 157.5, -157.5, 67.5, -67.5,
              112.5, -112.5)
]  # fmt: skip


def text_box(label, renderer):
    """The box of a label's text alone (an Annotation's own box takes in its leader line)."""
    from matplotlib.text import Text

    label.update_positions(renderer)  # an Annotation places its text when asked for its box
    return Text.get_window_extent(label, renderer)


def _place_labels(ax, fig, xy: list[tuple[float, float]], texts: list[str]) -> list:
    """Number labels beside their points, none overlapping another label or a marker: each
    tries OFFSETS around its point, nearest first, and keeps the first free one inside the axes
    (the farthest, when none is free). Written here: adjustText does it, but is not a
    dependency for a dozen points."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    marks = [ax.transData.transform(p) for p in xy]
    taken: list = []
    for (x, y), text in zip(xy, texts, strict=True):
        for i, (dx, dy) in enumerate(OFFSETS):
            label = ax.annotate(
                text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=8,
                fontweight="bold", zorder=4,
                ha="left" if dx > 2 else "right" if dx < -2 else "center",
                va="bottom" if dy > 2 else "top" if dy < -2 else "center",
                arrowprops={"arrowstyle": "-", "color": "0.55", "lw": 0.6} if i >= 16 else None,
            )  # fmt: skip
            box = text_box(label, renderer)
            near = box.padded(4)  # a gap, so "2" and "3" never read as "23"
            free = not any(near.overlaps(text_box(t, renderer)) for t in taken) and not any(
                near.contains(mx, my) for mx, my in marks
            )
            inside = frame.contains(box.x0, box.y0) and frame.contains(box.x1, box.y1)
            if (free and inside) or i == len(OFFSETS) - 1:
                break
            label.remove()
        taken.append(label)
    return taken


def _handle(fam: Family, face: str, label: str, ls: str = ""):
    from matplotlib.lines import Line2D

    return Line2D([], [], ls=ls, marker=fam.marker, color=fam.colour, markerfacecolor=face,
                  label=label)  # fmt: skip


def _outside(ax, top: tuple[list, str, int], bottom: tuple[list, str, int]) -> list:
    """Two legends right of the axes (top-aligned and bottom-aligned), so they hide no point."""
    legends = []
    for (handles, title, size), (loc, y) in zip(
        (top, bottom), (("upper left", 1.0), ("lower left", 0.0)), strict=True
    ):
        legends.append(ax.legend(handles=handles, title=title, loc=loc, fontsize=size,
                                 bbox_to_anchor=(1.01, y)))  # fmt: skip
        ax.add_artist(legends[-1])
    return legends


def _save(fig, ax, path: Path, legends: list, **drawn: Any) -> dict[str, Any]:
    """Save (legends added with add_artist are left out of the tight box unless named) and
    close; the layout: the axes' and legends' boxes in display pixels, and what else was drawn."""
    import matplotlib.pyplot as plt

    renderer = fig.canvas.get_renderer()
    layout = {
        "axes": ax.get_window_extent(renderer).bounds,
        "legends": [leg.get_window_extent(renderer).bounds for leg in legends],
        **drawn,
    }
    fig.savefig(path, dpi=110, bbox_inches="tight", bbox_extra_artists=legends)
    plt.close(fig)
    return layout


def plot_pareto(
    points: list[dict[str, Any]], path: Path, evidence: Evidence | None = None
) -> dict[str, Any]:
    """Accuracy (95% interval bars) vs p50, log scale; points numbered by latency, the key and
    the family legend outside the axes; the front as a step line. Returns the layout drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    evidence = evidence or Evidence(rows=None)
    points = sorted(points, key=lambda p: p["p50_ms"])
    fig, ax = plt.subplots(figsize=(10, 5.5))
    families: dict[str, Family] = {}
    key = []
    for i, p in enumerate(points, 1):
        fam = families.setdefault(family_of(p).label, family_of(p))
        span = evidence.interval(p["accuracy"])
        # clipped at 0: at accuracy 1.0 (or 0.0) the bound equals the point up to float rounding
        err = (
            [[max(0.0, p["accuracy"] - span[0])], [max(0.0, span[1] - p["accuracy"])]]
            if span
            else None
        )
        face = "none" if hollow(p) else fam.colour
        ax.errorbar([p["p50_ms"]], [p["accuracy"]], yerr=err, fmt=fam.marker, color=fam.colour,
                    markerfacecolor=face, markersize=11 if fam.marker == "*" else 8, capsize=3,
                    elinewidth=1, zorder=3)  # fmt: skip
        said = f"{evidence.text(p['accuracy'])}, {p['p50_ms']:.3g} ms"
        key.append(_handle(fam, face, f"{i}  {p['artifact']}  {said}"))
    front = [p for p in points if p.get("pareto")]
    if front:
        xs, ys = [p["p50_ms"] for p in front], [p["accuracy"] for p in front]
        ax.step(xs, ys, where="post", color="0.35", ls="--", lw=1.2, zorder=2)
        ax.scatter(xs, ys, s=260, facecolors="none", edgecolors="0.35", zorder=2)  # ringed
        key.append(Line2D([], [], color="0.35", ls="--", marker="o", markersize=10,
                          markerfacecolor="none", label="Pareto front (ringed)"))  # fmt: skip
    ax.set_xscale("log")
    ax.margins(x=0.12)
    ax.set_ylim(*accuracy_range(points, evidence))
    ax.set_xlabel("p50 latency (ms, log scale; left is faster)")
    bars = f"bars: 95% Wilson interval, {evidence.rows} eval rows" if evidence.rows else "no bars"
    ax.set_ylabel(f"accuracy ({bars})" if evidence.proportion else "score")
    if points:
        p = points[0]
        ax.set_title(f"accuracy vs latency: batch {p['batch']}, seq {p['seq']}, "
                     f"{p['threads']} thread{'s' if p['threads'] != 1 else ''}")  # fmt: skip
    ax.grid(True, which="both", alpha=0.3)
    shown = [_handle(f, f.colour, f.label) for f in families.values()]
    shown.append(_handle(Family("", "0.3", "o"), "none", "hollow: the teacher's copy"))
    legends = _outside(ax, (shown, "family", 8), (key, "artifacts (accuracy, p50)", 7))
    fig.tight_layout()
    fig.canvas.draw()
    labels = _place_labels(ax, fig, [(p["p50_ms"], p["accuracy"]) for p in points],
                           [str(i) for i in range(1, len(points) + 1)])  # fmt: skip
    renderer = fig.canvas.get_renderer()
    return _save(
        fig, ax, path, legends,
        labels=[text_box(t, renderer).bounds for t in labels],
        ylim=ax.get_ylim(),
        families={p["artifact"]: family_of(p).label for p in points},
    )  # fmt: skip


def latency_series(
    rows: list[dict[str, Any]], batch: int = 1, device: str = "cpu"
) -> dict[str, dict[int, list[tuple[int, float]]]]:
    """{artifact: {threads: [(seq, p50 ms), ...]}} at `batch` (or the nearest measured)."""
    measured = measured_rows(rows, device)
    batch = pick_batch(measured, batch)
    series: dict[str, dict[int, list[tuple[int, float]]]] = {}
    for r in measured:
        if r["batch"] == batch:
            series.setdefault(r["artifact"], {}).setdefault(r["threads"], []).append(
                (r["seq"], r["p50_ms"])
            )
    return {k: {t: sorted(v) for t, v in sorted(by.items())} for k, by in series.items()}


def plot_latency(
    series: dict[str, dict[int, list[tuple[int, float]]]],
    path: Path,
    title: str,
    rows: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """p50 vs sequence length: a colour per family (a marker per artifact within it), a line
    style per thread count, both legends outside the axes. Returns the layout drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    first = {r["artifact"]: r for r in reversed(rows or [])}
    threads = sorted({t for by in series.values() for t in by})
    styles = {t: LINE_STYLES[i % len(LINE_STYLES)] for i, t in enumerate(threads)}
    fig, ax = plt.subplots(figsize=(10, 5.5))
    colours, handles, used = {}, [], {}
    for name, by in series.items():
        row = first.get(name) or {"artifact": name}
        fam = family_of(row)
        used[fam.label] = used.get(fam.label, 0) + 1  # a marker per artifact within a family
        fam = Family(fam.label, fam.colour, "os^Dv<>ph"[(used[fam.label] - 1) % 9])
        face = "none" if hollow(row) else fam.colour
        colours[name] = fam.colour
        for t, points in by.items():
            ax.plot([s for s, _ in points], [ms for _, ms in points], color=fam.colour,
                    ls=styles[t], marker=fam.marker, markerfacecolor=face, markersize=5)  # fmt: skip
        said = name if name == "teacher" else f"{name} ({fam.label})"
        handles.append(_handle(fam, face, said, ls="-"))
    ax.set_xticks(sorted({s for by in series.values() for pts in by.values() for s, _ in pts}))
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("p50 latency (ms, log scale)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    lines = [Line2D([], [], color="0.3", ls=styles[t], label=f"{t}") for t in threads]
    legends = (
        _outside(ax, (handles, "artifact (family)", 7), (lines, "threads", 8)) if series else []
    )
    fig.tight_layout()
    fig.canvas.draw()
    return _save(fig, ax, path, legends, styles=styles, colours=colours)
