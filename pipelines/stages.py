"""The stage registry and the runner that skips, resumes and records stages.

Each stage is a plain function `main(ctx) -> StageResult` (setup → run → save). The runner owns
everything around it: the hash that decides whether it is done, the log file, timing, and the
manifest written last.
"""

from __future__ import annotations

import errno
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.config import Recipe, recipe_to_dict
from pipelines.errors import ConfigError, DistilleryError, StageUnavailableError
from pipelines.runs import (
    RunDir,
    canonical_hash,
    check_writable,
    file_digests,
    machine,
    verify_files,
    versions,
)

log = logging.getLogger("distillery")

# Keys that change how a run is displayed, logged or scheduled, not what it computes: not hashed.
COSMETIC = {
    "train": ("logging_steps", "report_to", "dataloader_num_workers", "ddp_find_unused_parameters")
}
# Keys added after runs existed: hashed only when set away from this default, which is what runs
# made before the key did, so adding a key does not make every finished stage stale.
HASHED_WHEN_SET = {
    "distill": {"teacher_dtype": "fp32"},
    "train": {"optim": "adamw_torch"},
    "student": {"init_weights": "random", "prune_rows": 512},
}


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
    every_rank: bool = False  # runs on every process of a torchrun job (DDP); else on rank 0 only


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


def _bundle(ctx: StageContext) -> StageResult:
    from pipelines.bundle import main

    return main(ctx)


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage(
            "teacher",
            ("seed", "task", "data", "teacher", "train", "security"),
            (),
            _teacher,
            "fine-tune (or load and evaluate) the teacher classifier",
            every_rank=True,
        ),
        Stage(
            "distill",
            ("seed", "task", "data", "student", "distill", "train", "security"),
            ("teacher",),
            _distill,
            "build the student and train it on the combined loss",
            every_rank=True,
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
        Stage(
            "bundle",
            ("seed", "task", "data", "bundle"),
            ("teacher", "distill", "export", "quantize", "bench", "report"),
            _bundle,
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


def stage_hash(recipe: Recipe, stage: Stage, inputs: dict[str, str], data_hash: str) -> str:
    config = recipe_to_dict(recipe)
    hashed = {}
    for section in stage.sections:
        value = config.get(section)
        if isinstance(value, dict):
            late = HASHED_WHEN_SET.get(section, {})
            value = {
                k: v
                for k, v in value.items()
                if k not in COSMETIC.get(section, ()) and not (k in late and v == late[k])
            }
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
    """Run (or skip) every stage up to `target`; return the manifests by stage.

    Under torchrun / accelerate launch (pipelines.distributed): rank 0 decides what to skip and
    writes every file; the others run the training stages with it, then return.
    """
    from pipelines import distributed
    from pipelines.data import source_fingerprint

    world = distributed.world()
    if not world.is_main:
        echo = lambda _: None  # noqa: E731  (rank 0 speaks for the job)
    run = RunDir(runs_root, recipe.name)
    names = plan(target)
    if not dry_run and world.is_main:
        check_writable(run.path)
    preflight_sources(recipe, names)
    device = "cpu"
    if any(STAGES[n].main for n in names if n in ("teacher", "distill")):
        from pipelines.training import check_training_settings

        device = check_training_settings(recipe, names)  # fail before any work
    if not dry_run:
        distributed.init(device)
    data_hash = source_fingerprint(recipe)
    cache: dict[str, Any] = {}
    done: dict[str, dict] = {}
    for index, name in enumerate(names):
        stage = STAGES[name]
        if not world.is_main and not any(STAGES[n].every_rank for n in names[index:]):
            break  # nothing left that needs this process: rank 0 runs the rest alone
        inputs = {n: done[n]["hash"] for n in stage.needs}
        digest = stage_hash(recipe, stage, inputs, data_hash)
        existing = distributed.share(run.read_manifest(name) if world.is_main else None)
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
        manifest = None
        if world.is_main or stage.every_rank:
            manifest = _run_stage(recipe, run, stage, digest, inputs, data_hash, cache, done, echo)
        done[name] = distributed.share(manifest)  # the others wait here for rank 0's manifest
    return done


def _run_stage(recipe, run, stage, digest, inputs, data_hash, cache, done, echo) -> dict | None:
    """Run one stage and write its manifest (rank 0); on the other ranks of a DDP job, only run."""
    from pipelines import distributed

    main = distributed.is_main()
    out = run.stage(stage.name)
    if main:
        run.invalidate(stage.name)
        out.mkdir(parents=True, exist_ok=True)
        dropped = run.start_attempt(stage.name, digest)
        if dropped:
            echo(f"[{stage.name}] {dropped}")
    if stage.every_rank:
        distributed.barrier()  # the folder is there, the old manifest gone, before any rank starts
    for upstream in stage.needs:  # a damaged input is named now, not as a decoder's traceback
        verify_files(run.stage(upstream), upstream, done[upstream])
    echo(f"[{stage.name}] running: {stage.describe} → {out}")
    ctx = StageContext(recipe, run, stage.name, {n: done[n] for n in stage.needs}, cache)
    started = time.time()
    if not main:
        stage.main(ctx)  # writes nothing: pipelines.distributed
        return None
    with stage_log(out / "log.txt"):
        log.info("stage %s started, hash %s", stage.name, digest)
        try:
            result = stage.main(ctx)
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS:
                raise
            raise DistilleryError(storage_message(stage.name, exc, out)) from None
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
        "files": file_digests(out),
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


# Storage faults a user fixes by freeing space or choosing another folder, not by reading a trace.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG}


def storage_message(stage: str, exc: OSError, out: Path) -> str:
    where = exc.filename or out
    return (
        f"{where}: cannot write ({exc.strerror or exc}) while running stage '{stage}'. Stage "
        f"'{stage}' left no manifest, so it reruns next time; finished stages are untouched. Free "
        "disk space (or pass --runs-dir with a writable folder) and rerun the same command."
    )


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
    if "distill" in names and recipe.student.init == "pretrained":
        preflight_student_vocab(recipe)
    if "distill" in names and recipe.student.init_weights == "prune":
        preflight_prune(recipe)


def preflight_prune(recipe: Recipe) -> None:
    """A student that cannot be cut from the teacher (head width, sizes, layers) is refused before
    the teacher trains, from the teacher's config alone."""
    from distill.prune import check_prunable

    t = recipe.teacher
    if t.init == "config":
        from transformers import BertConfig

        config = BertConfig(**vars(t.config))
    else:
        from transformers import AutoConfig

        from pipelines.models import resolve_model

        source = resolve_model(t.model, recipe.security, "teacher.model")
        config = AutoConfig.from_pretrained(
            source.value, trust_remote_code=recipe.security.trust_remote_code
        )
    try:
        check_prunable(config, recipe.student.config, recipe.student.layers)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def preflight_student_vocab(recipe: Recipe) -> None:
    """Case: a `pretrained` student whose vocabulary differs from the teacher's is refused before
    the teacher trains (not an hour later, when the distill stage builds the student)."""
    from distill.student import check_same_vocab
    from pipelines.models import load_tokenizer, model_source, resolve_model

    t = recipe.teacher
    if t.tokenizer:
        teacher_source = model_source(t.tokenizer, "teacher.tokenizer")
    elif t.init == "pretrained" and t.model:
        teacher_source = resolve_model(t.model, recipe.security, "teacher.model")
    else:
        return  # a word vocabulary built from the data: checked when the student is built
    student_source = resolve_model(recipe.student.model, recipe.security, "student.model")
    try:
        check_same_vocab(
            load_tokenizer(teacher_source, recipe.security),
            load_tokenizer(student_source, recipe.security),
            "student.model",
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
