"""The markdown table of a `distillery bench PATH…` run: a line per model and cell, speed-ups
against the first model given (the reference) and the peer, taken within rounds."""

from __future__ import annotations

from typing import Any

from pipelines.report.speed import real_speedup, show, speedup
from pipelines.report.tables import fmt, markdown_table


def bench_table(rows: list[dict[str, Any]]) -> str:
    """Latency cells, then (when measured) the real-length cells, as markdown."""
    grid = [r for r in rows if r.get("mode", "grid") == "grid"]
    real = [r for r in rows if r.get("mode") == "real_length"]
    names = list(dict.fromkeys(r["artifact"] for r in rows))
    reference = next((n for n in names if _role(rows, n) != "baseline"), None)
    peer = next((n for n in names if _role(rows, n) == "baseline"), None)

    def same(name: str, row: dict[str, Any], pool: list[dict]) -> dict[str, Any] | None:
        key = (row["batch"], row["seq"], row["threads"])
        return next(
            (
                r
                for r in pool
                if r["artifact"] == name and (r["batch"], r["seq"], r["threads"]) == key
            ),
            None,
        )

    against = [f"× {reference}"] + ([f"× {peer} (peer)"] if peer else [])
    header = ["model", "backend", "precision", "size MB", "batch", "seq", "threads"]
    header += ["p50 ms", "p99 ms", "seq/s", *against]
    noisy = any(r.get("noisy") for r in grid)
    lines = []
    for r in grid:
        line = [_label(r), r["backend"], r["precision"], fmt(r.get("size_mb"), 2)]
        line += [str(r["batch"]), str(r["seq"]), str(r["threads"])]
        if r.get("error") or r.get("p50_ms") is None:
            line.append(f"error: {(r.get('error') or 'not measured')[:80]}")
            line += [""] * (len(header) - len(line))
        else:
            line += [fmt(r["p50_ms"]), fmt(r["p99_ms"]), fmt(r.get("throughput"), 1)]
            line += [show(speedup(same(n, r, grid), r)) for n in (reference, peer) if n]
        lines.append(line + (["⚠ noisy" if r.get("noisy") else ""] if noisy else []))
    text = [markdown_table(header + (["note"] if noisy else []), lines)]
    if real:
        real_lines = [
            [
                _label(r),
                str(r["threads"]),
                str(r["batch"]),
                fmt(r.get("bucket_sentences_per_s"), 1),
                fmt(r.get("padded_sentences_per_s"), 1),
                *[show(real_speedup(same(n, r, real), r)) for n in (reference, peer) if n],
            ]
            for r in real
        ]
        text += [
            "",
            f"Real lengths ({real[0].get('rows')} texts, length-bucketed; padded = every batch "
            f"padded to {real[0]['seq']}); × = sentences/s ratio within rounds",
            "",
            markdown_table(
                ["model", "threads", "batch", "bucketed sent/s", "padded sent/s", *against],
                real_lines,
            ),
        ]
    return "\n".join(text)


def _role(rows: list[dict[str, Any]], name: str) -> str:
    return next((r.get("role", "model") for r in rows if r["artifact"] == name), "model")


def _label(row: dict[str, Any]) -> str:
    return row["artifact"] + (" (peer)" if row.get("role") == "baseline" else "")
