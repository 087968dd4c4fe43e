"""The report: results.json (schema-checked), README.md with tables and a model card, two plots.

    out = write_report(Path("runs/demo/report"), rows, manifests, machine(), RecommendRule())

`rows` come from the bench stage; `manifests` maps stage name (teacher, distill, export,
quantize) to its manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.core.runs import atomic_write_json, atomic_write_text
from pipelines.report.comparisons import baselines, noise_lines
from pipelines.report.kinds import kind_lines
from pipelines.report.noise import Evidence
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
    no_peer,
    peer_of,
    pick_batch,
    real_rows,
    score_metric,
    task_type_name,
)
from pipelines.report.speed import busy, show, speed_lines, speedup
from pipelines.report.tables import fmt, markdown_table, real_length_table, summary_table


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
    predictions: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write results.json, README.md, pareto.png and latency.png under out_dir.

    `sections`: markdown lines from upstream stages (search, ablation), placed after the plots.
    `predictions`: the quantize stage's stored eval predictions ({"labels", "predictions":
    {artifact: [...]}}), for paired tests between artifacts (pipelines.report.noise).
    Returns {"recommended": name or None, "recommended_path", "results", "readme", "pareto",
    "latency" (paths), "pareto_points", "latency_series", "layouts" (what each plot drew),
    "reason", "withheld"}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rule = as_rule(recommended_rule)
    validate_results(rows)
    paths = {
        name: out_dir / name for name in ("results.json", "README.md", "pareto.png", "latency.png")
    }
    atomic_write_json(paths["results.json"], rows)
    evidence = Evidence.of(manifests, predictions)

    points = pareto_points(rows, rule.batch, rule.device)
    pareto_layout = plot_pareto(points, paths["pareto.png"], evidence)
    series = latency_series(rows, rule.batch, rule.device)
    batch = pick_batch(measured_rows(rows, rule.device), rule.batch)
    latency_layout = plot_latency(
        series, paths["latency.png"], f"p50 vs sequence length: batch {batch}, {rule.device}", rows
    )

    warnings = busy(rows, conditions, int(machine.get("affinity") or machine.get("cores") or 1))
    best = recommend(rows, manifests, rule)
    withheld = why_withheld(rows, manifests, best, rule, warnings) if withhold_noisy else None
    text = ["# Benchmark report", ""]
    text += summary_lines(best, withheld, rows, manifests, rule, out_dir, evidence) + [""]
    kinds = kind_lines(compared_rows(rows, rule), manifests, teacher_accuracy(rows, manifests))
    text += kinds + ([""] if kinds else [])
    text += measurement_lines(rows, manifests, machine, conditions, warnings, roofline, evidence)
    text += [
        "![accuracy vs latency](pareto.png)",
        "",
        "![latency vs sequence length](latency.png)",
        "",
    ]
    text += sections or []
    if best and not withheld:
        text += [recommended_card(best, manifests, rule, evidence), ""]
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
        "layouts": {"pareto": pareto_layout, "latency": latency_layout},
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


def measurement_lines(
    rows, manifests, machine, conditions, warnings, roofline, evidence: Evidence | None = None
) -> list[str]:
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
        title, header, lines = summary_table(rows, device, evidence)
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


SERVED = " (what it is recommended by, bench.serve: latency)"


def summary_lines(
    best, withheld, rows, manifests, rule, out_dir: Path, evidence: Evidence | None = None
) -> list[str]:
    """The five lines a reader needs first: what to ship, how accurate (with its interval), how
    fast against each baseline of one bench run, how big, where; then what noise allows."""
    evidence = evidence or Evidence.of(manifests)
    teacher = teacher_accuracy(rows, manifests)
    if not best:
        return [f"**Summary:** no artifact meets the rule ({rule.describe()})."]
    compared_list = compared_rows(rows, rule)
    compared = {r["artifact"]: r for r in compared_list}
    real = real_rows(rows, rule.device)
    shape = f"batch {best['batch']}, seq {best['seq']}, {best['threads']} threads"
    head = f"**Recommended: `{best['artifact']}`** ({best['backend']}, {best['precision']})"
    if withheld:
        head = f"**No recommendation:** {withheld}. The rule's pick would be `{best['artifact']}`"
    acc = best.get("accuracy")
    metric = score_metric(manifests)
    lines = [
        f"- {head}.",
        f"- {metric[0].upper()}{metric[1:]} " + accuracy_text(acc, teacher, evidence) + ".",
        f"- Fixed shape{SERVED if rule.serve == 'latency' else ''}, {shape}, one bench run: "
        + speed_text(best, compared_list, evidence)
        + ".",
        *speed_lines(best, compared_list, real, rule.serve, peer_of(best["artifact"]))[1:],
        f"- Size {fmt(best.get('size_mb'), 2)} MB"
        + (
            f" (teacher fp32: {fmt(compared['teacher'].get('size_mb'), 2)} MB)"
            if compared.get("teacher")
            else ""
        )
        + ".",
        f"- Bundle: `{out_dir.parent / 'bundle'}/` (the bundle stage ships the recommendation).",
    ]
    floor = None if teacher is None else teacher * rule.min_retained
    noise = noise_lines(compared_list, best, floor, evidence)
    return lines + ([""] + noise if noise else [])


def accuracy_text(acc: float | None, teacher: float | None, evidence: Evidence) -> str:
    """'0.8950 (95% interval 0.861–0.921, 400 eval rows), 99.4% of the teacher's 0.9000
    (0.867–0.926)'; without the intervals when the score is not a proportion."""
    if acc is None:
        return "unknown"
    span = evidence.interval(acc)
    said = f"{acc:.4f}" + (
        f" (95% interval {span[0]:.3f}–{span[1]:.3f}, {evidence.rows} eval rows)" if span else ""
    )
    if teacher:
        said += f", {acc / teacher:.1%} of the teacher's {evidence.text(teacher)}"
    return said


def speed_text(best, compared: list[dict[str, Any]], evidence: Evidence) -> str:
    """The recommendation's speed-up over each baseline (teacher fp32 PyTorch, best int8
    teacher, peer path), its p50 and p99."""
    parts = []
    for base in baselines(compared, best):
        said = f"**{show(speedup(base.row, best))}** {base.label}"
        if base.row["artifact"] != "teacher":
            said += f" ({base.note}; accuracy {evidence.text(base.row.get('accuracy'))})"
        parts.append(said)
    peer = peer_of(best["artifact"])
    if not any(b.row["artifact"] == peer for b in baselines(compared, best)):
        parts.append(no_peer(peer))
    return "; ".join(parts) + f". p50 {fmt(best['p50_ms'])} ms, p99 {fmt(best['p99_ms'])} ms"


def conditions_text(conditions: dict[str, Any]) -> str:
    before, after = conditions.get("before") or {}, conditions.get("after") or {}
    used = before.get("busy_pct")
    watched = (
        f"CPUs {used}% busy with other work" if used is not None else "CPUs not watched"
    )  # bench.load_sample_s: 0
    return (
        f". Before the bench: {watched}, load "
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
