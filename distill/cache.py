"""Teacher logits over a training split, stored once and reused by every distillation of it.

    cache = LogitCache(run_dir / "cache")
    key = cache_key(teacher="<teacher weights sha256>", data="<data hash>", rows=len(train_set))
    logits = cache.load(key, len(train_set))
    if logits is None:
        logits = cache.save(key, teacher_logits(teacher, train_set, tokenizer))

The key is a hash of whatever decides the logits (the teacher's weights, the rows, their
tokenization); a file holding another number of rows, or one that cannot be read (a write cut
short, a damaged disk), is removed and reported as absent, so the caller recomputes it.

A long pass (a base-size teacher on CPU: hours) is built in chunks that survive an interruption:

    logits = cache.build(key, len(train_set), lambda a, b: teacher_logits(
        teacher, train_set.select(range(a, b)), tokenizer))

Each finished chunk of rows is written atomically to `teacher-logits-<key>.parts/`; a rerun reads
the chunks that are there and computes only the rest. Once every chunk is done the whole array
is saved as the single `.npy` file `load` reads (the format is unchanged) and the parts go.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from modelkit.files import atomic_write

log = logging.getLogger("distillery")

PREFIX = "teacher-logits-"
CHUNK_ROWS = 4096  # rows per resumable chunk of `LogitCache.build`


def cache_key(**facts: Any) -> str:
    """sha256 of the facts (JSON, sorted keys): what decides the logits."""
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class LogitCache:
    """`folder/teacher-logits-<key>.npy` files, written atomically (temporary file + rename)."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)

    def path(self, key: str) -> Path:
        return self.folder / f"{PREFIX}{key[:20]}.npy"

    def load(self, key: str, rows: int) -> np.ndarray | None:
        """The cached logits `[rows, labels]`, or None (absent, another length, or unreadable)."""
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            logits = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            log.warning("%s: unreadable teacher-logit cache (%s); removed, recomputing", path, exc)
            path.unlink(missing_ok=True)
            return None
        if logits.ndim != 2 or logits.shape[0] != rows or not np.isfinite(logits).all():
            log.warning(
                "%s: cached logits of shape %s do not fit %d rows (or are not finite); removed, "
                "recomputing",
                path,
                logits.shape,
                rows,
            )
            path.unlink(missing_ok=True)
            return None
        return logits

    def save(self, key: str, logits: np.ndarray) -> np.ndarray:
        """Write `logits` under `key` atomically; returns them."""
        save_array(self.path(key), logits)
        return logits

    def parts(self, key: str) -> Path:
        """The folder of `build`'s finished chunks while a pass is incomplete."""
        return self.folder / f"{PREFIX}{key[:20]}.parts"

    def finished_rows(self, key: str, rows: int, chunk_rows: int = CHUNK_ROWS) -> int:
        """Rows an interrupted `build` of `key` left in finished chunks (read back by `build`)."""
        return sum(
            b - a for a, b in chunks(rows, chunk_rows) if _part(self.parts(key), a, b).is_file()
        )

    def build(
        self,
        key: str,
        rows: int,
        compute: Callable[[int, int], np.ndarray],
        chunk_rows: int = CHUNK_ROWS,
    ) -> np.ndarray:
        """The logits of rows [0, rows) under `key`, `compute(start, stop)` giving those of rows
        [start, stop) for each chunk no earlier pass finished; saved as `save` does."""
        folder = self.parts(key)
        done = []
        for start, stop in chunks(rows, chunk_rows):
            path = _part(folder, start, stop)
            part = _read_part(path, stop - start)
            if part is None:
                part = np.asarray(compute(start, stop), dtype=np.float32)
                folder.mkdir(parents=True, exist_ok=True)
                save_array(path, part)
            done.append(part)
        logits = np.concatenate(done) if done else np.asarray(compute(0, 0), dtype=np.float32)
        self.save(key, logits)
        shutil.rmtree(folder, ignore_errors=True)
        return logits


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save (float32, no pickle) atomically onto `path`."""
    atomic_write(
        path,
        lambda handle: np.save(handle, np.asarray(array, dtype=np.float32), allow_pickle=False),
        binary=True,
    )


def chunks(rows: int, chunk_rows: int) -> Iterator[tuple[int, int]]:
    """(start, stop) of each chunk of `chunk_rows` rows, the last one shorter."""
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    for start in range(0, rows, chunk_rows):
        yield start, min(start + chunk_rows, rows)


def _part(folder: Path, start: int, stop: int) -> Path:
    return (
        folder / f"rows-{start:09d}-{stop:09d}.npy"
    )  # its rows in its name: no other chunking reads it


def _read_part(path: Path, rows: int) -> np.ndarray | None:
    """A finished chunk of `rows` rows, or None (absent; unreadable or wrong, then removed)."""
    if not path.is_file():
        return None
    try:
        part = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        part = None
    if part is None or part.ndim != 2 or len(part) != rows or not np.isfinite(part).all():
        log.warning("%s: a damaged chunk of teacher logits; removed, recomputing it", path)
        path.unlink(missing_ok=True)
        return None
    return part
