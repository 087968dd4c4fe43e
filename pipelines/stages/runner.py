"""The runner: visits the planned stages in order, skips the done ones, runs and records the rest.

A stage is a plain function `main(ctx) -> StageResult` (setup → run → save). The runner owns
everything around it: the hash that decides whether it is done (`hashing`), the run folder's
`.attempt` record, the log file, timing, errors the user can fix turned into one-line messages,
and the manifest, written last. Under torchrun it also decides, on rank 0, what each process runs
(`pipelines.core.distributed`).
"""

from __future__ import annotations

import errno
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from modelkit.errors import InputError
from pipelines.core.config import Recipe, recipe_to_dict
from pipelines.core.context import StageContext
from pipelines.core.errors import DistilleryError
from pipelines.core.machine import machine, versions
from pipelines.core.runs import RunDir, check_writable, file_digests, verify_files
from pipelines.stages.hashing import stage_hash
from pipelines.stages.preflight import preflight_sources
from pipelines.stages.registry import STAGES, Stage, plan

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

    Under torchrun / accelerate launch (pipelines.core.distributed): rank 0 decides what to skip and
    writes every file; the others run the training stages with it, then return.
    """
    from pipelines.core import distributed
    from pipelines.data.loading import source_fingerprint

    world = distributed.world()
    if not world.is_main:
        echo = lambda _: None  # noqa: E731  (rank 0 speaks for the job)
    run = RunDir(runs_root, recipe.name)
    names = plan(target)
    if not dry_run and world.is_main:
        check_writable(run.path)
    preflight_sources(recipe, names)
    device = "cpu"
    if any(n in ("teacher", "distill") for n in names):
        from pipelines.train.settings import check_training_settings

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


def _run_stage(
    recipe, run, stage: Stage, digest, inputs, data_hash, cache, done, echo
) -> dict | None:
    """Run one stage and write its manifest (rank 0); on the other ranks of a DDP job, only run."""
    from pipelines.core import distributed

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
        stage.main(ctx)  # writes nothing: pipelines.core.distributed
        return None
    with stage_log(out / "log.txt"):
        log.info("stage %s started, hash %s", stage.name, digest)
        try:
            result = stage.main(ctx)
        except InputError as exc:  # a library refused the recipe's input: the message says why
            raise DistilleryError(f"stage '{stage.name}': {exc}") from None
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
