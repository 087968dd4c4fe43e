"""Right-padded batches of tokenized rows: the one padding rule of every inference path here.

Written by hand rather than with `tokenizer.pad` / `DataCollatorWithPadding`: those follow
`tokenizer.padding_side`, and the fused Attention of an ORT O2+ graph reads the attention mask as
per-row lengths, which is exact for right padding only. The true attention mask is kept (a row
without one gets ones over its tokens; a missing token_type_ids is zeros).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
PAD_VALUES = {"attention_mask": 0, "token_type_ids": 0}  # input_ids pad with pad_token_id


def pad_rows(
    rows: Sequence[Mapping[str, Any]], pad_token_id: int, names: Sequence[str] = MODEL_INPUTS
) -> dict[str, np.ndarray]:
    """int64 `[len(rows), longest]` arrays for each input in `names`, right-padded."""
    if pad_token_id is None:
        raise ValueError("the tokenizer has no pad_token_id; set tokenizer.pad_token first.")
    ids = [np.asarray(row["input_ids"], dtype=np.int64).reshape(-1) for row in rows]
    width = max(len(x) for x in ids)
    batch = {}
    for name in names:
        out = np.full((len(rows), width), PAD_VALUES.get(name, pad_token_id), dtype=np.int64)
        for r, (row, row_ids) in enumerate(zip(rows, ids, strict=True)):
            if name == "input_ids":
                values = row_ids
            elif row.get(name) is not None:
                values = np.asarray(row[name], dtype=np.int64).reshape(-1)
            elif name == "attention_mask":
                values = np.ones_like(row_ids)
            elif name == "token_type_ids":
                values = np.zeros_like(row_ids)
            else:
                raise ValueError(
                    f"row has no {name!r}, which the model needs (row keys: {sorted(row)}); "
                    "tokenize with the model's tokenizer"
                )
            out[r, : len(values)] = values
        batch[name] = out
    return batch


def token_columns(dataset) -> list[str]:
    """The model-input columns a tokenized dataset holds, in MODEL_INPUTS order."""
    names = [c for c in MODEL_INPUTS if c in dataset.column_names]
    if "input_ids" not in names:
        raise ValueError(
            f"expected a tokenized dataset with an input_ids column; got {dataset.column_names}"
        )
    return names


def padded_batches(
    dataset, pad_token_id: int, batch_size: int, order: Sequence[int] | None = None
) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
    """(row indices, padded batch) over a tokenized dataset, `batch_size` rows at a time.

    `order` None takes consecutive rows; `longest_first(lengths)` batches similar lengths
    together (less padding, same logits). Each batch holds input_ids and attention_mask, and
    token_type_ids when the dataset has them.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
    names = token_columns(dataset)
    padded = [n for n in MODEL_INPUTS if n in names or n == "attention_mask"]
    columns = dataset.select_columns(names).with_format(None)  # plain lists, whatever the format
    order = list(range(len(columns))) if order is None else list(order)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        picked = columns[idx]
        rows = [{n: picked[n][i] for n in names} for i in range(len(idx))]
        yield idx, pad_rows(rows, pad_token_id, padded)


def longest_first(lengths: Sequence[int]) -> list[int]:
    """Row indices sorted by length, longest first (stable)."""
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])


def label_array(labels: Sequence) -> np.ndarray:
    """A split's `labels` as one array: as they are, or, when rows differ in length (token
    classification: a label per word piece), right-padded with -100 (ignored) to the longest,
    the width of the logits `padded_batches` give for the same rows."""
    rows = list(labels)
    if rows and isinstance(rows[0], (list, tuple)) and len({len(r) for r in rows}) > 1:
        out = np.full((len(rows), max(len(r) for r in rows)), -100, dtype=np.int64)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out
    return np.asarray(rows)


def concat_logits(chunks: list[np.ndarray]) -> np.ndarray:
    """Batches' logits in order, as float32; per-token logits `[batch, tokens, labels]` are
    zero-padded to the longest batch first."""
    if not chunks:
        raise ValueError("no rows: the dataset is empty")
    if chunks[0].ndim == 3:
        width = max(c.shape[1] for c in chunks)
        chunks = [np.pad(c, ((0, 0), (0, width - c.shape[1]), (0, 0))) for c in chunks]
    return np.concatenate(chunks).astype(np.float32)
