"""The metrics of a PyTorch model on a tokenized split, by its task type (`modelkit.task_types`).

Written by hand because `evaluate` downloads its metric scripts from the Hub at run time, and the
metrics here are a few lines of numpy. Batches are formed in length order (less padding, same
result) and logits are returned in the dataset's original order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelkit.batching import label_array, longest_first, padded_batches
from modelkit.task_types import TASK_TYPES, task_type_of_model
from pipelines.core.errors import DistilleryError


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Single-label accuracy (and F1 for two labels); other task types: `modelkit.task_types`."""
    return TASK_TYPES["single_label"].metrics(logits, labels)


def predict_logits(
    model,
    dataset,
    tokenizer,
    batch_size: int = 128,
    device: str = "cpu",
    desc: str = "evaluate",
    progress: bool = True,
) -> np.ndarray:
    """Logits for every row of a tokenized dataset (input_ids, attention_mask, ...); with
    `progress`, a progress step named `desc` (pipelines.core.progress)."""
    from contextlib import nullcontext

    import torch

    from pipelines.core.progress import step

    lengths = [len(ids) for ids in dataset["input_ids"]]
    out = None  # its width is the output's: a task head may have other labels than the config
    # token classification: [rows, longest, labels], each row's tokens from 0, zeros after
    model.eval().to(device)
    batches = padded_batches(dataset, tokenizer.pad_token_id, batch_size, longest_first(lengths))
    shown = step(desc, len(dataset), "rows") if progress else nullcontext()
    with torch.inference_mode(), shown as counter:
        for idx, batch in batches:
            inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            logits = model(**inputs).logits.float().cpu().numpy()
            if out is None:
                tokens = (max(lengths),) if logits.ndim == 3 else ()
                out = np.zeros((len(dataset), *tokens, logits.shape[-1]), dtype=np.float32)
            if logits.ndim == 3:
                out[idx, : logits.shape[1]] = logits
            else:
                out[idx] = logits
            if counter is not None:
                counter.advance(len(idx))
    return out if out is not None else np.zeros((0, model.config.num_labels), dtype=np.float32)


def evaluate_model(
    model, dataset, tokenizer, batch_size: int = 128, device: str = "cpu", desc: str = "evaluate"
) -> tuple[dict[str, Any], np.ndarray]:
    logits = predict_logits(model, dataset, tokenizer, batch_size, device, desc)
    bad = int((~np.isfinite(logits)).any(axis=tuple(range(1, logits.ndim))).sum())
    if bad:
        raise DistilleryError(
            f"{desc}: the model's logits are NaN or infinite on {bad} of {len(logits)} eval rows, "
            "so its weights are broken (training diverged). Lower the learning rate and rerun; "
            "nothing was saved."
        )
    labels = label_array(dataset["labels"])
    kind = task_type_of_model(model)
    names = None
    if kind.token_level:  # entity spans read the tag names
        names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    metrics = kind.metrics(logits, labels, names)
    metrics["eval_rows"] = len(labels)
    return metrics, logits
