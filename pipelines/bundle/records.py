"""A bundle against the run that made it: the run's own records as the reference.

A bundle's SHA256SUMS and reference.json can be redone by whoever changes its model, so on their
own they prove only that the folder agrees with itself. The run folder holds what the pipeline
recorded when it built the bundle (the bundle stage's manifest: every file's sha256 and the
reference) and when it made the artifact (that stage's manifest: the model file's sha256).
`differences` lists where the bundle departs from either.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.core.runs import MANIFEST


def _manifest(path: Path) -> dict[str, Any] | None:
    try:
        found = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return found if isinstance(found, dict) else None


def differences(run: Path, sums: dict[str, str], reference: dict[str, Any]) -> list[str]:
    """What in the bundle (its SHA256SUMS `sums`, its `reference`) is not what run folder `run`
    recorded: its files and reference, and its model file against the artifact's stage."""
    bundle = _manifest(run / "bundle" / MANIFEST)
    if bundle is None:
        return [f"{run / 'bundle' / MANIFEST} is missing or unreadable (no finished bundle stage)"]
    record = bundle.get("bundle") or {}
    problems = []
    recorded = record.get("sha256") or {}
    for name in sorted(set(sums) | set(recorded)):
        if sums.get(name) != recorded.get(name):
            what = "not recorded" if name not in recorded else "differs from the run's record"
            problems.append(f"{name} ({what})" if name in sums else f"{name} (missing)")
    if reference != record.get("reference"):
        problems.append("reference.json (differs from the run's record)")
    artifact = record.get("artifact") or {}
    stage = artifact.get("stage")
    if stage and "model.onnx" in sums:
        source = Path(artifact.get("path", ""))
        parts = source.parts
        rel = Path(*parts[len(parts) - parts[::-1].index(stage) :]) if stage in parts else source
        files = (_manifest(run / stage / MANIFEST) or {}).get("files") or {}
        want = (files.get((rel / "model.onnx").as_posix()) or {}).get("sha256")
        if want != sums["model.onnx"]:
            problems.append(
                f"model.onnx (not the {artifact.get('name')} that stage '{stage}' made)"
            )
    return problems
