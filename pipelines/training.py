"""Settings shared by the training stages: device, precision and `TrainingArguments`."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from pipelines.config import Recipe
from pipelines.errors import DistilleryError

log = logging.getLogger("distillery")


def resolve_device(recipe: Recipe) -> str:
    """'cuda' or 'cpu'; asking for cuda without one is an error before any work starts."""
    import torch

    wanted = recipe.train.device
    if wanted == "cuda" and not torch.cuda.is_available():
        raise DistilleryError(
            "train.device is 'cuda' but no CUDA device is available (torch.cuda.is_available() is "
            "False). Set train.device: cpu (or auto), or install a CUDA build of torch."
        )
    return "cuda" if wanted in ("auto", "cuda") and torch.cuda.is_available() else "cpu"


def resolve_precision(recipe: Recipe, device: str) -> str:
    precision = recipe.train.precision
    if precision == "auto":
        return "bf16" if device == "cuda" else "fp32"
    if precision in ("bf16", "fp16") and device != "cuda":
        raise DistilleryError(
            f"train.precision is '{precision}' but training runs on the CPU; set train.precision: "
            "fp32 (or auto)."
        )
    return precision


def training_arguments(
    recipe: Recipe,
    output_dir: Path,
    *,
    epochs: float,
    learning_rate: float,
    batch_size: int,
    eval_batch_size: int,
    warmup_ratio: float,
    weight_decay: float,
    train_rows: int,
):
    from transformers import TrainingArguments

    device = resolve_device(recipe)
    precision = resolve_precision(recipe, device)
    steps_per_epoch = max(1, math.ceil(train_rows / batch_size))
    save_steps = recipe.train.save_steps or max(10, steps_per_epoch // 10)
    return TrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=epochs,
        learning_rate=learning_rate,
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=eval_batch_size,
        warmup_ratio=warmup_ratio,
        weight_decay=weight_decay,
        lr_scheduler_type="linear",
        seed=recipe.seed,
        data_seed=recipe.seed,
        eval_strategy="no",
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=recipe.train.save_total_limit,
        save_safetensors=True,
        logging_steps=recipe.train.logging_steps,
        logging_first_step=True,
        report_to=recipe.train.report_to or "none",
        use_cpu=device == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        group_by_length=recipe.train.group_by_length,
        dataloader_num_workers=recipe.train.dataloader_num_workers,
        remove_unused_columns=False,
        disable_tqdm=False,
    )


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete `checkpoint-N` folder, or None (start from step 0).

    Not `transformers.trainer_utils.get_last_checkpoint`: it returns the newest folder even when a
    kill interrupted its writing. The Trainer writes `trainer_state.json` after the weights,
    optimizer and RNG state, so its presence marks a complete checkpoint.
    """
    if not output_dir.is_dir():
        return None
    steps = []
    for path in output_dir.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            steps.append((int(suffix), path))
    return str(max(steps)[1]) if steps else None


def logging_callback():
    """A Trainer callback copying every logged dict (each loss term, lr) to the stage's log.txt."""
    from transformers import TrainerCallback

    class LogCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                log.info("step %d: %s", state.global_step, logs)

    return LogCallback()


def step_timer(skip: int):
    """A Trainer callback timing steady-state steps: from the end of step `skip` to the last one.

    Setup (dataloader, length grouping over the whole split, first-step allocations) is excluded,
    so two runs of the same length compare their per-step cost only.
    """
    import time

    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        started: float | None = None
        ended: float | None = None
        last_step = 0

        def on_step_end(self, args, state, control, **kwargs):
            now = time.perf_counter()
            if state.global_step == skip:
                self.started = now
            self.ended, self.last_step = now, state.global_step

        @property
        def seconds_per_step(self) -> float:
            if self.started is None or self.last_step <= skip:
                raise ValueError(f"fewer than {skip + 1} steps ran; nothing to time")
            return (self.ended - self.started) / (self.last_step - skip)

    return StepTimer()
