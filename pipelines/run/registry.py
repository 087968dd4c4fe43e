"""The pipeline's stages, in order: one registry, `STAGES`, and `plan(target)`.

Each stage is a module of `pipelines.stages` with a `main(ctx) -> StageResult`; the registry names
the module and imports it only when the stage runs, so `distillery validate` and `distillery
stages` load no backend. A stage may have named variants (`Variant`): another module's `main` that
runs the same stage, with the same name, sections and hash, when the recipe asks for it (the
teacher and distill stages of a transfer recipe run `pipelines.multitask`). To add a stage, see
docs/architecture.md.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipelines.core.context import StageContext, StageResult
from pipelines.core.errors import DistilleryError


@dataclass(frozen=True)
class Variant:
    """Another way to run a stage, chosen by the recipe: same name, sections, needs and hash."""

    name: str  # what the variant is called in docs and logs
    module: str  # the module holding its `main(ctx) -> StageResult`
    applies: Callable[[Any], bool]  # recipe -> run this variant instead of the stage's module?


def _multitask(recipe) -> bool:
    return bool(recipe.transfer.enabled)


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # recipe sections whose values the stage's output depends on
    needs: tuple[str, ...]  # upstream stages whose manifests are inputs
    module: str  # the module holding `main(ctx) -> StageResult`
    describe: str  # one line for --dry-run and `distillery stages`
    every_rank: bool = False  # runs on every process of a torchrun job (DDP); else on rank 0 only
    enabled: Callable[[Any], bool] | None = None  # recipe -> in the plan? (None: always)
    variants: tuple[Variant, ...] = ()  # the first that applies to the recipe runs instead

    def runs_for(self, recipe) -> bool:
        """Whether the recipe asks for this stage (an optional stage is left out otherwise, and
        the stages that need it run without it)."""
        return self.enabled is None or bool(self.enabled(recipe))

    def module_for(self, recipe) -> str:
        """The module that runs this stage for `recipe`: a variant's when one applies."""
        return next((v.module for v in self.variants if v.applies(recipe)), self.module)

    def main_for(self, recipe) -> Callable[[StageContext], StageResult]:
        return importlib.import_module(self.module_for(recipe)).main


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "teacher",
            ("seed", "task", "data", "teacher", "train", "security", "transfer"),
            (),
            "pipelines.stages.teacher",
            "fine-tune (or load and evaluate) the teacher classifier",
            every_rank=True,
            variants=(Variant("multitask", "pipelines.multitask.teacher_variant", _multitask),),
        ),
        Stage(
            "search",
            ("seed", "task", "data", "search", "distill", "train", "security"),
            ("teacher",),
            "pipelines.stages.search",
            "student search: candidates timed in int8, the survivors distilled briefly, one picked",
            every_rank=True,
            enabled=lambda recipe: recipe.search.enabled,
        ),
        Stage(
            "distill",
            ("seed", "task", "data", "student", "distill", "train", "security", "transfer"),
            ("teacher", "search"),  # search: only when enabled (its pick is the student)
            "pipelines.stages.distill",
            "build the student and train it on the combined loss",
            every_rank=True,
            variants=(Variant("multitask", "pipelines.multitask.distill_variant", _multitask),),
        ),
        Stage(
            "export",
            ("seed", "task", "data", "export", "transfer"),
            ("teacher", "distill"),
            "pipelines.stages.export",
            "export student and teacher to ONNX, fuse, check parity on the eval split",
        ),
        Stage(
            "quantize",
            ("seed", "task", "data", "quantize", "transfer"),
            ("distill", "export"),
            "pipelines.stages.quantize",
            "int8: ORT dynamic and static, Neural Compressor, OpenVINO (NNCF); accuracy gate",
        ),
        Stage(
            "bench",
            ("data", "bench"),
            ("teacher", "distill", "export", "quantize"),
            "pipelines.stages.bench",
            "latency grid, real-length serving, roofline; every backend in its own process",
        ),
        Stage(
            "report",
            ("bench",),
            ("bench",),
            "pipelines.stages.report",
            "README.md, results.json, pareto.png, latency.png, model card",
        ),
        Stage(
            "bundle",
            ("seed", "task", "data", "bundle", "transfer"),
            ("teacher", "distill", "export", "quantize", "bench", "report"),
            "pipelines.stages.bundle",
            "edge bundle: ONNX, tokenizer, predict.py, model card, SHA256SUMS; cold start timed",
        ),
    )
}


def plan(target: str | None) -> list[str]:
    """The stages to visit: `target` and everything upstream of it, in pipeline order."""
    if target is None:
        return list(STAGES)
    if target not in STAGES:
        raise DistilleryError(
            f"--stage {target!r}: unknown stage. Allowed values: {', '.join(STAGES)}."
        )
    wanted: set[str] = set()
    todo = [target]
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo.extend(STAGES[name].needs)
    return [name for name in STAGES if name in wanted]
