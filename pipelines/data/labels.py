"""Labels as the model trains on them, checked row by row: an index for single-label tasks
(`label_ids`), a 0/1 float list or a float for multi-label and regression (`typed_labels`), a
tag index per word for token classification (`tag_ids`).
Every error names the split, the row (or file line) and what the label must be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipelines.core.errors import DataError

Where = Callable[[int], str] | None  # row index → "train.csv line 7", for messages


def row_name(row: int, where: Where) -> str:
    return where(row) if where else f"row {row + 1}"


def label_ids(
    values: list[Any], labels: list[str], split: str, where: Where = None, start: int = 0
) -> list[int]:
    """Map raw label values (int indices or label names) to ints, naming the first bad row."""
    index = {name: i for i, name in enumerate(labels)}
    out = []
    for row, value in enumerate(values, start):
        if isinstance(value, bool) or value is None:
            ok = False
        elif isinstance(value, int):
            ok = 0 <= value < len(labels)
        elif isinstance(value, float) and value.is_integer():  # a csv column with a blank reads
            value, ok = int(value), 0 <= value < len(labels)  # as floats: 1.0 is label 1
        elif isinstance(value, str):
            ok = value in index
            value_id = index.get(value)
        else:
            ok = False
        if not ok:
            shown = "(empty)" if value is None else repr(value)
            raise DataError(
                f"split '{split}', {row_name(row, where)}: label {shown} is not valid. task.labels "
                f"is {labels}: labels must be an index 0..{len(labels) - 1} or one of those names."
            )
        out.append(value if isinstance(value, int) else value_id)
    return out


def typed_labels(
    kind: str,
    values: list[Any],
    labels: list[str],
    split: str,
    where: Where = None,
    multi_hot: bool = False,
) -> list[Any]:
    """Multi-label (multi-hot float lists) or regression (floats) labels, naming the first bad row."""
    from modelkit.label_forms import LABEL_FORMS, encode_label

    out = []
    for row, value in enumerate(values):
        encoded = encode_label(kind, value, labels, multi_hot)
        if encoded is None:
            shown = "(empty)" if value is None else repr(value)
            raise DataError(
                f"split '{split}', {row_name(row, where)}: label {shown} is not valid for "
                f"task.type {kind}: each label must be {LABEL_FORMS[kind]} (task.labels: {labels})."
            )
        out.append(encoded)
    return out


def tag_ids(
    values: list[Any],
    labels: list[str],
    split: str,
    where: Where = None,
    *,
    words: list[list[str]],
) -> list[list[int]]:
    """token_classification: a tag index per word, naming the first row whose tags are not
    tag names/indices or do not number its words."""
    from modelkit.label_forms import LABEL_FORMS, encode_label

    out = []
    for row, (value, row_words) in enumerate(zip(values, words, strict=True)):
        encoded = encode_label("token_classification", value, labels)
        if encoded is None:
            shown = "(empty)" if value is None else repr(value)[:120]
            raise DataError(
                f"split '{split}', {row_name(row, where)}: tags {shown} are not valid: each row "
                f"needs {LABEL_FORMS['token_classification']} (task.labels: {labels})."
            )
        if len(encoded) != len(row_words):
            raise DataError(
                f"split '{split}', {row_name(row, where)}: {len(encoded)} tags for "
                f"{len(row_words)} words; give exactly one tag per word."
            )
        out.append(encoded)
    return out


def require_classes(dataset, split: str, labels: list[str]) -> None:
    """A single-label train split with one class trains a model that always answers it (chance
    on anything else): refused, naming the class."""
    present = set(dataset["labels"]) if len(dataset) else set()
    if len(present) == 1:
        only = labels[next(iter(present))]
        raise DataError(
            f"split '{split}': every one of its {len(dataset)} rows is labelled '{only}', so a "
            f"model trained on it learns to answer '{only}' whatever the text. Give rows of at "
            f"least two of {labels} (check data.max_train_samples and the label column)."
        )
