"""Which checkpoint a training stage resumes from."""

from __future__ import annotations

from pathlib import Path


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
