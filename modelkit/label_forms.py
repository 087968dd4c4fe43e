"""Labels as the task types (`modelkit.task_types`) read them: each raw label value encoded as the
model trains on it, or None when it is not of the type's form (`LABEL_FORMS` says what is).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def is_multi_hot(values: list[Any], labels: list[str]) -> bool:
    """Whether a multi-label column is 0/1 lists (every row a list of 0s and 1s as long as the
    labels) rather than lists of indices. Decided over the whole column: a row [0, 1] with two
    labels means "the second label" in a 0/1 column and "both" in an index column."""
    return bool(values) and all(_hot_row(v, len(labels)) for v in values)


def _hot_row(value: Any, width: int) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == width
        and all(not isinstance(v, (bool, str)) and v in (0, 1) for v in value)
    )


def encode_label(kind: str, value: Any, labels: list[str], multi_hot: bool = False) -> Any:
    """A raw label as the model trains on it, or None when it is not valid for `kind`
    (multi_label: a 0/1 float list, from names or indices, or from a 0/1 list when the column
    is one, see `is_multi_hot`; regression: a float; token_classification: a list of tag
    indices, one per word)."""
    if kind == "regression":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if np.isfinite(value) else None
    if kind == "multi_label":
        if not isinstance(value, (list, tuple)):
            return None
        if multi_hot:
            return [float(v) for v in value] if _hot_row(value, len(labels)) else None
        index = {name: i for i, name in enumerate(labels)}
        hot = [0.0] * len(labels)
        for v in value:
            if isinstance(v, str) and v in index:
                hot[index[v]] = 1.0
            elif isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(labels):
                hot[v] = 1.0
            else:
                return None
        return hot
    if kind == "token_classification":  # one tag per word: names or indices
        if not isinstance(value, (list, tuple)) or not value:
            return None
        index = {name: i for i, name in enumerate(labels)}
        out = []
        for v in value:
            if isinstance(v, str) and v in index:
                out.append(index[v])
            elif isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(labels):
                out.append(v)
            else:
                return None
        return out
    raise ValueError(f"encode_label: {kind!r} is encoded by the single-label path")


LABEL_FORMS = {
    "token_classification": "a list of tag names or indices, one per word of the text column",
    "multi_label": 'a list of label names or indices (e.g. ["plot", "cast"]), or a 0/1 list '
    "as long as task.labels",
    "regression": "a number",
}
