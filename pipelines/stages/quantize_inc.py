"""The quantize stage's Neural Compressor route: the PyTorch student quantized with PT2E and
autotuned against the task's score on the eval split (`quantize.inc`)."""

from __future__ import annotations

import numpy as np

from modelkit.batching import padded_batches
from modelkit.task_types import TASK_TYPES
from pipelines.core.context import StageContext


def _torch_batches(dataset, pad_token_id: int, batch_size: int):
    import torch

    return [
        {k: torch.from_numpy(v) for k, v in b.items()}
        for _, b in padded_batches(dataset, pad_token_id, batch_size)
    ]


def run_inc(
    ctx: StageContext, model, tokenizer, eval_set, labels, calibration
) -> tuple[dict, np.ndarray]:
    """Neural Compressor's PT2E int8 of the PyTorch student, autotuned on the eval score;
    (result, the chosen model's eval logits). `calibration`: tokenized calibration rows."""
    import torch

    from quantize.inc import inc_quantize, load_inc_model

    q = ctx.recipe.quantize
    calib = _torch_batches(calibration, tokenizer.pad_token_id, 16)
    eval_batches = _torch_batches(eval_set, tokenizer.pad_token_id, 64)

    def logits_of(candidate) -> np.ndarray:
        with torch.inference_mode():
            return np.concatenate([candidate(**b).float().numpy() for b in eval_batches])

    def accuracy(candidate) -> float:
        return TASK_TYPES[ctx.recipe.task.type].score(logits_of(candidate), labels)

    out = ctx.out / "student-int8-inc"
    result = inc_quantize(
        model,
        calib,
        accuracy,
        out_dir=out,
        tolerable_loss=q.inc.tolerable_loss,
        configs=q.inc.configs,
    )
    tokenizer.save_pretrained(out)
    return result, logits_of(load_inc_model(out))
