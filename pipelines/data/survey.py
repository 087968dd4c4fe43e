"""Read a data source once and say what it holds: its columns, which look like text and which
like the label, the label names and the task type. `distillery init` proposes a recipe from it;
`distillery validate` lists every mismatch between a recipe and its data in one message
(`recipe_problems`), instead of a run failing on them one at a time.

The rows are read with the loaders of `pipelines.data.loading` (the same files, cache and
messages as a run); nothing here reads a file a second way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines.core.errors import DataError
from pipelines.core.sources import dataset_source

# Column names that say "label" (lower case); a column of few distinct values is a label too.
LABEL_NAMES = ("label", "labels", "sentiment", "class", "target", "category", "y", "rating")
MAX_CLASSES = 50  # more distinct values than this is not a class column
PAIRS = {
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question", "sentence"),
    ("question", "answer"),
    ("query", "passage"),
    ("text_a", "text_b"),
    ("text1", "text2"),
}


@dataclass
class Table:
    """The train rows of a source (a single file: all of it) and the size of its eval split."""

    name: str  # for messages: "reviews.csv"
    columns: list[str]
    values: dict[str, list[Any]]
    eval_rows: int | None = None  # None: one file, split by data.eval_fraction


@dataclass
class Proposal:
    """What the data says a recipe should hold, each decision with its reason."""

    text_columns: list[str] = field(default_factory=list)
    label_column: str | None = None
    labels: list[str] = field(default_factory=list)
    task_type: str = "single_label"
    why: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def read_table(
    source: str,
    subset: str | None = None,
    train_split: str = "train",
    eval_split: str = "validation",
) -> Table:
    """The train rows of `source` (file, folder of split files, save_to_disk folder, hub id)."""
    import datasets

    from pipelines.data.loading import FORMATS, _load_file, _split_file
    from pipelines.data.saved import is_saved_dataset, load_saved

    datasets.disable_progress_bars()
    found = dataset_source(source, subset)
    eval_rows = None
    if found.kind == "synthetic":
        raise DataError(f"{source}: generated data has no file to read; give a file or folder.")
    if found.kind == "hub":
        try:
            loaded = datasets.load_dataset(found.value, found.subset)
        except Exception as exc:
            raise DataError(f"data.source {source}: loading failed: {exc}") from None
        train = loaded[train_split] if train_split in loaded else next(iter(loaded.values()))
        eval_rows = len(loaded[eval_split]) if eval_split in loaded else None
    elif is_saved_dataset(found.path):
        loaded = load_saved(found.path)
        if isinstance(loaded, datasets.Dataset):
            train = loaded
        else:
            train = loaded[train_split] if train_split in loaded else next(iter(loaded.values()))
            eval_rows = len(loaded[eval_split]) if eval_split in loaded else None
    elif found.path.is_dir():
        train, _ = _load_file(_split_file(found.path, train_split), train_split)
        eval_rows = len(_load_file(_split_file(found.path, eval_split), eval_split)[0])
    elif found.path.suffix.lstrip(".") in FORMATS:
        train, _ = _load_file(found.path, "train")
    else:
        raise DataError(
            f"{source}: unsupported file type '{found.path.suffix}'. Allowed: "
            f"{', '.join('.' + e for e in FORMATS)}, a folder of split files, or a save_to_disk folder."
        )
    columns = list(train.column_names)
    return Table(
        Path(found.value).name if found.kind == "local" else source,
        columns,
        {c: list(train[c]) for c in columns},
        eval_rows,
    )


def _kind(values: list[Any]) -> str:
    """'str', 'int', 'float', 'list', 'bool' or 'mixed', over the non-null values."""
    kinds = {type(v).__name__ for v in values if v is not None}
    if kinds == {"float"} and all(float(v).is_integer() for v in values if v is not None):
        return "int"  # a csv int column with a blank reads as floats
    return kinds.pop() if len(kinds) == 1 else "mixed" if kinds else "empty"


def mean_chars(values: list[Any]) -> float:
    texts = [v for v in values if isinstance(v, str)]
    return sum(map(len, texts)) / max(1, len(texts))


def _label_column(table: Table) -> tuple[str | None, str]:
    kinds = {c: _kind(table.values[c]) for c in table.columns}
    named = [c for c in table.columns if c.lower() in LABEL_NAMES and kinds[c] != "mixed"]
    if named:
        return named[0], f"named like a label ({', '.join(LABEL_NAMES[:5])}, ...)"
    few = [
        (len({str(v) for v in table.values[c]}), c)
        for c in table.columns
        if kinds[c] in ("str", "int", "bool")
        and len({str(v) for v in table.values[c]}) <= min(MAX_CLASSES, len(table.values[c]) // 2)
    ]
    if few:
        count, column = min(few)
        return column, f"the column with the fewest distinct values ({count})"
    return None, ""


def _text_columns(table: Table, label: str | None) -> tuple[list[str], str]:
    texts = [c for c in table.columns if c != label and _kind(table.values[c]) == "str"]
    if not texts:
        return [], ""
    by_length = sorted(texts, key=lambda c: -mean_chars(table.values[c]))
    lower = {c.lower(): c for c in texts}
    for a, b in PAIRS:
        if a in lower and b in lower:
            return [lower[a], lower[b]], f"a sentence pair ({a}, {b})"
    longest = by_length[0]
    others = f"; other text columns: {', '.join(by_length[1:])}" if by_length[1:] else ""
    return [
        longest
    ], f"the longest text (mean {mean_chars(table.values[longest]):.0f} chars){others}"


def propose(table: Table) -> Proposal:
    """Text column(s), label column, label names and task type; every problem found, at once."""
    out = Proposal()
    label, why = _label_column(table)
    out.text_columns, text_why = _text_columns(table, label)
    if out.text_columns:
        out.why["text_columns"] = text_why
    else:
        out.problems.append(
            f"{table.name}: no column of text (columns: {', '.join(table.columns)}); every row "
            "needs a string column to classify."
        )
    if label is None:
        out.problems.append(
            f"{table.name}: no label column found (columns: {', '.join(table.columns)}): none is "
            f"named {'/'.join(LABEL_NAMES[:5])} or has few distinct values. Pass --label COLUMN."
        )
        return out
    out.label_column, out.why["label_column"] = label, why
    _label_names(table, label, out)
    return out


def _label_names(table: Table, label: str, out: Proposal) -> None:
    values = table.values[label]
    empty = [i for i, v in enumerate(values) if v is None or v == ""]
    if empty:
        rows = ", ".join(str(i + 1) for i in empty[:5])
        out.problems.append(
            f"{table.name}: {len(empty)} rows have no label in '{label}' (rows {rows}"
            f"{', ...' if len(empty) > 5 else ''}); fill or drop them."
        )
    present = [v for v in values if v is not None and v != ""]
    kind = _kind(present)
    if kind == "list":
        out.task_type = "multi_label"
        out.labels = sorted({str(x) for v in present for x in v})
        out.why["type"] = f"'{label}' holds lists: several labels per row"
    elif kind == "float":
        out.task_type, out.labels = "regression", [label]
        out.why["type"] = f"'{label}' holds non-integer numbers: a score to predict"
    elif kind == "int":
        top = int(max(present))
        out.labels = [str(i) for i in range(top + 1)]
        out.why["labels"] = f"indices 0..{top} in '{label}'; rename them in task.labels if you like"
    elif kind == "str":
        out.labels = sorted(set(present))
        out.why["labels"] = f"the distinct values of '{label}', sorted"
    else:
        out.problems.append(
            f"{table.name}: column '{label}' mixes kinds of values ({_kind(values)}); a label is "
            "a name, an index, a number (regression) or a list (multi_label)."
        )
        return
    if out.task_type == "single_label":
        out.why.setdefault("type", f"one of {len(out.labels)} labels per row")
        if len(set(map(str, present))) < 2:
            out.problems.append(
                f"{table.name}: every row of '{label}' is {present[0]!r} if any; a classifier "
                "needs at least two labels."
            )


def recipe_problems(recipe, table: Table | None = None) -> list[str]:
    """Every mismatch between `recipe`'s task section and its data, each with the fix; [] for
    generated data and a hub dataset not in the local cache (those are checked when a run loads
    them)."""
    t, d = recipe.task, recipe.data
    if d.source.startswith("synthetic:") or dataset_source(d.source, d.subset).kind == "hub":
        return []
    table = table or read_table(d.source, d.subset, d.train_split, d.eval_split)
    found, where = ", ".join(table.columns), table.name
    seen = _ProposalCache(table)
    problems = []
    missing = [c for c in t.text_columns if c not in table.columns]
    if missing:
        fix = seen.get().text_columns or [c for c in table.columns if c != t.label_column][:1]
        problems.append(
            f"task.text_columns: no column {', '.join(repr(c) for c in missing)} in {where} "
            f"(columns: {found}); set --set task.text_columns=[{','.join(fix)}]"
        )
    if t.label_column not in table.columns:
        fix = seen.get().label_column or "COLUMN"
        problems.append(
            f"task.label_column: no column '{t.label_column}' in {where} (columns: {found}); "
            f"set --set task.label_column={fix}"
        )
    else:
        problems += _label_problems(recipe, table, seen)
    return problems


class _ProposalCache:
    def __init__(self, table: Table) -> None:
        self.table, self.proposal = table, None

    def get(self) -> Proposal:
        self.proposal = self.proposal or propose(self.table)
        return self.proposal


def _label_problems(recipe, table: Table, seen: _ProposalCache) -> list[str]:
    t = recipe.task
    values = [v for v in table.values[t.label_column] if v is not None and v != ""]
    kind, where = _kind(values), table.name
    expected = {"list": "multi_label", "float": "regression"}.get(kind, "single_label")
    if t.type != "token_classification" and expected != t.type and kind != "mixed":
        return [
            f"task.type: '{t.label_column}' in {where} holds {kind} values, which make a "
            f"{expected} task, not {t.type}; set --set task.type={expected}"
        ]
    if t.type != "single_label":
        return []
    if kind == "str":
        unknown = sorted(set(values) - set(t.labels))
    elif kind == "int":
        unknown = sorted({int(v) for v in values if not 0 <= int(v) < len(t.labels)})
    else:
        unknown = []
    if not unknown:
        return []
    fix = seen.get().labels if seen.get().label_column == t.label_column else []
    shown = ", ".join(repr(v) for v in unknown[:10])
    return [
        f"task.labels: {t.labels} does not cover the values {shown} of '{t.label_column}' in "
        f"{where}; set --set task.labels=[{','.join(fix or map(str, unknown))}]"
    ]


def eval_rows(table: Table, eval_fraction: float) -> int:
    """Rows of the eval split: the source's own, or the share held out of one file."""
    if table.eval_rows is not None:
        return table.eval_rows
    return math.ceil(len(next(iter(table.values.values()), [])) * eval_fraction)
