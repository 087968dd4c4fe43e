"""The stage registry and the runner that skips, resumes and records stages.

Each stage is a plain function `main(ctx) -> StageResult` (setup → run → save). The runner owns
everything around it: the hash that decides whether it is done, the log file, timing, and the
manifest written last.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import Recipe, recipe_to_dict
from pipelines.errors import DistilleryError, StageUnavailableError
from pipelines.runs import RunDir, canonical_hash, check_writable, machine, versions

log = logging.getLogger("distillery")

# Keys that change how a run is displayed or logged, not what it computes: not hashed.
COSMETIC = {"train": ("logging_steps", "report_to", "dataloader_num_workers")}


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

    @property
    def out(self) -> Path:
        return self.run.stage(self.name)

    def input_dir(self, stage: str) -> Path:
        return self.run.stage(stage)

    def data(self):
        """The task data, loaded once per pipeline run and shared by its stages."""
        if "data" not in self._cache:
            from pipelines.data import load_task_data

            self._cache["data"] = load_task_data(self.recipe)
        return self._cache["data"]


@dataclass(frozen=True)
class Stage:
    name: str
    sections: tuple[str, ...]  # recipe sections whose values the stage's output depends on
    needs: tuple[str, ...]  # upstream stages whose manifests are inputs
    main: Callable[[StageContext], StageResult] | None
    describe: str  # one line for --dry-run
    issue: int | None = None  # where an unavailable stage is tracked


def _teacher(ctx: StageContext) -> StageResult:
    from pipelines.teacher import main

    return main(ctx)


def _distill(ctx: StageContext) -> StageResult:
    from pipelines.distill_stage import main

    return main(ctx)


def _export(ctx: StageContext) -> StageResult:
    from pipelines.export_stage import main

    return main(ctx)


def _quantize(ctx: StageContext) -> StageResult:
    from pipelines.quantize_stage import main

    return main(ctx)


def _bench(ctx: StageContext) -> StageResult:
    from pipelines.bench_stage import bench

    return bench(ctx)


def _report(ctx: StageContext) -> StageResult:
    from pipelines.bench_stage import report

    return report(ctx)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "teacher",
            ("seed", "task", "data", "teacher", "train", "security"),
            (),
            _teacher,
            "fine-tune (or load and evaluate) the teacher classifier",
        ),
        Stage(
            "distill",
            ("seed", "task", "data", "student", "distill", "train", "security"),
            ("teacher",),
            _distill,
            "build the student and train it on the combined loss",
        ),
        Stage(
            "export",
            ("seed", "task", "data", "export"),
            ("teacher", "distill"),
            _export,
            "export student and teacher to ONNX, fuse, check parity on the eval split",
        ),
        Stage(
            "quantize",
            ("seed", "task", "data", "quantize"),
            ("distill", "export"),
            _quantize,
            "int8: ORT dynamic and static, Neural Compressor; accuracy gate",
        ),
        Stage(
            "bench",
            ("data", "bench"),
            ("teacher", "distill", "export", "quantize"),
            _bench,
            "latency grid, real-length serving, roofline; every backend in its own process",
        ),
        Stage(
            "report",
            ("bench",),
            ("bench",),
            _report,
            "README.md, results.json, pareto.png, latency.png, model card",
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


def stage_hash(recipe: Recipe, stage: Stage, inputs: dict[str, str], data_hash: str) -> str:
    config = recipe_to_dict(recipe)
    hashed = {}
    for section in stage.sections:
        value = config.get(section)
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in COSMETIC.get(section, ())}
        hashed[section] = value
    return canonical_hash(
        {"stage": stage.name, "config": hashed, "inputs": inputs, "data": data_hash}
    )


@contextmanager
def stage_log(path: Path) -> Iterator[None]:
    """Copy the distillery and transformers loggers into the stage's log.txt."""
    handler = logging.FileHandler(path, mode="a")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    ours = logging.getLogger("distillery")
    level = ours.level
    ours.setLevel(logging.INFO)
    loggers = [ours, logging.getLogger("transformers")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
        ours.setLevel(level)
        handler.close()


def run_pipeline(
    recipe: Recipe,
    runs_root: Path,
    target: str | None = None,
    force: bool = False,
    dry_run: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, dict]:
    """Run (or skip) every stage up to `target`; return the manifests by stage."""
    from pipelines.data import source_fingerprint

    run = RunDir(runs_root, recipe.name)
    names = plan(target)
    if not dry_run:
        check_writable(run.path)
    preflight_sources(recipe, names)
    if any(STAGES[n].main for n in names if n in ("teacher", "distill")):
        from pipelines.training import resolve_device

        resolve_device(recipe)  # cuda asked without CUDA: fail before any work
    data_hash = source_fingerprint(recipe)
    cache: dict[str, Any] = {}
    done: dict[str, dict] = {}
    for name in names:
        stage = STAGES[name]
        inputs = {n: done[n]["hash"] for n in stage.needs}
        digest = stage_hash(recipe, stage, inputs, data_hash)
        existing = run.read_manifest(name)
        forced = force and (target is None or name == target)
        if existing and existing.get("hash") == digest and not forced:
            echo(
                f"[{name}] skipped: already done with this config (hash {digest[:12]}); --force reruns it"
            )
            done[name] = existing
            continue
        if stage.main is None:
            finished = ", ".join(done) or "none"
            raise StageUnavailableError(
                f"stage '{name}' ({stage.describe}) is not available yet in this version of distillery "
                f"(tracked in issue #{stage.issue}). Stages finished: {finished}."
            )
        if dry_run:
            state = "stale (config or inputs changed)" if existing else "not run yet"
            echo(f"[{name}] would run: {stage.describe}; {state}; output {run.stage(name)}")
            done[name] = {"hash": f"(pending {digest[:12]})"}
            continue
        done[name] = _run_stage(recipe, run, stage, digest, inputs, data_hash, cache, done, echo)
    return done


def _run_stage(recipe, run, stage, digest, inputs, data_hash, cache, done, echo) -> dict:
    out = run.stage(stage.name)
    run.invalidate(stage.name)
    out.mkdir(parents=True, exist_ok=True)
    echo(f"[{stage.name}] running: {stage.describe} → {out}")
    ctx = StageContext(recipe, run, stage.name, {n: done[n] for n in stage.needs}, cache)
    started = time.time()
    with stage_log(out / "log.txt"):
        log.info("stage %s started, hash %s", stage.name, digest)
        result = stage.main(ctx)
        seconds = time.time() - started
        log.info("stage %s finished in %.1f s: %s", stage.name, seconds, result.metrics)
    manifest = {
        "stage": stage.name,
        "hash": digest,
        "config": recipe_to_dict(recipe),
        "hashed_sections": list(stage.sections),
        "inputs": {"manifests": inputs, "data": data_hash},
        "metrics": result.metrics,
        "artifacts": result.artifacts,
        **result.extra,
        "seconds": round(seconds, 2),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "machine": machine(),
    }
    manifest = json.loads(json.dumps(manifest, default=str))  # exactly what is on disk
    run.write_manifest(stage.name, manifest)
    shown = ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in result.metrics.items()
        if not isinstance(v, (dict, list))
    )
    echo(f"[{stage.name}] done in {seconds:.1f} s: {shown}")
    return manifest


def preflight_sources(recipe: Recipe, names: list[str]) -> None:
    """Resolve every model and dataset the planned stages read; one error for all hub problems."""
    from pipelines.models import resolve_model, teacher_sources
    from pipelines.sources import dataset_source, preflight

    sources = [(dataset_source(recipe.data.source, recipe.data.subset), "dataset")]
    if "teacher" in names:
        sources.extend(teacher_sources(recipe))
    if "distill" in names and recipe.student.init == "pretrained" and recipe.student.model:
        sources.append(
            (resolve_model(recipe.student.model, recipe.security, "student.model"), "model")
        )
    preflight(sources)
