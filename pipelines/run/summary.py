"""The lines a full run ends with: what to ship, where the report and the bundle are, how long
it took, and each stage's time and peak memory as its manifest recorded them (a stage skipped as
done shows its earlier run's). Plain data in, lines out: the CLI prints them after
`distillery run RECIPE`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from pipelines.core.progress import duration
from pipelines.core.usage import peak_text


def closing_summary(manifests: dict[str, dict], run_path: Path, seconds: float) -> list[str]:
    """The summary block of a run whose stages returned `manifests` (by stage name)."""
    report: dict[str, Any] = manifests.get("report") or {}
    bundle: dict[str, Any] = manifests.get("bundle") or {}
    lines = ["", *stage_costs(manifests), f"done in {duration(seconds)}: {run_path}"]
    if report.get("recommended"):
        why = f" ({report['reason']})" if report.get("reason") else ""
        lines.append(f"  recommended: {report['recommended']}{why}")
    elif report.get("withheld"):
        lines.append(f"  no recommendation: {report['withheld']}")
    if report:
        readme = (report.get("artifacts") or {}).get("readme") or "README.md"
        lines.append(f"  report:      {run_path / 'report' / readme}")
    if bundle:
        folder = run_path / "bundle"
        shipped = (bundle.get("metrics") or {}).get("artifact")
        lines.append(f"  bundle:      {folder}" + (f" ({shipped})" if shipped else ""))
        lines.append(f"  check it:    distillery bundle --verify {shlex.quote(str(folder))}")
    return lines


def stage_costs(manifests: dict[str, dict]) -> list[str]:
    """'  teacher   2 min 10 s  peak 612 MiB' per stage with a recorded time; [] when none has."""
    rows = [(name, m) for name, m in manifests.items() if isinstance(m.get("seconds"), int | float)]
    if not rows:
        return []
    width = max(len(name) for name, _ in rows)
    lines = ["time and peak memory by stage:"]
    for name, m in rows:
        usage = m.get("usage") or {}
        peak = f"peak {peak_text(usage)}" if usage.get("peak_rss_bytes") else ""
        lines.append(f"  {name:<{width}}  {duration(m['seconds']):>11}  {peak}".rstrip())
    return lines
