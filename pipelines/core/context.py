"""What a stage is given and what it gives back: `StageContext` in, `StageResult` out.

A stage is a plain function `main(ctx: StageContext) -> StageResult` (setup → run → save). It
reads its recipe, its inputs' manifests and the shared task data from the context, writes its
artifacts under `ctx.out`, and returns metrics, the artifacts by name and anything else its
manifest should hold; the runner (`pipelines.run.runner`) writes the manifest. The runner also
hands the context its data loader (`load_data`), so `core` imports nothing above it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.core.config import Recipe
from pipelines.core.runs import RunDir


@dataclass
class StageResult:
    metrics: dict[str, Any]
    artifacts: dict[str, str] = field(default_factory=dict)  # name → path relative to the stage dir
    extra: dict[str, Any] = field(default_factory=dict)  # anything else for the manifest


@dataclass
class StageContext:
    recipe: Recipe
    run: RunDir
    name: str
    inputs: dict[str, dict[str, Any]]  # upstream stage → its manifest
    _cache: dict[str, Any]
    load_data: Callable[[Recipe], Any]  # recipe -> TaskData (pipelines.data.loading.load_task_data)

    @property
    def out(self) -> Path:
        return self.run.stage(self.name)

    def input_dir(self, stage: str) -> Path:
        return self.run.stage(stage)

    def data(self):
        """The task data, loaded once per pipeline run and shared by its stages."""
        if "data" not in self._cache:
            self._cache["data"] = self.load_data(self.recipe)
        return self._cache["data"]
