"""The recipe's unlabelled text (`distill.unlabelled`) as training rows: read
(pipelines/data/unlabelled.py), labelled by the teacher in resumable chunks under
`runs/<name>/cache/unlabelled-<key>/` (pipelines/distillation/teacher_labels.py), label -100 so
the task loss leaves them out while the KD loss (and any matches) learn from them.

The key holds the files' content, the teacher's weights and the tokenization: new text at the
same path is labelled again (and the stage hash, `pipelines.run.hashing.stage_sources`, follows
the same content).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from distill.cache import cache_key
from pipelines.core.context import StageContext
from pipelines.data.unlabelled import read_unlabelled, unlabelled_digest
from pipelines.distillation.logits import teacher_weights_digest
from pipelines.distillation.teacher_labels import label_in_chunks, to_json, training_rows

log = logging.getLogger("distillery")


def unlabelled_set(ctx: StageContext, teacher, tokenizer, device: str, teacher_tokenizer=None):
    """(rows tokenized by `tokenizer` (the student's) with labels -100, their teacher logits
    (through `teacher_tokenizer`, default the same), record for the manifest)."""
    r = ctx.recipe
    path = Path(r.distill.unlabelled)
    texts = read_unlabelled(path, r.task.text_columns)
    digest = unlabelled_digest(path)
    key = cache_key(
        unlabelled=digest,
        teacher=ctx.inputs["teacher"]["hash"],
        teacher_weights=teacher_weights_digest(ctx.inputs["teacher"]),
        max_length=r.data.max_length,
        text_columns=r.task.text_columns,
    )
    folder = ctx.run.path / "cache" / f"unlabelled-{key[:16]}"
    started = time.time()
    done = label_in_chunks(
        ctx,
        teacher,
        teacher_tokenizer or tokenizer,
        device,
        folder,
        len(texts),
        lambda indices: [texts[i] for i in indices],
        "label unlabelled text",
    )
    record = {
        "source": str(path),
        "sha256": digest,
        "rows": len(done.rows),
        "made": done.made,
        "reused": done.reused,
        "chunks": done.chunks,
        "path": str(folder),
        "seconds": round(time.time() - started, 1),
        "examples": [to_json(row) for row in done.rows[:5]],
    }
    log.info("unlabelled text labelled by the teacher: %s", record)
    return training_rows(ctx, tokenizer, done.rows), done.logits, record
