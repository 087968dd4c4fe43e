"""The run's teacher-logit cache: `runs/<name>/cache/`, keyed by what decides the logits.

The key holds the teacher's weights (their sha256 from the teacher stage's manifest, so a
retrained teacher at the same config gets new logits), the data's content hash and how the rows
were drawn and tokenized. Under DDP rank 0 computes and writes; the others wait, then read.

The pass is built in chunks of `CHUNK_ROWS` rows (`distill.cache.LogitCache.build`): an
interrupted run keeps the chunks it finished and the rerun computes only the rest, with a
progress line counting rows.
"""

from __future__ import annotations

import time

import numpy as np

from distill.api import teacher_logits
from distill.cache import LogitCache, cache_key
from pipelines.core import progress
from pipelines.core.context import StageContext
from pipelines.core.distributed import is_main, main_first

# One chunk is a minute or two of a base-size teacher on 2 CPU cores (~50 rows/s at 64 tokens),
# so an interruption loses little; the demo's train split fits in one, as before chunking.
CHUNK_ROWS = 4096


def teacher_weights_digest(manifest: dict) -> str | None:
    """sha256 of the teacher's weights as its stage recorded them (None for old manifests)."""
    return ((manifest.get("files") or {}).get("model.safetensors") or {}).get("sha256")


def cached_teacher_logits(
    ctx: StageContext, teacher, train_set, tokenizer, device: str, task=None, heads=None
) -> tuple[np.ndarray, dict]:
    """Teacher logits over the train split: from the cache, or computed and stored.

    `task` (pipelines.multitask.tasks.Task) with the teacher's `heads`: that task's split and
    head, keyed by the task's name and data as well."""
    from contextlib import nullcontext

    r = task.recipe if task is not None else ctx.recipe
    manifest = ctx.inputs["teacher"]
    fields = {"task": task.name, "task_data": task.data.data_hash} if task is not None else {}
    key = cache_key(
        teacher=manifest["hash"],
        teacher_weights=teacher_weights_digest(manifest),
        data=ctx.data().data_hash,
        rows=len(train_set),
        max_length=r.data.max_length,
        max_train_samples=r.data.max_train_samples,
        seed=r.seed,
        **fields,
    )
    cache = LogitCache(ctx.run.path / "cache")
    with main_first():
        logits = cache.load(key, len(train_set))
        if logits is not None:
            return logits, {"path": str(cache.path(key)), "reused": True, "seconds": 0.0}
        started = time.time()
        rows = len(train_set)
        finished = cache.finished_rows(key, rows, CHUNK_ROWS) if is_main() else 0
        head = heads.use(teacher, task.name) if task is not None else nullcontext()
        with head, progress.step("teacher logits", rows, "rows", initial=finished) as shown:

            def compute(start: int, stop: int) -> np.ndarray:
                return teacher_logits(
                    teacher,
                    train_set.select(range(start, stop)),
                    tokenizer,
                    r.distill.eval_batch_size,
                    device,
                    on_batch=shown.advance,
                )

            # the other ranks get here only when rank 0's cache is unreadable: compute, write nothing
            logits = cache.build(key, rows, compute, CHUNK_ROWS) if is_main() else compute(0, rows)
        seconds = time.time() - started
    record = {"path": str(cache.path(key)), "reused": False, "seconds": round(seconds, 2)}
    return logits, {**record, "resumed_rows": finished} if finished else record
