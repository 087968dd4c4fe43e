"""Labelled rows and predictions as the bundle's files hold them, per task type.

A row is (texts, label): one text per text column, the label in `gold_value` form (an index; for
multi_label the sorted indices present; for regression a float). JSON lines name labels (a name,
a list of names, a number); predictions are compared in `TaskType.values` form; `fingerprint` and
`predictions_hash` make "the same rows" and "the same predictions" checkable from reference.json.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from pipelines.core.errors import DataError
from pipelines.core.runs import atomic_write_text
from pipelines.core.user_files import read_text

Row = tuple[tuple[str, ...], Any]  # (texts, one per text column; label in gold_value form)


def fingerprint(rows: list[Row]) -> str:
    """sha256 of the rows' texts and labels, in order: 'same inputs' means the same fingerprint."""
    payload = json.dumps([[list(texts), label] for texts, label in rows], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def predictions_hash(predicted: list) -> str:
    """sha256 of per-row predictions (`TaskType.values` form: ints, index lists or floats)."""
    return hashlib.sha256(json.dumps(list(predicted)).encode()).hexdigest()


def gold_value(kind: str, label: Any) -> Any:
    """A dataset's `labels` entry in the form predictions take (`TaskType.values`): an index,
    the sorted indices of the labels present (multi_label), a float (regression), or a tag
    index per word (token_classification; from per-piece labels, the -100s dropped)."""
    if kind == "token_classification":
        return [int(t) for t in label if t != -100]
    if kind == "multi_label":
        return [j for j, v in enumerate(label) if v > 0.5]
    return float(label) if kind == "regression" else int(label)


def _label_json(kind: str, label: Any, labels: list[str]) -> Any:
    if kind in ("multi_label", "token_classification"):
        return [labels[j] for j in label]
    return label if kind == "regression" else labels[label]


def write_rows(
    path: Path,
    rows: list[Row],
    text_columns: list[str],
    labels: list[str],
    kind: str = "single_label",
) -> Path:
    """JSON lines predict.py reads: the text columns, and the label by name (multi_label: a
    list of names; regression: the number)."""
    lines = [
        json.dumps(
            {
                **dict(zip(text_columns, texts, strict=True)),
                "label": _label_json(kind, label, labels),
            }
        )
        for texts, label in rows
    ]
    atomic_write_text(path, "".join(line + "\n" for line in lines))
    return path


def read_rows(path: Path, config: dict[str, Any]) -> list[Row]:
    """Labelled JSON lines → rows; DataError naming the file, line and key on a bad row."""
    columns, labels = config["text_columns"], config["labels"]
    keys = list(dict.fromkeys([config.get("label_column", "label"), "label"]))
    if not path.exists():
        raise DataError(f"--data {path}: no such file.")
    rows = []
    for number, line in enumerate(read_text(path, "labelled rows").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict):
            raise DataError(f"{path}: line {number} is not a JSON object.")
        kind = config.get("task_type", "single_label")
        missing = [c for c in columns if not _is_text(row.get(c), kind)]
        key = next((k for k in keys if k in row), None)
        if missing or key is None:
            what = "a list of words" if kind == "token_classification" else "the text"
            raise DataError(
                f"{path}: line {number} lacks {missing or keys}; each line needs {what} under "
                f"{columns} and a label under {' or '.join(keys)}."
            )
        label = _label(kind, row[key], labels, path, number)
        if kind == "token_classification" and len(label) != len(row[columns[0]]):
            raise DataError(
                f"{path}: line {number}: {len(label)} tags for {len(row[columns[0]])} words; "
                "give one tag per word."
            )
        rows.append((tuple(row[c] for c in columns), label))
    if not rows:
        raise DataError(f"{path}: no rows.")
    return rows


def _is_text(value: Any, kind: str) -> bool:
    if kind == "token_classification":
        return isinstance(value, list) and bool(value) and all(isinstance(w, str) for w in value)
    return isinstance(value, str)


def _label(kind: str, value: Any, labels: list[str], path: Path, number: int) -> Any:
    if kind == "single_label":
        return _label_id(value, labels, path, number)
    from modelkit.label_forms import LABEL_FORMS, encode_label

    encoded = encode_label(kind, value, labels)
    if encoded is None:
        raise DataError(
            f"{path}: line {number}: label {value!r} is not {LABEL_FORMS[kind]} "
            f"(task_type {kind}, labels {labels})."
        )
    return gold_value(kind, encoded)


def _label_id(value: Any, labels: list[str], path: Path, number: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(labels):
        return value
    if isinstance(value, str) and value in labels:
        return labels.index(value)
    raise DataError(
        f"{path}: line {number}: label {value!r} is neither a name in {labels} nor an index "
        f"0..{len(labels) - 1}."
    )


def recipe_rows(recipe) -> list[Row]:
    """The recipe's eval split, loaded exactly as the pipeline's stages load it."""
    from pipelines.data.loading import load_task_data

    return split_rows(load_task_data(recipe).eval, recipe.task)


def split_rows(split, task) -> list[Row]:
    """(texts, label) per row of a loaded split, labels in `gold_value` form."""
    texts = list(zip(*(split[c] for c in task.text_columns), strict=True))
    return [
        (tuple(t), gold_value(task.type, label))
        for t, label in zip(texts, split["labels"], strict=True)
    ]


def predicted_values(results: list[dict[str, Any]], config: dict[str, Any]) -> list:
    """predict.py's output lines → predictions in `TaskType.values` form."""
    kind, labels = config.get("task_type", "single_label"), config["labels"]
    if kind == "token_classification":
        return [[labels.index(t) for t in r["tags"]] for r in results]
    if kind == "multi_label":
        return [sorted(labels.index(n) for n in r["labels"]) for r in results]
    if kind == "regression":
        return [r["value"] for r in results]
    return [labels.index(r["label"]) for r in results]
