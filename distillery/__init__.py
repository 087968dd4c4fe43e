"""distillery's Python API, for notebooks and scripts: the CLI's `validate` and `run` as functions.

    import distillery
    result = distillery.run("recipes/demo.yaml", stage="distill", overrides={"distill.epochs": 1})
    result.metrics("distill")["accuracy"]      # what the stage's manifest recorded
    result.path("distill")                     # runs/demo/distill/: the student, save_pretrained
    result.artifact("quantize", "student-int8-dynamic")   # an artifact folder by its name

`overrides` are recipe keys with values (any YAML/JSON value), checked like `--set key=value`:
an unknown key or a bad value raises `pipelines.core.errors.ConfigError` naming the key. The
libraries underneath work on their own too: `distill.api.distill`, `export.onnx_export.
export_classifier`, `quantize.ort_dynamic.quantize_dynamic`, `quantize.openvino.quantize_openvino`
(README, "Python API").
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RunResult", "load", "run", "validate"]


def _as_set_args(overrides: dict[str, Any] | None) -> list[str]:
    # JSON is YAML: lists, numbers, booleans, null and strings all parse back as given.
    return [f"{key}={json.dumps(value)}" for key, value in (overrides or {}).items()]


def load(recipe: str | Path, overrides: dict[str, Any] | None = None):
    """The validated recipe (`pipelines.core.config.Recipe`) with `overrides` applied."""
    from pipelines.core.config import load_recipe

    return load_recipe(recipe, _as_set_args(overrides))


def validate(recipe: str | Path, overrides: dict[str, Any] | None = None):
    """`distillery validate`: the recipe, the checks made from model configs alone, and a local
    data source's columns and labels against the task section."""
    from pipelines.run.preflight import preflight_data, preflight_models

    loaded = load(recipe, overrides)
    preflight_models(loaded)
    preflight_data(loaded)
    return loaded


@dataclass
class RunResult:
    name: str
    runs_dir: Path
    manifests: dict[str, dict] = field(default_factory=dict)  # by stage, as written

    def path(self, stage: str) -> Path:
        return self.runs_dir / self.name / stage

    def metrics(self, stage: str) -> dict[str, Any]:
        return dict(self.manifests[stage].get("metrics") or {})

    def artifact(self, stage: str, name: str) -> Path:
        """An artifact folder or file the stage's manifest names (KeyError lists the names)."""
        manifest = self.manifests[stage]
        entries = {**(manifest.get("artifacts") or {})}
        for group in ("quantized", "exports"):
            entries.update({k: v.get("path", k) for k, v in (manifest.get(group) or {}).items()})
        if name not in entries:
            raise KeyError(f"{stage} has no artifact {name!r}; it has {sorted(entries)}")
        return self.path(stage) / entries[name]


def run(
    recipe: str | Path,
    stage: str | None = None,
    overrides: dict[str, Any] | None = None,
    runs_dir: str | Path = "runs",
    force: bool = False,
    quiet: bool = False,
) -> RunResult:
    """`distillery run`: `stage` and what it needs (None: every stage), finished ones skipped."""
    from pipelines.run.runner import run_pipeline

    loaded = load(recipe, overrides)
    manifests = run_pipeline(
        loaded,
        Path(runs_dir),
        target=stage,
        force=force,
        echo=(lambda _: None) if quiet else print,
    )
    return RunResult(loaded.name, Path(runs_dir), manifests)
