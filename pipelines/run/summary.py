"""The lines a full run ends with: what to ship, where the report and the bundle are, how long
it took. Plain data in, lines out: the CLI prints them after `distillery run RECIPE`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any


def duration(seconds: float) -> str:
    """'42 s', '3 min 05 s', '2 h 07 min'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def closing_summary(manifests: dict[str, dict], run_path: Path, seconds: float) -> list[str]:
    """The summary block of a run whose stages returned `manifests` (by stage name)."""
    report: dict[str, Any] = manifests.get("report") or {}
    bundle: dict[str, Any] = manifests.get("bundle") or {}
    lines = ["", f"done in {duration(seconds)}: {run_path}"]
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
