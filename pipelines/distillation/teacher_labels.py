"""Rows the teacher labels for the student, in resumable chunks: the augmented rows
(`augmented_set`) and the recipe's unlabelled text (`unlabelled_set`) both come through here.

A folder `runs/<name>/cache/<kind>-<key>/` holds, per chunk, `rows-NNNNN.jsonl` (the rows) and
`logits-NNNNN.npy` (the teacher's logits on them), each written atomically; a killed run finds
the finished chunks and makes only the rest. The rows carry label -100: the task loss leaves
them out, the KD loss and the matches learn from them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from distill.api import teacher_logits
from distill.cache import save_array
from pipelines.core import progress
from pipelines.core.context import StageContext
from pipelines.core.distributed import is_main, main_first
from pipelines.core.runs import atomic_write_text

IGNORED_LABEL = -100  # cross-entropy's ignore_index: no gold label on these rows


@dataclass
class Labelled:
    """What `label_in_chunks` gives back: the rows, the teacher's logits on them, and how many
    rows it made now or found in finished chunks."""

    rows: list
    logits: np.ndarray
    made: int
    reused: int
    chunks: int


def label_in_chunks(
    ctx: StageContext,
    teacher,
    tokenizer,
    device: str,
    folder: Path,
    total: int,
    make: Callable[[Sequence[int]], list],
    desc: str,
) -> Labelled:
    """Rows 0..`total` in chunks of `distill.augment.chunk_rows`: `make(indices)` builds a
    chunk's rows (texts, or tuples for pairs), the teacher labels them through `tokenizer` (the
    teacher's own). Under DDP rank 0 makes
    the chunks, the others read them."""
    from pipelines.data.loading import tokenize

    r = ctx.recipe
    size = r.distill.augment.chunk_rows
    chunks = range(0, total, size)
    paths = [
        (folder / f"rows-{n:05d}.jsonl", folder / f"logits-{n:05d}.npy") for n in range(len(chunks))
    ]
    kept = sum(
        min(size, total - start)
        for start, (rows_path, logits_path) in zip(chunks, paths, strict=True)
        if rows_path.is_file() and logits_path.is_file()
    )
    all_rows, all_logits, made, reused = [], [], 0, 0
    with main_first(), progress.step(desc, total, "rows", initial=kept) as shown:
        for start, (rows_path, logits_path) in zip(chunks, paths, strict=True):
            indices = range(start, min(start + size, total))
            if rows_path.is_file() and logits_path.is_file():
                rows = [_from_json(line) for line in rows_path.read_text().splitlines()]
                logits = np.load(logits_path, allow_pickle=False)
                if len(rows) == len(indices) == len(logits):
                    all_rows += rows
                    all_logits.append(logits)
                    reused += len(rows)
                    continue
            rows = make(indices)
            chunk = tokenize(as_dataset(rows, r.task.text_columns), tokenizer, r)
            logits = teacher_logits(
                teacher, chunk, tokenizer, r.distill.eval_batch_size, device, shown.advance
            )
            if is_main():
                atomic_write_text(rows_path, "".join(json.dumps(row) + "\n" for row in rows))
                save_array(logits_path, logits)
            all_rows += rows
            all_logits.append(logits)
            made += len(rows)
    empty = np.zeros((0, teacher.config.num_labels))
    logits = np.concatenate(all_logits) if all_logits else empty
    return Labelled(all_rows, logits.astype(np.float32), made, reused, len(chunks))


def training_rows(ctx: StageContext, tokenizer, rows: list):
    """The rows tokenized as the train split is, each with label -100."""
    from pipelines.data.loading import tokenize

    r = ctx.recipe
    dataset = tokenize(as_dataset(rows, r.task.text_columns), tokenizer, r)
    return dataset.add_column("labels", [IGNORED_LABEL] * len(dataset))


def as_dataset(rows, columns: list[str]):
    import datasets

    if len(columns) == 1:
        return datasets.Dataset.from_dict({columns[0]: [str(r) for r in rows]})
    return datasets.Dataset.from_dict({c: [r[i] for r in rows] for i, c in enumerate(columns)})


def to_json(row):
    return row if isinstance(row, str) else list(row)


def _from_json(line: str):
    value = json.loads(line)
    return value if isinstance(value, str) else tuple(value)
