"""`distillery compare RUN_A RUN_B`: two runs' results side by side.

    a, b = run_results(Path("runs/sst2-minilm")), run_results(Path("runs/sst2-mpnet"))
    print(compare_markdown(a, b))

A run is a run folder (its report/results.json, else its bench/rows.json), a `distillery bench
--out` folder (results.json), or one of those files. Each side shows, per artifact, the accuracy,
the p50 at the report's headline shape (batch 1, seq 128 or the longest measured, most threads)
and the real-length sentences/s, and each run's recommendation (the report's own, else the same
rule applied to its rows), then one line per kind of model either run holds (teacher,
transformer, static, cnn, bilstm: `pipelines.report.kinds`), its figures within its own run.
Across two runs the ratios are of pooled figures: unlike the speed-ups inside one run, they carry
any difference between the two machines or their load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.core.errors import DistilleryError
from pipelines.report.kinds import side_by_side
from pipelines.report.recommend import RecommendRule, compared_rows, recommend, teacher_accuracy
from pipelines.report.selection import real_rows
from pipelines.report.tables import fmt, markdown_table

PLACES = ("report/results.json", "bench/rows.json", "results.json")  # in this order


def run_results(path: Path | str) -> dict[str, Any]:
    """{"name", "source", "rows", "recommended", "reason"} of one run (see the module doc)."""
    path = Path(path)
    if not path.exists():
        raise DistilleryError(f"compare: {path}: no such run folder or file.")
    source = (
        path if path.is_file() else next((path / p for p in PLACES if (path / p).is_file()), None)
    )
    if source is None:
        raise DistilleryError(
            f"compare: {path}: no results in this folder (looked for {', '.join(PLACES)}). "
            "Finish the run first (distillery run RECIPE), or bench models into it "
            "(distillery bench MODEL… --out DIR)."
        )
    data = json.loads(source.read_text())
    rows = data if isinstance(data, list) else data.get("rows")
    if not isinstance(rows, list):
        raise DistilleryError(f"compare: {source}: not a results file (no list of rows in it).")
    folder = path if path.is_dir() else source.parent
    run = folder.parent if folder.name in ("report", "bench") else folder
    report = _read(run / "report" / "manifest.json") or {}
    if "recommended" in report and source.name != "rows.json":  # the report's own pick
        recommended = report.get("recommended")
        reason = report.get("reason") or (
            f"withheld: {report['withheld']}" if report.get("withheld") else None
        )
    else:  # no report stage here: the report's rule on these rows
        best = recommend(rows, {}, RecommendRule())
        recommended = best["artifact"] if best else None
        reason = f"by the report's rule, recomputed here: {best['reason']}" if best else None
    manifests = {s: m for s in ("teacher", "distill") if (m := _read(run / s / "manifest.json"))}
    return {
        "name": run.name,
        "source": str(source),
        "rows": rows,
        "recommended": recommended,
        "reason": reason,
        "manifests": manifests,  # what kind of model each artifact is (pipelines.report.kinds)
    }


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def _figures(rows: list[dict[str, Any]]) -> tuple[dict[str, dict], dict[str, dict], str]:
    """({artifact: grid row at the headline shape}, {artifact: real-length row}, the shape)."""
    at = {r["artifact"]: r for r in compared_rows(rows, RecommendRule())}
    first = next(iter(at.values()), None)
    shape = f"b{first['batch']}/s{first['seq']}/{first['threads']}t" if first else "none measured"
    return at, real_rows(rows), shape


def _ratio(a: float | None, b: float | None) -> str:
    return f"{b / a:.2f}×" if a and b else "–"


def compare_markdown(a: dict[str, Any], b: dict[str, Any]) -> str:
    """The two runs side by side: one line per artifact either run has, then each pick."""
    grid_a, real_a, shape_a = _figures(a["rows"])
    grid_b, real_b, shape_b = _figures(b["rows"])
    names = list(dict.fromkeys([r["artifact"] for r in a["rows"] + b["rows"]]))
    la, lb = "A", "B"
    header = ["artifact", f"accuracy {la}", f"accuracy {lb}", f"p50 ms {la}", f"p50 ms {lb}"]
    header += [f"{la} p50 ÷ {lb} p50", f"sent/s {la}", f"sent/s {lb}", f"{lb} ÷ {la} sent/s"]

    def accuracy(rows: list[dict], name: str) -> float | None:
        return next(
            (
                r["accuracy"]
                for r in rows
                if r["artifact"] == name and r.get("accuracy") is not None
            ),
            None,
        )

    lines = []
    for name in names:
        ga, gb = grid_a.get(name) or {}, grid_b.get(name) or {}
        ra, rb = real_a.get(name) or {}, real_b.get(name) or {}
        sa, sb = ra.get("bucket_sentences_per_s"), rb.get("bucket_sentences_per_s")
        picked = [side for side, run in ((la, a), (lb, b)) if run["recommended"] == name]
        lines.append(
            [
                name + (f" (recommended in {' and '.join(picked)})" if picked else ""),
                fmt(accuracy(a["rows"], name), 4),
                fmt(accuracy(b["rows"], name), 4),
                fmt(ga.get("p50_ms")),
                fmt(gb.get("p50_ms")),
                _ratio(gb.get("p50_ms"), ga.get("p50_ms")),
                fmt(sa, 1),
                fmt(sb, 1),
                _ratio(sa, sb),
            ]
        )
    text = [
        f"- **{la}**: `{a['name']}` ({a['source']}); p50 at {shape_a}; recommended: "
        + (f"`{a['recommended']}` ({a['reason']})" if a["recommended"] else "none"),
        f"- **{lb}**: `{b['name']}` ({b['source']}); p50 at {shape_b}; recommended: "
        + (f"`{b['recommended']}` ({b['reason']})" if b["recommended"] else "none"),
        "",
        markdown_table(header, lines),
        "",
        "Ratios across two runs are of pooled figures: they carry any difference between the "
        "machines or their load, unlike the within-round speed-ups of one run's report.",
    ]
    kinds = side_by_side(
        [
            (side, compared_rows(run["rows"]), m, teacher_accuracy(run["rows"], m))
            for side, run in ((la, a), (lb, b))
            for m in [run.get("manifests") or {}]
        ]
    )
    if kinds:
        text += [
            "",
            "**By kind of model** (each run's most accurate artifact of the kind; its % of the "
            "teacher and speed-up are within its own run):",
            "",
            *kinds,
        ]
    return "\n".join(text)
