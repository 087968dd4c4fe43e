"""Load, check, subsample and tokenize the task's data (hub, local files, or generated).

Every split comes out with the recipe's text column(s) and a `labels` column (an index; for
`task.type` multi_label a 0/1 list, for regression a float), checked row by row, so later stages
never see a label they cannot handle. Tokenization truncates to `data.max_length`, unpadded.
"""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from modelkit.label_forms import is_multi_hot
from pipelines.core.config import Recipe
from pipelines.core.errors import DataError
from pipelines.core.sources import Source, dataset_source
from pipelines.data.labels import Where, label_ids, require_classes, row_name, tag_ids, typed_labels
from pipelines.data.lines import first_bad_row, first_non_utf8, row_lines
from pipelines.data.saved import is_saved_dataset, load_saved_splits

FORMATS = {"jsonl": "json", "json": "json", "csv": "csv", "tsv": "csv", "parquet": "parquet"}


@dataclass
class TaskData:
    train: Any  # datasets.Dataset with text columns + `labels`
    eval: Any
    data_hash: str  # content hash of the source (files, hub fingerprint or generator params)
    source: Source


def _split_file(folder: Path, split: str) -> Path:
    candidates = [folder / f"{split}.{ext}" for ext in FORMATS]
    for path in candidates:
        if path.is_file():
            return path
    present = sorted(p.name for p in folder.iterdir() if p.is_file())
    raise DataError(
        f"data.source {folder}: no file for split '{split}'. Looked for "
        f"{', '.join(p.name for p in candidates)}; the folder holds: {', '.join(present) or 'nothing'}. "
        f"Rename a file or set data.train_split / data.eval_split to match."
    )


def _load_file(path: Path, split: str):
    """One split from one file, cached by the file's content.

    datasets keys its cache of a local file by path, size and modification time, so an edit that
    keeps both would serve the old rows; the cache folder here is named by the content's sha256.
    """
    import datasets

    ext = path.suffix.lstrip(".")
    kwargs: dict[str, Any] = {}
    if ext == "tsv":
        kwargs = {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    if path.stat().st_size == 0:
        raise DataError(
            f"split '{split}' ({path}) is empty: 0 rows. Fill it, or name another split in data.train_split / data.eval_split."
        )
    if ext != "parquet":  # text formats: arrow's readers pass invalid UTF-8 through to the rows
        try:
            path.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{path}: {first_non_utf8(path)}; save the file as UTF-8.") from None
    cache = Path(datasets.config.HF_DATASETS_CACHE) / "distillery" / _file_hash([path])[:24]
    try:
        dataset = datasets.load_dataset(
            FORMATS[ext], data_files={split: str(path)}, split=split, cache_dir=str(cache), **kwargs
        )
    except Exception as exc:
        found = first_bad_row(path, ext, split)  # the file and line, not the reader's wording
        raise DataError(
            found
            or f"{path}: cannot be read as {ext} ({exc.__class__.__name__}: "
            f"{(str(exc) or '-').splitlines()[0][:200]}). Check the file is complete and in the "
            "format its extension says."
        ) from None
    if ext not in ("csv", "tsv", "jsonl"):
        return dataset, None
    starts = row_lines(path, ext)  # a quoted newline makes a row span lines: name the first
    return dataset, lambda row: f"{path.name} line {starts[row] if row < len(starts) else '?'}"


def _file_hash(paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _local_files(source: Source, recipe: Recipe) -> list[Path]:
    """[train, eval] of a folder, [the file], or every file of a save_to_disk folder."""
    d = recipe.data
    if is_saved_dataset(source.path):
        return sorted(p for p in source.path.rglob("*") if p.is_file())
    if source.path.is_dir():
        return [_split_file(source.path, d.train_split), _split_file(source.path, d.eval_split)]
    if source.path.suffix.lstrip(".") not in FORMATS:
        raise DataError(
            f"data.source {source.path}: unsupported file type '{source.path.suffix}'. "
            f"Allowed: {', '.join('.' + e for e in FORMATS)}, or a folder of split files."
        )
    return [source.path]


def _load_local(source: Source, recipe: Recipe):
    """(train, eval, where): `where[split](row)` names a row's file and line for messages."""
    d = recipe.data
    if is_saved_dataset(source.path):
        return load_saved_splits(source.path, recipe)
    files = _local_files(source, recipe)
    if len(files) == 2:
        (train, where_t), (evaluation, where_e) = (
            _load_file(files[0], d.train_split),
            _load_file(files[1], d.eval_split),
        )
        return train, evaluation, {d.train_split: where_t, d.eval_split: where_e}
    whole, _ = _load_file(files[0], "train")
    parts = whole.train_test_split(test_size=d.eval_fraction, seed=recipe.seed)
    return parts["train"], parts["test"], {}


def source_fingerprint(recipe: Recipe) -> str:
    """Cheap content hash of the data source, for stage hashes (no dataset loading)."""
    source = dataset_source(recipe.data.source, recipe.data.subset)
    if source.kind == "local":
        return _file_hash(_local_files(source, recipe))
    if source.kind == "synthetic":
        key = [source.value, recipe.data.synthetic_rows, recipe.seed]
    else:  # hub: the id and config; the revision is whatever the cache/hub resolves
        key = [source.value, source.subset]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


def _load_hub(source: Source, recipe: Recipe):
    import datasets

    from pipelines.core.sources import preflight

    preflight([(source, "dataset")])
    d = recipe.data
    try:
        loaded = datasets.load_dataset(source.value, source.subset)
    except Exception as exc:
        raise DataError(f"data.source {source.value}: loading failed: {exc}") from None
    for split in (d.train_split, d.eval_split):
        if split not in loaded:
            raise DataError(
                f"data.source {source.value}: no split '{split}'; it has {sorted(loaded)}. "
                "Set data.train_split / data.eval_split."
            )
    return loaded[d.train_split], loaded[d.eval_split], {}


def _load_synthetic(source: Source, recipe: Recipe):
    import datasets

    from pipelines.data.synthetic import generate

    try:
        train = generate(source.value, recipe.data.synthetic_rows, recipe.seed)
        evaluation = generate(
            source.value, max(64, recipe.data.synthetic_rows // 5), recipe.seed + 1
        )
    except ValueError as exc:
        raise DataError(f"data.source synthetic:{source.value}: {exc}") from None
    return datasets.Dataset.from_list(train), datasets.Dataset.from_list(evaluation), {}


def check_columns(dataset, recipe: Recipe, split: str) -> None:
    found = dataset.column_names
    for column in [*recipe.task.text_columns, recipe.task.label_column]:
        if column not in found:
            key = "task.label_column" if column == recipe.task.label_column else "task.text_columns"
            raise DataError(
                f"split '{split}': column '{column}' ({key}) is missing; the columns found are: "
                f"{', '.join(found)}. Set {key} to one of them."
            )


def check_texts(dataset, columns: list[str], split: str, where: Where = None) -> None:
    """Every row holds a string in every text column (None or a number would reach the
    tokenizer as a traceback), naming the first row that does not."""
    for column in columns:
        for row, value in enumerate(dataset[column]):
            if not isinstance(value, str):
                shown = "nothing (null)" if value is None else f"{value!r} ({type(value).__name__})"
                raise DataError(
                    f"split '{split}', {row_name(row, where)}: text column '{column}' holds "
                    f"{shown}; every row needs a string there. Fix or drop that row."
                )


def check_words(dataset, column: str, split: str, where: Where = None) -> list[list[str]]:
    """token_classification: every row holds a non-empty list of strings (the words)."""
    rows = list(dataset[column])
    for row, value in enumerate(rows):
        if not (isinstance(value, list) and value and all(isinstance(w, str) for w in value)):
            raise DataError(
                f"split '{split}', {row_name(row, where)}: text column '{column}' holds "
                f"{str(value)[:80]!r}; task.type token_classification needs a non-empty list of "
                'words there (e.g. ["Alice", "lives", "in", "Paris"]). Fix or drop that row.'
            )
    return rows


def _finish(dataset, recipe: Recipe, split: str, limit: int | None, where: Where = None):
    check_columns(dataset, recipe, split)
    label_column, labels, kind = recipe.task.label_column, recipe.task.labels, recipe.task.type
    values = list(dataset[label_column])
    if kind == "token_classification":
        words = check_words(dataset, recipe.task.text_columns[0], split, where)
        encode = partial(tag_ids, words=words)
    else:
        check_texts(dataset, recipe.task.text_columns, split, where)
    if kind == "single_label":
        encode = label_ids
    elif kind != "token_classification":  # a 0/1 column or names/indices: decided once
        hot = kind == "multi_label" and is_multi_hot(values, labels)
        encode = partial(typed_labels, kind, multi_hot=hot)
    encoded = encode(values, labels, split, where)  # every row checked
    if kind == "token_classification":  # checked against each row's words: stored as checked
        words_column = recipe.task.text_columns[0]
        dataset = dataset.select_columns([words_column]).add_column("labels", encoded)
        return seeded_rows(dataset, limit, recipe.seed)

    def to_ids(batch):  # a map (not add_column) so datasets caches it with the source files
        return {"labels": encode(batch[label_column], labels, split)}

    keep = set(recipe.task.text_columns)
    drop = [c for c in dataset.column_names if c not in keep]
    dataset = dataset.map(to_ids, batched=True, remove_columns=drop, desc="labels")
    return seeded_rows(dataset, limit, recipe.seed)


def seeded_rows(dataset, limit: int | None, seed: int):
    """`limit` rows drawn by a seeded shuffle (all rows when `limit` is None or not smaller)."""
    if limit is None or limit >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(limit))


def load_task_data(recipe: Recipe) -> TaskData:
    """Both splits, checked, with integer `labels`, subsampled as the recipe says."""
    import datasets

    shown = datasets.is_progress_bar_enabled()  # off when the CLI hides library bars
    datasets.disable_progress_bars()
    source = dataset_source(recipe.data.source, recipe.data.subset)
    loader = {"local": _load_local, "hub": _load_hub, "synthetic": _load_synthetic}[source.kind]
    train, evaluation, where = loader(source, recipe)
    d = recipe.data
    train = _finish(train, recipe, d.train_split, d.max_train_samples, where.get(d.train_split))
    evaluation = _finish(
        evaluation, recipe, d.eval_split, d.max_eval_samples, where.get(d.eval_split)
    )
    if recipe.task.type == "single_label":
        require_classes(train, d.train_split, recipe.task.labels)
    if shown:  # as it was before the load
        datasets.enable_progress_bars()
    return TaskData(
        train=train, eval=evaluation, data_hash=source_fingerprint(recipe), source=source
    )


def require_rows(dataset, split: str, minimum: int, why: str) -> None:
    if len(dataset) < minimum:
        raise DataError(
            f"split '{split}' has {len(dataset)} rows, fewer than {minimum} ({why}). "
            "Use a larger split, lower the batch size, or raise data.max_*_samples."
        )


def tokenize(dataset, tokenizer, recipe: Recipe):
    """Truncate to `data.max_length`, unpadded (the collator pads); token tags: `tokenize_words`."""
    columns = recipe.task.text_columns
    if recipe.task.type == "token_classification":
        from pipelines.data.words import tokenize_words

        return tokenize_words(dataset, tokenizer, columns[0], recipe.data.max_length)

    def encode(batch):
        texts = [batch[c] for c in columns]
        return tokenizer(*texts, truncation=True, max_length=recipe.data.max_length)

    return dataset.map(encode, batched=True, remove_columns=list(columns), desc="tokenize")
