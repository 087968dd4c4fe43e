"""A `datasets` `save_to_disk` folder as a data source: arrow files and JSON, nothing unpickled.

A saved DatasetDict gives its splits by name; a saved Dataset (or a dict with only the train
split) is split as a single file is, by `data.eval_fraction`.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.core.errors import DataError


def is_saved_dataset(path: Path) -> bool:
    """A `save_to_disk` folder (a Dataset or a DatasetDict)."""
    return path.is_dir() and any((path / n).is_file() for n in ("dataset_dict.json", "state.json"))


def load_saved(path: Path):
    """A `save_to_disk` folder as datasets wrote it: a Dataset, or a DatasetDict of splits."""
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except Exception as exc:
        raise DataError(
            f"data.source {path}: cannot be read as a datasets save_to_disk folder "
            f"({exc.__class__.__name__}: {str(exc)[:200]}). Save it again with "
            "dataset.save_to_disk(folder), or export it with dataset.to_json('data.jsonl')."
        ) from None


def load_saved_splits(path: Path, recipe):
    """A saved DatasetDict gives its train and eval splits; a saved Dataset is split as a
    single file is (data.eval_fraction)."""
    d, loaded = recipe.data, load_saved(path)
    if hasattr(loaded, "column_names") and not isinstance(loaded.column_names, dict):
        parts = loaded.train_test_split(test_size=d.eval_fraction, seed=recipe.seed)
        return parts["train"], parts["test"], {}
    if d.train_split in loaded and d.eval_split not in loaded:  # one split saved: hold out rows
        parts = loaded[d.train_split].train_test_split(test_size=d.eval_fraction, seed=recipe.seed)
        return parts["train"], parts["test"], {}
    for split in (d.train_split, d.eval_split):
        if split not in loaded:
            raise DataError(
                f"data.source {path}: no split '{split}'; the saved dataset has {sorted(loaded)}. "
                "Set data.train_split / data.eval_split."
            )
    return loaded[d.train_split], loaded[d.eval_split], {}
