"""Which checkpoint a training stage resumes from, and what its train loss was across a resume.

A checkpoint is used only when it is complete and readable: the Trainer writes
`trainer_state.json` after the weights, optimizer and RNG state, so its presence marks a finished
write, and every file is then read back (safetensors fully, torch archives by their zip CRCs,
JSON parsed) without unpickling anything. A damaged checkpoint (a disk error, a copy cut short) is
removed with a warning and the next older one is tried, so it never blocks the stage.
"""

from __future__ import annotations

import json
import logging
import shutil
import zipfile
from pathlib import Path

log = logging.getLogger("distillery")


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """`checkpoint-N` folders holding trainer_state.json, newest first."""
    if not output_dir.is_dir():
        return []
    found = []
    for path in output_dir.glob("checkpoint-*"):
        suffix = path.name.removeprefix("checkpoint-")
        if suffix.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(suffix), path))
    return [path for _, path in sorted(found, reverse=True)]


def unreadable(checkpoint: Path) -> str | None:
    """Why a checkpoint cannot be resumed from ('<file>: <reason>'), or None when it can."""
    from safetensors import safe_open

    for path in sorted(checkpoint.rglob("*")):
        if not path.is_file():
            continue
        try:
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as handle:
                    for key in handle.keys():  # noqa: SIM118 (safe_open has no __iter__)
                        handle.get_tensor(key)
            elif path.suffix in (".pt", ".pth", ".bin"):
                with zipfile.ZipFile(path) as archive:  # torch.save writes a zip archive
                    bad = archive.testzip()
                if bad:
                    return f"{path.name}: member {bad} fails its CRC"
            elif path.suffix == ".json":
                json.loads(path.read_text())
        except Exception as exc:  # any failure to read back means: do not resume from it
            return f"{path.name}: {exc.__class__.__name__}: {str(exc).splitlines()[0][:120]}"
    return None


def last_checkpoint(output_dir: Path) -> str | None:
    """The newest complete, readable `checkpoint-N` folder, or None (start from step 0).

    Not `transformers.trainer_utils.get_last_checkpoint`: it returns the newest folder even when a
    kill interrupted its writing, and a damaged one would then fail the stage on every rerun.
    """
    for path in complete_checkpoints(output_dir):
        problem = unreadable(path)
        if problem is None:
            return str(path)
        log.warning("checkpoint %s is damaged (%s); removed, trying an older one", path, problem)
        print(f"warning: checkpoint {path} is damaged ({problem}); removed", flush=True)
        shutil.rmtree(path, ignore_errors=True)
    return None


def loss_sum_before(resumed_from: str | None) -> float:
    """The loss summed over the steps a checkpoint covers, from its logged losses (each the mean
    over its logging interval; the steps after the last log at the last logged mean). Read it
    before training resumes: the Trainer rotates old checkpoints away as it saves new ones."""
    if not resumed_from:
        return 0.0
    state = json.loads((Path(resumed_from) / "trainer_state.json").read_text())
    resume_step = int(state.get("global_step", 0))
    total, last_step, last_loss = 0.0, 0, None
    for entry in state.get("log_history", []):
        if "loss" in entry and "step" in entry and entry["step"] <= resume_step:
            total += float(entry["loss"]) * (entry["step"] - last_step)
            last_step, last_loss = entry["step"], float(entry["loss"])
    if last_loss is not None:
        total += last_loss * (resume_step - last_step)
    return total


def train_loss_across_resume(training_loss: float, global_step: int, before: float) -> float:
    """The mean loss over every step of the run, resumed or not.

    After a resume the Trainer's `training_loss` divides the loss summed over this session's steps
    by all steps (`global_step`), so it is too small by the steps before the resume; `before` is
    their sum (`loss_sum_before`, 0.0 without a resume).
    """
    if not global_step:
        return training_loss
    return (before + training_loss * global_step) / global_step
