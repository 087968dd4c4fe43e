"""The runner: visits the planned stages in order, skips the done ones, runs and records the rest.

A stage is a plain function `main(ctx) -> StageResult` (setup → run → save). The runner owns
everything around it: the hash that decides whether it is done (`hashing`), the run folder's
`.attempt` record, the log file, time and peak memory (`pipelines.core.usage`), the stage's name
on its steps' progress lines, errors the user can fix turned into one-line messages, and the
manifest, written last. Under torchrun it also decides, on rank 0, what each process runs
(`pipelines.core.distributed`).
"""

from __future__ import annotations

import errno
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelkit.errors import InputError
from pipelines.core import progress
from pipelines.core.config import Recipe, recipe_to_dict
from pipelines.core.context import StageContext
from pipelines.core.errors import DistilleryError
from pipelines.core.lock import RunLock
from pipelines.core.machine import machine, versions
from pipelines.core.runs import RunDir, check_writable, damaged_files, file_digests, verify_files
from pipelines.core.usage import StageUsage, peak_text
from pipelines.data.loading import load_task_data
from pipelines.run.hashing import is_done, stage_hash, stage_sources
from pipelines.run.preflight import preflight_sources
from pipelines.run.registry import STAGES, Stage, plan

log = logging.getLogger("distillery")


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

    The run folder is locked for the whole run (`RunLock`). Under torchrun / accelerate launch
    (pipelines.core.distributed): rank 0 holds the lock, decides what to skip and writes every
    file; the others run the training stages with it, then return.
    """
    from pipelines.core import distributed

    world = distributed.world()
    run = RunDir(runs_root, recipe.name)
    if dry_run or not world.is_main:
        return _run_pipeline(recipe, run, target, force, dry_run, echo)
    check_writable(run.path)
    with RunLock(run.path):
        return _run_pipeline(recipe, run, target, force, dry_run, echo)


def _run_pipeline(recipe, run: RunDir, target, force, dry_run, echo) -> dict[str, dict]:
    from pipelines.core import distributed
    from pipelines.multitask.tasks import data_fingerprint

    world = distributed.world()
    if not world.is_main:
        echo = lambda _: None  # noqa: E731  (rank 0 speaks for the job)
    names = plan(target)
    preflight_sources(recipe, names)
    device = "cpu"
    if any(n in ("teacher", "distill") for n in names):
        from pipelines.train.settings import check_training_settings

        device = check_training_settings(recipe, names)  # fail before any work
    if not dry_run:
        distributed.init(device)
    data_hash = data_fingerprint(recipe)  # every task's data in a transfer recipe
    cache: dict[str, Any] = {}
    done: dict[str, dict] = {}
    reran: set[str] = set()  # stages run in this invocation: what needs them runs again too
    names = [n for n in names if STAGES[n].runs_for(recipe)]
    if target and target not in names:
        raise DistilleryError(
            f"--stage {target}: the recipe does not enable it (set {target}.enabled: true)"
        )
    for index, name in enumerate(names):
        stage = STAGES[name]
        if not world.is_main and not any(STAGES[n].every_rank for n in names[index:]):
            break  # nothing left that needs this process: rank 0 runs the rest alone
        inputs = {n: done[n]["hash"] for n in stage.needs if n in done}
        sources = stage_sources(recipe, name) if world.is_main else {}
        digest = stage_hash(recipe, stage, inputs, data_hash, sources)
        legacy = stage_hash(recipe, stage, inputs, data_hash) if sources else digest
        forced = (force and (target is None or name == target)) or bool(reran & set(stage.needs))
        existing = None
        if world.is_main and not forced:
            existing = _finished(run, name, digest, legacy, echo)
        existing = distributed.share(existing)
        if existing:
            echo(
                f"[{name}] skipped: already done with this config (hash {existing['hash'][:12]}); "
                "--force reruns it"
            )
            done[name] = existing
            continue
        if dry_run:
            state = "stale (config or inputs changed)" if run.read_manifest(name) else "not run yet"
            echo(f"[{name}] would run: {stage.describe}; {state}; output {run.stage(name)}")
            done[name] = {"hash": f"(pending {digest[:12]})"}
            continue
        reran.add(name)
        manifest = None
        if world.is_main or stage.every_rank:
            manifest = _run_stage(
                recipe, run, stage, digest, inputs, data_hash, sources, cache, done, echo
            )
        done[name] = distributed.share(manifest)  # the others wait here for rank 0's manifest
    return done


def _finished(run: RunDir, name: str, digest: str, legacy: str, echo) -> dict | None:
    """The stage's manifest if it is done with this config and its files are intact; else None.

    A finished run set aside by an attempt under another config that never finished is restored
    here when this config is its own. Files that changed since the stage finished (a truncated
    model, an edited file) make it not done: it reruns, and says why.
    """
    existing = run.read_manifest(name)
    if not is_done(existing, digest, legacy):
        previous = run.read_previous_manifest(name)
        if not is_done(previous, digest, legacy):
            return None
        run.restore_previous(name)
        echo(
            f"[{name}] restored the finished run of this config (hash {digest[:12]}); an attempt "
            "under another config had not finished"
        )
        existing = previous
    problems = damaged_files(run.stage(name), existing)
    if problems:
        echo(f"[{name}] its files changed since it finished ({problems[0]}); rerunning the stage")
        return None
    return existing


def _run_stage(
    recipe, run, stage: Stage, digest, inputs, data_hash, sources, cache, done, echo
) -> dict | None:
    """Run one stage and write its manifest (rank 0); on the other ranks of a DDP job, only run."""
    from pipelines.core import distributed

    main = distributed.is_main()
    out = run.stage(stage.name)
    if main:
        if run.set_aside(stage.name):
            echo(
                f"[{stage.name}] the finished run is kept aside (.{stage.name}.previous) until this "
                "one completes"
            )
        out.mkdir(parents=True, exist_ok=True)
        dropped = run.start_attempt(stage.name, digest)
        if dropped:
            echo(f"[{stage.name}] {dropped}")
    if stage.every_rank:
        distributed.barrier()  # the folder is ready before any rank starts
    needs = [n for n in stage.needs if n in done]  # an optional stage left out is not an input
    for upstream in needs:  # a damaged input is named now, not as a decoder's traceback
        verify_files(run.stage(upstream), upstream, done[upstream])
    echo(f"[{stage.name}] running: {stage.describe} → {out}")
    ctx = StageContext(recipe, run, stage.name, {n: done[n] for n in needs}, cache, load_task_data)
    usage = StageUsage()
    if not main:
        stage.main_for(recipe)(ctx)  # writes nothing: pipelines.core.distributed
        return None
    with stage_log(out / "log.txt"), progress.within(stage.name):
        log.info("stage %s started, hash %s", stage.name, digest)
        try:
            result = stage.main_for(recipe)(ctx)
        except InputError as exc:  # a library refused the recipe's input: the message says why
            raise DistilleryError(f"stage '{stage.name}': {exc}") from None
        except Exception as exc:
            if not is_storage_error(exc, out):
                raise
            removed = remove_partial_files(out)
            raise DistilleryError(storage_message(stage.name, exc, out, removed)) from None
        used = usage.record()
        seconds = used["seconds"]
        log.info(
            "stage %s finished in %.1f s, peak memory %s: %s",
            stage.name,
            seconds,
            peak_text(used),
            result.metrics,
        )
    manifest = {
        "stage": stage.name,
        "hash": digest,
        "config": recipe_to_dict(recipe),
        "hashed_sections": list(stage.sections),
        "inputs": {"manifests": inputs, "data": data_hash},
        "sources": sources,
        "metrics": result.metrics,
        "artifacts": result.artifacts,
        "files": file_digests(out),
        **result.extra,
        "seconds": round(seconds, 2),
        "usage": used,  # recorded, never hashed: stage_hash reads the recipe and inputs only
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": versions(),
        "machine": machine(),
    }
    manifest = json.loads(json.dumps(manifest, default=str))  # exactly what is on disk
    run.write_manifest(stage.name, manifest)
    run.drop_previous(stage.name)  # the new run is complete: the one set aside can go
    shown = ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in result.metrics.items()
        if not isinstance(v, (dict, list))
    )
    echo(f"[{stage.name}] done in {seconds:.1f} s, peak memory {peak_text(used)}: {shown}")
    return manifest


# Storage faults a user fixes by freeing space or choosing another folder, not by reading a trace.
STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG}
FULL_BELOW_BYTES = 1 << 20  # a write that failed with less than 1 MiB left ran out of space


def is_storage_error(exc: BaseException, out: Path) -> bool:
    """An OSError with a storage errno anywhere in the chain, or any write failure on a disk with
    (almost) no space left: torch and safetensors report a full disk as a RuntimeError that names
    no errno ("PytorchStreamWriter failed writing file")."""
    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            return True
        seen = seen.__cause__ or seen.__context__
    if "No space left" in str(exc):
        return True
    try:
        return shutil.disk_usage(out).free < FULL_BELOW_BYTES
    except OSError:
        return False


def remove_partial_files(out: Path) -> int:
    """Delete what the failed attempt wrote (complete checkpoints and the run records stay, so a
    rerun resumes); returns the bytes freed."""
    from pipelines.train.checkpoints import complete_checkpoints

    keep = {out / "log.txt", out / ".attempt", *complete_checkpoints(out / "checkpoints")}
    freed = 0
    for path in sorted(out.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if any(path == k or k in path.parents for k in keep):
            continue
        if path.is_file() or path.is_symlink():
            freed += path.stat().st_size if path.is_file() else 0
            path.unlink(missing_ok=True)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return freed


def storage_message(stage: str, exc: BaseException, out: Path, removed: int) -> str:
    where = getattr(exc, "filename", None) or out
    reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0][:200]
    return (
        f"{where}: cannot write ({reason}) while running stage '{stage}'. The partial files of "
        f"this attempt were removed ({removed / 2**20:.1f} MiB); stage '{stage}' left no manifest, "
        "so it reruns next time, and finished stages are untouched. Free disk space (or pass "
        "--runs-dir with a writable folder) and rerun the same command."
    )
