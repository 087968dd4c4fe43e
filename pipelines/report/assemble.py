"""The report: results.json (schema-checked), README.md with tables and a model card, two plots.

    out = write_report(Path("runs/demo/report"), rows, manifests, machine(), RecommendRule())

`rows` come from the bench stage; `manifests` maps stage name (teacher, distill, export,
quantize) to its manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.core.runs import atomic_write_json, atomic_write_text
from pipelines.report.plots import latency_series, pareto_points, plot_latency, plot_pareto
from pipelines.report.recommend import (
    RecommendRule,
    as_rule,
    compared_rows,
    decisive_noisy,
    recommend,
    teacher_accuracy,
)
from pipelines.report.recommended_card import recommended_card
from pipelines.report.results_schema import validate_results
from pipelines.report.selection import (
    devices,
    measured_rows,
    pick_batch,
    real_rows,
    score_metric,
    task_type_name,
)
from pipelines.report.speed import busy, speed_lines
from pipelines.report.tables import PEER, fmt, markdown_table, real_length_table, summary_table


def write_report(
    out_dir: Path | str,
    rows: list[dict[str, Any]],
    manifests: dict[str, dict],
    machine: dict[str, Any],
    recommended_rule: RecommendRule | dict | None = None,
    roofline: list[dict[str, Any]] | None = None,
    conditions: dict[str, Any] | None = None,
    withhold_noisy: bool = True,
    sections: list[str] | None = None,
) -> dict[str, Any]:
    """Write results.json, README.md, pareto.png and latency.png under out_dir.

    `sections`: markdown lines from upstream stages (search, ablation), placed after the plots.
    Returns {"recommended": name or None, "recommended_path", "results", "readme", "pareto",
    "latency" (paths), "pareto_points", "latency_series", "reason", "withheld"}.
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

    warnings = busy(rows, conditions, int(machine.get("affinity") or machine.get("cores") or 1))
    best = recommend(rows, manifests, rule)
    withheld = why_withheld(rows, manifests, best, rule, warnings) if withhold_noisy else None
    text = ["# Benchmark report", ""]
    text += summary_lines(best, withheld, rows, manifests, rule, out_dir) + [""]
    text += measurement_lines(rows, manifests, machine, conditions, warnings, roofline)
    text += [
        "![accuracy vs latency](pareto.png)",
        "",
        "![latency vs sequence length](latency.png)",
        "",
    ]
    text += sections or []
    if best and not withheld:
        text += [recommended_card(best, manifests, rule), ""]
    elif not best:
        text += [f"No artifact meets the rule: {rule.describe()}.", ""]
    atomic_write_text(paths["README.md"], "\n".join(text))
    chosen = None if withheld else best
    return {
        "recommended": chosen["artifact"] if chosen else None,
        "recommended_path": chosen.get("path") if chosen else None,
        "reason": chosen["reason"] if chosen else None,
        "withheld": withheld,
        "results": str(paths["results.json"]),
        "readme": str(paths["README.md"]),
        "pareto": str(paths["pareto.png"]),
        "latency": str(paths["latency.png"]),
        "pareto_points": points,
        "latency_series": series,
    }


def why_withheld(rows, manifests, best, rule: RecommendRule, warnings: list[str]) -> str | None:
    """Why the recommendation is withheld (the measurements it rests on are noisy, or the machine
    was busy), or None."""
    noisy_compared = decisive_noisy(rows, manifests, best, rule)
    trouble = noisy_compared or any("just before" in w or "stolen" in w for w in warnings)
    if not (best and trouble):
        return None
    return (
        "the measurements it would rest on are not trustworthy ("
        + (f"noisy: {', '.join(noisy_compared)}" if noisy_compared else "; ".join(warnings))
        + "); rerun the bench stage on an idle machine (distillery run RECIPE --stage bench "
        "--force)"
    )


def measurement_lines(rows, manifests, machine, conditions, warnings, roofline) -> list[str]:
    """The README's lines between the summary and the plots: the score's name when it is not
    accuracy, warnings, the machine, one table per device, real lengths, the roofline."""
    text: list[str] = []
    metric = score_metric(manifests)
    if metric != "accuracy":
        text += [
            f"Scores are **{metric}** (task.type {task_type_name(manifests)}): the columns and "
            "plots headed accuracy hold it, and the rule's drop is in its points.",
            "",
        ]
    if warnings:
        text += ["**Measurement warnings:** " + "; ".join(warnings) + ".", ""]
    text += [
        f"Machine: {machine.get('cpu', '?')} ({machine.get('arch', '?')}), {machine.get('cores')} cores, "
        f"ISA {', '.join(machine.get('isa', [])) or '?'}"
        + (f", GPU {', '.join(machine['gpu'])}" if machine.get("gpu") else "")
        + (conditions_text(conditions) if conditions else ""),
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
        text += roofline_lines(roofline) + [""]
    return text


def summary_lines(best, withheld, rows, manifests, rule, out_dir: Path) -> list[str]:
    """The five lines a reader needs first: what to ship, how accurate, how fast, how big, where."""
    teacher = teacher_accuracy(rows, manifests)
    if not best:
        return [f"**Summary:** no artifact meets the rule ({rule.describe()})."]
    compared = {r["artifact"]: r for r in compared_rows(rows, rule)}
    head = f"**Recommended: `{best['artifact']}`** ({best['backend']}, {best['precision']})"
    if withheld:
        head = f"**No recommendation:** {withheld}. The rule's pick would be `{best['artifact']}`"
    acc = best.get("accuracy")
    lines = [
        f"- {head}.",
        f"- {score_metric(manifests)[0].upper()}{score_metric(manifests)[1:]} "
        + ("unknown" if acc is None else f"{acc:.4f}")
        + (f", {acc / teacher:.1%} of the teacher's {teacher:.4f}" if acc and teacher else "")
        + ".",
        *speed_lines(best, list(compared.values()), real_rows(rows, rule.device), rule.serve, PEER),
        f"- Size {fmt(best.get('size_mb'), 2)} MB"
        + (
            f" (teacher fp32: {fmt(compared['teacher'].get('size_mb'), 2)} MB)"
            if compared.get("teacher")
            else ""
        )
        + ".",
        f"- Bundle: `{out_dir.parent / 'bundle'}/` (the bundle stage ships the recommendation).",
    ]
    return lines


def conditions_text(conditions: dict[str, Any]) -> str:
    before, after = conditions.get("before") or {}, conditions.get("after") or {}
    return (
        f". Before the bench: CPUs {before.get('busy_pct', '?')}% busy with other work, load "
        f"average {before.get('loadavg_1m')}; after: load average {after.get('loadavg_1m')} (the "
        f"bench's own); CPU steal during it {conditions.get('steal_pct')}%"
    )


def roofline_lines(roofline: list[dict[str, Any]]) -> list[str]:
    """The formula, the assumed peaks and the measured ceilings once, then one line per artifact."""
    first = roofline[0]
    peaks = sorted(
        {
            f"{r['precision']} {r['peak_ops_per_s'] / 1e9:.0f} GOP/s ({r['assumption']})"
            for r in roofline
        }
    )
    ceilings = sorted(
        {
            f"{r['precision']} {r['ceiling_ops_per_s'] / 1e9:.0f} GOP/s"
            for r in roofline
            if r.get("ceiling_ops_per_s")
        }
    )
    lines = [
        "## Roofline",
        "",
        f"FLOPs of one encoder forward: {first['formula'].split(' = ')[0]} (embeddings and "
        f"classifier left out), at batch {first['batch']}, seq {first['seq']}. Assumed peaks: "
        + "; ".join(peaks)
        + ".",
    ]
    if ceilings:
        lines += [
            "",
            "Measured GEMM ceiling (one large square GEMM through ONNX Runtime's int8 "
            "`MatMulInteger` and fp32 `MatMul` kernels, at the same thread count; "
            "pipelines/bench/ceiling.py): " + "; ".join(ceilings) + ". It is what these kernels "
            "reach when per-op costs are amortised; above the assumed peak, the cores ran above "
            "their base clock.",
        ]
    lines.append("")
    for r in sorted(roofline, key=lambda r: -(r.get("fraction_of_peak") or 0)):
        frac, of_ceiling = r.get("fraction_of_peak"), r.get("fraction_of_ceiling")
        lines.append(
            f"- `{r.get('artifact', '')}` ({r['precision']}): {r['flops'] / 1e9:.3g} GFLOP, "
            + (
                f"{r['achieved_ops_per_s'] / 1e9:.1f} GOP/s = **{frac:.1%}** of peak"
                + (f", {of_ceiling:.1%} of the measured ceiling" if of_ceiling else "")
                if frac
                else "not measured"
            )
        )
    return lines
