"""Settings shared by the training stages: device, precision, the teacher's dtype, and the
`TrainingArguments` built from a recipe (with the batch facts every manifest records)."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from pipelines.core.config import Recipe, TrainingKnobs
from pipelines.core.errors import DistilleryError

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


def _bf16_supported() -> bool:
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_precision(recipe: Recipe, device: str) -> str:
    """fp32 | bf16 | fp16: the Trainer's autocast dtype (`TrainingArguments.bf16` / `.fp16`).

    auto: bf16 on a GPU that has it (Ampere and later), fp16 on older GPUs (the Trainer then
    scales the loss with a GradScaler, which bf16 does not need), fp32 on the CPU.
    """
    precision = recipe.train.precision
    if precision == "auto":
        if device != "cuda":
            return "fp32"
        return "bf16" if _bf16_supported() else "fp16"
    if precision in ("bf16", "fp16") and device != "cuda":
        raise DistilleryError(
            f"train.precision is '{precision}' but training runs on the CPU; set train.precision: "
            "fp32 (or auto)."
        )
    if precision == "bf16" and not _bf16_supported():
        raise DistilleryError(
            "train.precision is 'bf16' but this GPU has no bf16 support "
            "(torch.cuda.is_bf16_supported() is False; it needs compute capability 8.0+); set "
            "train.precision: fp16 (or auto)."
        )
    return precision


def resolve_teacher_dtype(recipe: Recipe, device: str) -> str:
    """fp32 | bf16 | fp16: the dtype the distill stage casts the frozen teacher to.

    A half-precision teacher halves its memory and its forward time on a GPU; its logits and
    features are cast back to fp32 before the loss. auto follows the training precision (bf16 or
    fp16 on CUDA, fp32 on the CPU). Half precision on the CPU is refused: CPU half kernels are
    slower than fp32 on most machines, so it would cost time to save memory nobody is short of.
    """
    wanted = recipe.distill.teacher_dtype
    if wanted == "auto":
        return resolve_precision(recipe, device)
    if wanted in ("bf16", "fp16") and device != "cuda":
        raise DistilleryError(
            f"distill.teacher_dtype is '{wanted}' but training runs on the CPU, where half "
            "precision is slower than fp32 on most machines; set distill.teacher_dtype: fp32 "
            "(or auto)."
        )
    if wanted == "bf16" and not _bf16_supported():
        raise DistilleryError(
            "distill.teacher_dtype is 'bf16' but this GPU has no bf16 support; set "
            "distill.teacher_dtype: fp16 (or auto)."
        )
    return wanted


def check_training_settings(recipe: Recipe, stages: list[str]) -> str:
    """Device, precision and teacher dtype of the planned training stages; errors before any work."""
    device = resolve_device(recipe)  # cuda asked without CUDA
    resolve_precision(recipe, device)
    if "distill" in stages:
        resolve_teacher_dtype(recipe, device)
    return device


# How the global batch and the learning rate relate under DDP, recorded in each manifest.
LR_POLICY = (
    "none: the recipe's learning_rate is used as given for the global batch "
    "(per-device batch_size x world_size x gradient_accumulation_steps); to keep a single-process "
    "run's optimisation on N processes, divide batch_size by N"
)


def batch_info(args) -> dict:
    """The batch and learning-rate facts of a run: `extra.training` in the stage manifest."""
    world = max(1, int(args.world_size))
    accumulation = int(args.gradient_accumulation_steps)
    return {
        "world_size": world,
        "per_device_batch_size": int(args.per_device_train_batch_size),
        "gradient_accumulation_steps": accumulation,
        "global_batch_size": int(args.per_device_train_batch_size) * world * accumulation,
        "learning_rate": float(args.learning_rate),
        "lr_scaling": LR_POLICY,
        "ddp_backend": args.ddp_backend if world > 1 else None,
        "precision": "bf16" if args.bf16 else "fp16" if args.fp16 else "fp32",
    }


# TrainingKnobs field → its TrainingArguments name; a knob not listed has the same name there, so
# a knob added to TrainingKnobs under the Trainer's own name needs no edit here.
TRAINER_NAMES = {
    "epochs": "num_train_epochs",
    "batch_size": "per_device_train_batch_size",
    "eval_batch_size": "per_device_eval_batch_size",
}


def training_arguments(
    recipe: Recipe, output_dir: Path, knobs: TrainingKnobs, *, train_rows: int, **changes: Any
):
    """The HF `TrainingArguments` of every training run (teacher, distill, multi-task, QAT): the
    stage's section (`recipe.teacher`, `recipe.distill`) whole, with `changes` to its knobs for a
    phase that differs (a multi-task phase's epochs, the QAT phase's rate and no warm-up)."""
    from transformers import TrainingArguments

    from pipelines.core.distributed import backend_for, world

    values = {name: getattr(knobs, name) for name in TrainingKnobs.model_fields}
    unknown = set(changes) - set(values)
    if unknown:  # a caller's bug, not the recipe's
        raise TypeError(f"training_arguments: {sorted(unknown)} are not TrainingKnobs fields")
    values.update(changes)
    device = resolve_device(recipe)
    precision = resolve_precision(recipe, device)
    check_trackers(recipe.train.report_to)
    steps_per_epoch = max(1, math.ceil(train_rows / (values["batch_size"] * world().world_size)))
    save_steps = recipe.train.save_steps or max(10, steps_per_epoch // 10)
    return TrainingArguments(
        **{TRAINER_NAMES.get(name, name): value for name, value in values.items()},
        output_dir=str(output_dir),
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
        logging_dir=str(tracking_dir(output_dir)),
        use_cpu=device == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        group_by_length=recipe.train.group_by_length,
        dataloader_num_workers=recipe.train.dataloader_num_workers,
        remove_unused_columns=False,
        disable_tqdm=False,
        # DDP (torchrun / accelerate launch): gloo between CPU processes, NCCL between GPUs; for
        # one process no backend (accelerate would look for a process group). Every parameter
        # of a ...ForSequenceClassification takes part in each step (the distillation
        # projections live outside the wrapped model and DistillationTrainer averages them), so
        # by default DDP does not search for unused ones (train.ddp_find_unused_parameters).
        ddp_backend=backend_for(device) if world().distributed else None,
        ddp_find_unused_parameters=recipe.train.ddp_find_unused_parameters,
        optim=recipe.train.optim,
    )


# train.report_to value → the module the Trainer's callback for it imports, and its extra.
TRACKERS = {"tensorboard": ("tensorboard", "distillery[tracking]"), "mlflow": ("mlflow", "mlflow")}


def check_trackers(report_to: list[str]) -> None:
    """A tracker whose package is missing fails here, naming what to install, not mid-training."""
    import importlib.util

    for name in report_to:
        if name in ("none", "all"):
            continue
        module, package = TRACKERS.get(name, (None, None))
        if module is None:
            continue  # another integration of transformers: it checks for itself
        if importlib.util.find_spec(module) is None:
            raise DistilleryError(
                f"train.report_to: {name!r} needs the {module} package; pip install {package!r} "
                "(or remove it from train.report_to)."
            )


def tracking_dir(output_dir: Path) -> Path:
    """Where trackers write (TensorBoard event files): `<stage>/tensorboard/<sub-run>`, beside the
    checkpoints rather than in them, since a finished stage deletes its checkpoints."""
    parts = Path(output_dir).parts
    if "checkpoints" not in parts:
        return Path(output_dir) / "tensorboard"
    at = len(parts) - 1 - parts[::-1].index("checkpoints")
    return Path(*parts[:at], "tensorboard", *parts[at + 1 :])
