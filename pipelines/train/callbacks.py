"""Trainer callbacks the training stages add: loss terms to log.txt, one RNG across DDP ranks at
each epoch's start, a steady-state step timer, training seconds kept in each checkpoint, and
the training's progress line in place of the Trainer's own bar."""

from __future__ import annotations

import logging

log = logging.getLogger("distillery")


def logging_callback():
    """A Trainer callback copying every logged dict (each loss term, lr) to the stage's log.txt."""
    from transformers import TrainerCallback

    class LogCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                log.info("step %d: %s", state.global_step, logs)

    return LogCallback()


def sampler_rng_sync():
    """A Trainer callback: under DDP every rank starts each epoch with rank 0's CPU RNG state.

    The Trainer's length-grouped sampler (`group_by_length`) shuffles with the global CPU RNG and
    accelerate shards its batches by position, so every rank must draw the same permutation, or
    the shards overlap and some rows are skipped. The ranks start from the same seed, but CPU
    dropout draws one number per element and each rank pads its batches to its own length, so
    from the second epoch on their RNG states differ (seen on 2 gloo processes); accelerate
    synchronises sampler generators only, not the global RNG. Syncing at an epoch's start puts the
    ranks back where they began: same state, different data.
    """
    from transformers import TrainerCallback

    class SamplerRNGSync(TrainerCallback):
        def on_epoch_begin(self, args, state, control, **kwargs):
            if args.world_size > 1:
                import torch

                from pipelines.core.distributed import share

                torch.random.set_rng_state(share(torch.random.get_rng_state()))

    return SamplerRNGSync()


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


SECONDS_FILE = "distillery_train_seconds.json"


def seconds_before(resumed_from: str | None) -> float:
    """Training seconds a checkpoint already covers (0.0 without one, or one saved before this
    file existed)."""
    import json
    from pathlib import Path

    if not resumed_from:
        return 0.0
    path = Path(resumed_from) / SECONDS_FILE
    try:
        return float(json.loads(path.read_text())["train_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


def seconds_in_checkpoints(offset: float):
    """A Trainer callback writing the training seconds so far (`offset`, those before a resume,
    plus this session's) into every checkpoint, so a resumed run reports its whole training time.
    The Trainer's own `train_runtime` covers the last session only."""
    import json
    import os
    import time

    from transformers import TrainerCallback

    class SecondsInCheckpoints(TrainerCallback):
        started = time.time()

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.time()

        def on_save(self, args, state, control, **kwargs):
            if not state.is_world_process_zero:
                return
            folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
            if os.path.isdir(folder):
                seconds = offset + time.time() - self.started
                with open(os.path.join(folder, SECONDS_FILE), "w") as handle:
                    json.dump({"train_seconds": round(seconds, 3)}, handle)

    return SecondsInCheckpoints()


def progress_callback(name: str):
    """A Trainer callback showing training as one progress step (pipelines.core.progress): the
    global step of `max_steps` with an ETA, the last logged loss as its note. `show_progress`
    puts it in place of the Trainer's own tqdm bar and printed log dicts; call its `stop()` when
    training raised (no `on_train_end` comes then), so the step's log line says where it stopped."""
    from transformers import TrainerCallback

    from pipelines.core import progress

    class TrainProgress(TrainerCallback):
        step: progress.Step | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.step = progress.Step(name, state.max_steps, "steps", initial=state.global_step)

        def on_step_end(self, args, state, control, **kwargs):
            if self.step is not None:
                self.step.advance_to(state.global_step)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.step is not None and logs and "loss" in logs:
                self.step.note(f"loss {logs['loss']:.4f}")

        def on_train_end(self, args, state, control, **kwargs):
            self.stop(failed=False)

        def stop(self, failed: bool = True) -> None:
            if self.step is not None:
                self.step.close(failed=failed)
                self.step = None

    return TrainProgress()


def show_progress(trainer, callback) -> None:
    """Replace the Trainer's tqdm bar (or, with `disable_tqdm`, its printed log dicts) with
    `callback` (a `progress_callback`)."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for default in (ProgressCallback, PrinterCallback):
        trainer.remove_callback(default)
    trainer.add_callback(callback)
