"""Teacher logits over a training split, stored once and reused by every distillation of it.

    cache = LogitCache(run_dir / "cache")
    key = cache_key(teacher="<teacher weights sha256>", data="<data hash>", rows=len(train_set))
    logits = cache.load(key, len(train_set))
    if logits is None:
        logits = cache.save(key, teacher_logits(teacher, train_set, tokenizer))

The key is a hash of whatever decides the logits (the teacher's weights, the rows, their
tokenization); a file holding another number of rows, or one that cannot be read (a write cut
short, a damaged disk), is removed and reported as absent, so the caller recomputes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from modelkit.files import atomic_write

log = logging.getLogger("distillery")

PREFIX = "teacher-logits-"


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


def save_array(path: Path, array: np.ndarray) -> None:
    """np.save (float32, no pickle) atomically onto `path`."""
    atomic_write(
        path,
        lambda handle: np.save(handle, np.asarray(array, dtype=np.float32), allow_pickle=False),
        binary=True,
    )
