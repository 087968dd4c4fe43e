"""The report's tables: one per device (p50/p99 and speed-ups), real-length serving, plain text."""

from __future__ import annotations

from typing import Any

from pipelines.report.noise import Evidence
from pipelines.report.selection import (
    PEER,
    comparison_shape,
    devices,
    measured_rows,
    pick_batch,
)
from pipelines.report.speed import show, speedup


def fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}" if value < 1 else f"{value:.{digits}f}"


def summary_table(
    rows: list[dict[str, Any]], device: str, evidence: Evidence | None = None
) -> tuple[str, list[str], list[list[str]]]:
    """(title, header, lines) for one device: one line per (artifact, precision), each accuracy
    with its 95% interval when `evidence` knows the eval split's size. A device where nothing
    could run gets one line per reason, naming its artifacts."""
    evidence = evidence or Evidence(rows=None)
    on_device = [r for r in rows if r["device"] == device and r.get("mode", "grid") == "grid"]
    measured = measured_rows(on_device)
    if not measured and all(r.get("skipped") for r in on_device):
        reasons: dict[str, list[str]] = {}
        for r in on_device:
            label = f"{r['artifact']} {r['precision']}"
            reasons.setdefault(r["skipped"], [])
            if label not in reasons[r["skipped"]]:
                reasons[r["skipped"]].append(label)
        lines = [[why, ", ".join(names)] for why, names in reasons.items()]
        return f"{device}: nothing could run here", ["skipped because", "artifacts"], lines
    seq, threads = comparison_shape(measured)
    small, large = pick_batch(measured, 1), pick_batch(measured, 32, largest=True)
    batches = [b for b in dict.fromkeys([small, large]) if b is not None]
    accuracy = "accuracy (95% CI)" if evidence.interval(0.5) else "accuracy"
    header = ["artifact", "backend", "precision", accuracy, "size MB"]
    has_peer = any(r["artifact"] == PEER for r in measured)
    for b in batches:
        header += [f"b{b} p50/p99 ms", f"b{b} speed-up"] + ([f"b{b} vs peer"] if has_peer else [])
    if not batches:  # nothing measured on this device: one column for the skip reasons
        header.append("status")

    def cell(artifact: str, precision: str, batch: int) -> dict[str, Any] | None:
        want = (artifact, precision, batch, seq, threads)
        shape = ("artifact", "precision", "batch", "seq", "threads")
        return next((r for r in on_device if tuple(r[k] for k in shape) == want), None)

    lines = []
    keys = list(dict.fromkeys((r["artifact"], r["precision"]) for r in on_device))
    for artifact, precision in keys:
        group = [r for r in on_device if (r["artifact"], r["precision"]) == (artifact, precision)]
        first = group[0]
        line = [
            artifact + (" (baseline)" if first.get("role") == "baseline" else ""),
            first["backend"],
            precision,
            evidence.text(first.get("accuracy")),
            fmt(first.get("size_mb"), 2),
        ]
        skipped = next((r["skipped"] for r in group if r.get("skipped")), None)
        failed = next((r["error"] for r in group if r.get("error")), None)
        if skipped:
            lines.append(line + [f"skipped: {skipped}"] + [""] * (len(header) - len(line) - 1))
            continue
        if not batches:
            lines.append(line + [f"error: {failed[:60]}" if failed else "–"])
            continue
        empty = ["–"] if has_peer else []
        for b in batches:
            r, base = cell(artifact, precision, b), cell("teacher", "fp32", b)
            if r is None:
                line += [f"error: {failed[:60]}" if failed else "–", "–", *empty]
            elif r.get("error"):
                line += [f"error: {r['error'][:60]}", "–", *empty]
            else:
                noisy = " ⚠" if r.get("noisy") else ""
                line += [f"{fmt(r['p50_ms'])} / {fmt(r['p99_ms'])}{noisy}", show(speedup(base, r))]
                if has_peer:
                    line.append(show(speedup(cell(PEER, "int8", b), r)))
        lines.append(line)
    title = (
        f"{device}: seq {seq}, {threads} threads; speed-up = teacher fp32 PyTorch p50 ÷ p50, "
        "the median over interleaved rounds (their range in brackets)"
        + ("; vs peer = the same against optimum-cli's int8 of the student" if has_peer else "")
        + ("; ⚠ = a noisy cell" if any(r.get("noisy") for r in measured) else "")
    )
    if not batches:
        title = f"{device}: nothing measured"
    return title, header, lines


def markdown_table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines]
    return "\n".join(out)


def terminal_table(rows: list[dict[str, Any]], evidence: Evidence | None = None) -> str:
    """The README's per-device tables as aligned plain text."""
    blocks = []
    for device in devices(rows):
        title, header, lines = summary_table(rows, device, evidence)
        widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=False)]
        text = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
        text.append("  ".join("-" * w for w in widths))
        text += [
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip()
            for line in lines
        ]
        blocks.append("\n".join(text))
    return "\n\n".join(blocks)


def real_length_table(rows: list[dict[str, Any]]) -> str | None:
    real = [r for r in rows if r.get("mode") == "real_length" and not r.get("error")]
    if not real:
        return None
    header = [
        "artifact",
        "device",
        "threads",
        "batch",
        "bucketed sent/s",
        "padded sent/s",
        "speed-up",
        "padding",
    ]
    lines = [
        [
            r["artifact"],
            r["device"],
            str(r["threads"]),
            str(r["batch"]),
            fmt(r.get("bucket_sentences_per_s"), 1),
            fmt(r.get("padded_sentences_per_s"), 1),
            f"{r['bucket_speedup']:.2f}×" if r.get("bucket_speedup") else "–",
            f"{r.get('padding_fraction', 0):.0%}",
        ]
        for r in real
    ]
    return markdown_table(header, lines)
