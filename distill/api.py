"""Library entry points: `distill(teacher, student, train_dataset, tokenizer, spec, args)` and
`teacher_logits(...)` for caching. Used by the pipeline's distill stage and directly by tests.
"""

from __future__ import annotations

import numpy as np
import torch

from distill.combined import CombinedLoss, LossSpec
from distill.trainer import DistillationTrainer, TeacherLogitsCollator


def use_eager_attention(model) -> None:
    """Attention matches need attention probabilities, which SDPA kernels do not return.

    Models on the AttentionInterface switch to eager; BERT-family classes of transformers 4.57 do
    not support switching, but their SDPA attention falls back to the eager path by itself when
    `output_attentions=True`, so for them there is nothing to do.
    """
    if getattr(model, "_supports_attention_backend", False):
        model.set_attn_implementation("eager")


def teacher_logits(
    teacher, dataset, tokenizer, batch_size: int = 128, device: str = "cpu"
) -> np.ndarray:
    """Teacher logits [rows, labels] for every row of a tokenized dataset, in row order."""
    from transformers import DataCollatorWithPadding

    collate = DataCollatorWithPadding(tokenizer)
    features = [
        c for c in ("input_ids", "attention_mask", "token_type_ids") if c in dataset.column_names
    ]
    rows = dataset.select_columns(features)
    lengths = np.array([len(x) for x in rows["input_ids"]])
    order = np.argsort(-lengths, kind="stable")
    out = np.zeros((len(rows), teacher.config.num_labels), dtype=np.float32)
    teacher.eval().to(device)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size].tolist()
            batch = {k: v.to(device) for k, v in collate([rows[i] for i in idx]).items()}
            out[idx] = teacher(**batch).logits.float().cpu().numpy()
    return out


def distill(
    teacher,
    student,
    train_dataset,
    tokenizer,
    spec: LossSpec,
    args,
    *,
    cached_logits: np.ndarray | None = None,
    resume_from_checkpoint: str | None = None,
    callbacks: list | None = None,
) -> DistillationTrainer:
    """Train `student` against `teacher` on `train_dataset` (tokenized, with `labels`).

    With `cached_logits` (and no intermediate match) the teacher's forward pass is skipped.
    Returns the trainer (its `.model` is the trained student, `.state` the history).
    """
    if spec.needs_attention:
        use_eager_attention(student)
        use_eager_attention(teacher)
    dataset = train_dataset
    if cached_logits is not None and not spec.needs_teacher_features:
        if len(cached_logits) != len(dataset):
            raise ValueError(
                f"cached teacher logits have {len(cached_logits)} rows, the dataset {len(dataset)}"
            )
        dataset = dataset.add_column("teacher_logits", cached_logits.tolist())
    loss = CombinedLoss(spec, student.config.hidden_size, teacher.config.hidden_size)
    trainer = DistillationTrainer(
        model=student,
        args=args,
        train_dataset=dataset,
        data_collator=TeacherLogitsCollator(tokenizer),
        processing_class=tokenizer,
        teacher=teacher,
        loss=loss,
        callbacks=callbacks,
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    return trainer
