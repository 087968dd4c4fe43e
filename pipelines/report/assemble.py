"""The report: results.json (schema-checked), README.md with tables and a model card, two plots.

    out = write_report(Path("runs/demo/report"), rows, manifests, machine(), RecommendRule())

`rows` come from the bench stage; `manifests` maps stage name (teacher, distill, export,
quantize) to its manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.core.runs import atomic_write_json, atomic_write_text
from pipelines.report.card import recommended_card
from pipelines.report.plots import latency_series, pareto_points, plot_latency, plot_pareto
from pipelines.report.recommend import RecommendRule, as_rule, recommend
from pipelines.report.rows import devices, measured_rows, pick_batch
from pipelines.report.schema import validate_results
from pipelines.report.tables import markdown_table, real_length_table, summary_table


def write_report(
    out_dir: Path | str,
    rows: list[dict[str, Any]],
    manifests: dict[str, dict],
    machine: dict[str, Any],
    recommended_rule: RecommendRule | dict | None = None,
    roofline: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write results.json, README.md, pareto.png and latency.png under out_dir.

    Returns {"recommended": name or None, "recommended_path", "results", "readme", "pareto",
    "latency" (paths), "pareto_points", "latency_series", "reason"}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rule = as_rule(recommended_rule)
    validate_results(rows)
    paths = {
        name: out_dir / name for name in ("results.json", "README.md", "pareto.png", "latency.png")
    }
    atomic_write_json(paths["results.json"], rows)

    points = pareto_points(rows, rule.batch, rule.device)
    plot_pareto(points, paths["pareto.png"])
    series = latency_series(rows, rule.batch, rule.device)
    batch = pick_batch(measured_rows(rows, rule.device), rule.batch)
    plot_latency(
        series, paths["latency.png"], f"p50 vs sequence length, batch {batch}, {rule.device}"
    )

    best = recommend(rows, manifests, rule)
    text = ["# Benchmark report", ""]
    text += [
        f"Machine: {machine.get('cpu', '?')} ({machine.get('arch', '?')}), {machine.get('cores')} cores, "
        f"ISA {', '.join(machine.get('isa', [])) or '?'}"
        + (f", GPU {', '.join(machine['gpu'])}" if machine.get("gpu") else ""),
        "",
    ]
    for device in devices(rows):
        title, header, lines = summary_table(rows, device)
        text += [f"## {title}", "", markdown_table(header, lines), ""]
    real = real_length_table(rows)
    if real:
        text += [
            "## Real lengths: length-bucketed vs padded to max_length (each eval row once)",
            "",
            real,
            "",
        ]
    if roofline:
        text += ["## Roofline", ""]
        for r in roofline:
            frac = r.get("fraction_of_peak")
            text += [
                f"- {r.get('artifact', '')} batch {r['batch']}, seq {r['seq']}, {r['precision']}: "
                f"{r['flops'] / 1e9:.3g} GFLOP ({r['formula']}); peak {r['peak_ops_per_s'] / 1e9:.1f} "
                f"GOP/s assuming {r['assumption']}"
                + (
                    f"; achieved {r['achieved_ops_per_s'] / 1e9:.2f} GOP/s = {frac:.1%} of peak"
                    if frac
                    else ""
                )
            ]
        text.append("")
    text += [
        "![accuracy vs latency](pareto.png)",
        "",
        "![latency vs sequence length](latency.png)",
        "",
    ]
    if best:
        text += [recommended_card(best, manifests, rule), ""]
    else:
        text += [f"No artifact meets the rule: {rule.describe()}.", ""]
    atomic_write_text(paths["README.md"], "\n".join(text))
    return {
        "recommended": best["artifact"] if best else None,
        "recommended_path": best.get("path") if best else None,
        "reason": best["reason"] if best else None,
        "results": str(paths["results.json"]),
        "readme": str(paths["README.md"]),
        "pareto": str(paths["pareto.png"]),
        "latency": str(paths["latency.png"]),
        "pareto_points": points,
        "latency_series": series,
    }
