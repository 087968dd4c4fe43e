"""The quantize stage's `inc` method: the PyTorch student through Neural Compressor's PT2E int8,
autotuned against the task's score on the eval split (`quantize.inc`).

    record = quantize_job(job)            # job: quantize.methods.Job with the model and eval rows

torch and Neural Compressor are imported when a function runs, not with this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelkit.batching import padded_batches
from modelkit.task_types import TASK_TYPES
from quantize.methods import Skipped

TOKEN_HEADS = (
    "Neural Compressor's path here quantizes a …ForSequenceClassification PyTorch model; "
    "token classifiers are quantized by the ONNX methods"
)


def torch_batches(rows, pad_token_id: int, batch_size: int) -> list[dict[str, Any]]:
    """Tokenized rows as right-padded batches of torch tensors, in row order."""
    import torch

    return [
        {k: torch.from_numpy(v) for k, v in b.items()}
        for _, b in padded_batches(rows, pad_token_id, batch_size)
    ]


def model_logits(model, batches: list[dict[str, Any]]) -> np.ndarray:
    """The model's logits over `batches`, concatenated (float32 numpy)."""
    import torch

    with torch.inference_mode():
        return np.concatenate([model(**b).float().numpy() for b in batches])


def quantize_job(job) -> dict:
    """PT2E int8 of `job.model`, autotuned on the eval score over `quantize.inc.configs`; the
    tokenizer is saved beside it. Token classifiers are `Skipped` (see TOKEN_HEADS)."""
    if TASK_TYPES[job.task_type].token_level:
        raise Skipped(TOKEN_HEADS)
    # distill.token_students.MODEL_TYPE, spelled out: quantize does not import distill
    if (
        getattr(getattr(job.model, "config", None), "model_type", None)
        == "distillery_token_student"
    ):
        raise Skipped(
            "Neural Compressor's PT2E flow quantizes transformer layers; a static, cnn or bilstm "
            "student has none (use quantize.methods: [dynamic])"
        )
    from quantize.inc import inc_quantize

    s = job.settings.inc
    calibration = torch_batches(job.calibration(s.calibration_samples), job.pad_token_id, 16)
    eval_batches = torch_batches(job.eval_rows, job.pad_token_id, 64)
    score = TASK_TYPES[job.task_type].score
    result = inc_quantize(
        job.model,
        calibration,
        lambda candidate: score(model_logits(candidate, eval_batches), job.labels),
        out_dir=job.out,
        tolerable_loss=s.tolerable_loss,
        configs=s.configs,
    )
    job.tokenizer.save_pretrained(job.out)
    return result
