"""Report stage: the bench stage's rows → runs/<name>/report/ (README.md, results.json, plots).

setup (rows.json, the upstream manifests) → `pipelines.report.assemble.write_report` → the same
table on the terminal, and the recommended artifact in the manifest (the bundle ships it).
"""

from __future__ import annotations

import json
import os

from pipelines.core.context import StageContext, StageResult
from pipelines.core.machine import machine
from pipelines.report.assemble import write_report
from pipelines.report.noise import Evidence
from pipelines.report.recommend import RecommendRule
from pipelines.report.sections import ablation_section, search_section, tasks_section
from pipelines.report.tables import terminal_table
from pipelines.stages.bench import ROWS_FILE


def main(ctx: StageContext) -> StageResult:
    data = json.loads((ctx.input_dir("bench") / ROWS_FILE).read_text())
    manifests = {
        name: ctx.run.read_manifest(name)
        for name in ("teacher", "search", "distill", "export", "quantize", "bench")
    }
    manifests = {k: v for k, v in manifests.items() if v}
    rule = RecommendRule(min_retained=ctx.recipe.bench.min_retained, serve=ctx.recipe.bench.serve)
    stored = (manifests.get("quantize") or {}).get("predictions")  # per-row, for paired tests
    predictions_file = ctx.run.path / "quantize" / stored if stored else None
    predictions = (
        json.loads(predictions_file.read_text())
        if predictions_file and predictions_file.is_file()
        else None
    )
    result = write_report(
        ctx.out,
        data["rows"],
        manifests,
        machine(),
        rule,
        roofline=data["roofline"],
        conditions=data.get("conditions"),
        withhold_noisy=ctx.recipe.bench.withhold_noisy,
        sections=search_section(ctx.run.path, manifests.get("search"), ctx.out)
        + ablation_section(ctx.run.path, manifests.get("distill"))
        + tasks_section(manifests),
        predictions=predictions,
    )
    print(terminal_table(data["rows"], Evidence.of(manifests, predictions)))
    if result.get("recommended"):
        print(f"recommended: {result['recommended']} ({result.get('reason', '')})")
    if result.get("withheld"):
        print(f"no recommendation: {result['withheld']}")
    best = next((r for r in data["rows"] if r.get("artifact") == result.get("recommended")), {})
    return StageResult(
        metrics={"accuracy": best.get("accuracy"), "recommended": result.get("recommended")},
        artifacts={
            k: os.path.basename(str(result[k])) for k in ("results", "readme", "pareto", "latency")
        },
        extra={
            "recommended": result.get("recommended"),
            "reason": result.get("reason"),
            "recommended_path": str(result.get("recommended_path")),
            "withheld": result.get("withheld"),
        },
    )
