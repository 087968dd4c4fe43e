"""Accuracy (and F1 for two labels) of a PyTorch classifier on a tokenized split.

Written by hand because `evaluate` downloads its metric scripts from the Hub at run time, and the
metrics here are a few lines of numpy. Batches are formed in length order (less padding, same
result) and logits are returned in the dataset's original order.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    preds = logits.argmax(-1)
    metrics = {"accuracy": float((preds == labels).mean()) if len(labels) else 0.0}
    if logits.shape[-1] == 2:
        tp = float(((preds == 1) & (labels == 1)).sum())
        fp = float(((preds == 1) & (labels == 0)).sum())
        fn = float(((preds == 0) & (labels == 1)).sum())
        metrics["f1"] = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    return metrics


def length_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Row indices grouped into batches of similar length (longest first)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def predict_logits(
    model,
    dataset,
    tokenizer,
    batch_size: int = 128,
    device: str = "cpu",
    desc: str = "evaluate",
    progress: bool = True,
) -> np.ndarray:
    """Logits for every row of a tokenized dataset (input_ids, attention_mask, ...)."""
    import torch
    from tqdm.auto import tqdm
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer)
    features = [
        c for c in ("input_ids", "attention_mask", "token_type_ids") if c in dataset.column_names
    ]
    rows = dataset.select_columns(features)
    lengths = [len(ids) for ids in rows["input_ids"]]
    out = np.zeros((len(rows), model.config.num_labels), dtype=np.float32)
    model.eval().to(device)
    batches = length_batches(lengths, batch_size)
    with torch.inference_mode():
        for batch_idx in tqdm(batches, desc=desc, disable=not progress, leave=False):
            batch = collate([rows[i] for i in batch_idx])
            batch = {k: v.to(device) for k, v in batch.items()}
            out[batch_idx] = model(**batch).logits.float().cpu().numpy()
    return out


def evaluate_model(
    model, dataset, tokenizer, batch_size: int = 128, device: str = "cpu", desc: str = "evaluate"
) -> tuple[dict[str, Any], np.ndarray]:
    logits = predict_logits(model, dataset, tokenizer, batch_size, device, desc)
    labels = np.asarray(dataset["labels"])
    metrics = classification_metrics(logits, labels)
    metrics["eval_rows"] = len(labels)
    return metrics, logits
