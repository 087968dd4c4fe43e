"""Library entry points: `distill(teacher, student, train_dataset, tokenizer, spec, args)` and
`teacher_logits(...)` for caching. Used by the pipeline's distill stage and directly by tests.

    trainer = distill(teacher, student, train_set, tokenizer, LossSpec(matches=["hidden_mse"],
                      layer_map=[(0, 1), (1, 3)]), TrainingArguments(...))
    trainer.model.student.save_pretrained("out")    # the student alone; projections stay behind
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from distill.combined import CombinedLoss, LossSpec, Schedule
from distill.heads import TaskHeads
from distill.multitask import TaskBatchSampler
from distill.trainer import DistillationModule, DistillationTrainer, TeacherLogitsCollator
from modelkit.batching import longest_first, padded_batches
from modelkit.task_types import TASK_TYPES


@dataclass
class MultiTask:
    """Several tasks on one encoder: the heads of student and teacher, λ per task, the batches."""

    student_heads: TaskHeads | None = None
    teacher_heads: TaskHeads | None = None
    weights: dict[str, Schedule] | None = None
    batches: TaskBatchSampler | None = None


def use_eager_attention(model) -> None:
    """Attention matches need attention probabilities, which SDPA kernels do not return.

    Models on the AttentionInterface switch to eager; BERT-family classes of transformers 4.57 do
    not support switching, but their SDPA attention falls back to the eager path by itself when
    `output_attentions=True`, so for them there is nothing to do.
    """
    if getattr(model, "_supports_attention_backend", False):
        model.set_attn_implementation("eager")


def teacher_logits(
    teacher,
    dataset,
    tokenizer,
    batch_size: int = 128,
    device: str = "cpu",
    on_batch: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Teacher logits [rows, labels] for every row of a tokenized dataset, in row order.
    `on_batch(rows)` is called after each batch (a progress line counts rows with it)."""
    lengths = [len(x) for x in dataset["input_ids"]]
    out = np.zeros((len(dataset), teacher.config.num_labels), dtype=np.float32)
    teacher.eval().to(device)
    with torch.inference_mode():
        for idx, batch in padded_batches(
            dataset, tokenizer.pad_token_id, batch_size, order=longest_first(lengths)
        ):
            inputs = {k: torch.from_numpy(v).to(device) for k, v in batch.items()}
            logits = teacher(**inputs).logits.float().cpu().numpy()
            if logits.shape[-1] != out.shape[-1]:  # another task's head (distill.heads)
                out = np.zeros((len(dataset), logits.shape[-1]), dtype=np.float32)
            out[idx] = logits
            if on_batch is not None:
                on_batch(len(idx))
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
    tasks: MultiTask | None = None,
    progress=None,
) -> DistillationTrainer:
    """Train `student` against `teacher` on `train_dataset` (tokenized, with `labels`).

    With `cached_logits` (and no intermediate match) the teacher's forward pass is skipped.
    With `tasks` (several tasks on one encoder) the dataset carries a `task` column (index into
    `tasks.student_heads.names`), each batch is one task's and its loss is weighted by its λ;
    `cached_logits` is then a list of per-row arrays (the tasks' label counts differ).
    `progress`: a TrainerCallback shown in place of the Trainer's own tqdm bar and printed logs.
    Returns the trainer: `.model` is the `DistillationModule` (`.model.student` the trained
    student, `.model.loss.projections` the training-only projections), `.state` the history.
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
        rows = (
            cached_logits.tolist()
            if isinstance(cached_logits, np.ndarray)
            else [np.asarray(r, dtype=np.float32).tolist() for r in cached_logits]
        )
        dataset = dataset.add_column("teacher_logits", rows)
    loss = CombinedLoss(spec, student.config.hidden_size, teacher.config.hidden_size)
    tasks = tasks or MultiTask()
    trainer = DistillationTrainer(
        model=DistillationModule(student, loss, tasks.student_heads, tasks.weights),
        args=args,
        train_dataset=dataset,
        data_collator=TeacherLogitsCollator(
            tokenizer, token_labels=TASK_TYPES[spec.task_type].token_level
        ),
        processing_class=tokenizer,
        teacher=teacher,
        teacher_heads=tasks.teacher_heads,
        task_batches=tasks.batches,
        callbacks=callbacks,
    )
    if progress is not None:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        for default in (ProgressCallback, PrinterCallback):
            trainer.remove_callback(default)
        trainer.add_callback(progress)
    try:
        trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    finally:
        trainer.remove_hooks()
    return trainer
