"""A training stage killed with SIGKILL resumes from its last complete checkpoint (issue #7 case 11)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, tiny_recipe, write_recipe

STEPS_PER_EPOCH = 50  # 800 generated rows, batch 16


@pytest.mark.parametrize("stage", ["teacher", "distill"])
def test_killed_training_resumes_from_checkpoint(tmp_path, stage):
    raw = tiny_recipe(
        teacher={"epochs": 8 if stage == "teacher" else 2},
        distill={"epochs": 8},
        train={"device": "cpu", "save_steps": 20, "logging_steps": 10},
    )
    path = write_recipe(tmp_path / "r.yaml", raw)
    runs = tmp_path / "runs"
    cmd = [sys.executable, "-m", "pipelines", "run", str(path), "--stage", stage]
    cmd += ["--runs-dir", str(runs)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    folder = runs / "tiny" / stage
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if list((folder / "checkpoints").glob("checkpoint-*/trainer_state.json")):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "training finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (folder / "manifest.json").exists()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((folder / "manifest.json").read_text())
    resumed = manifest["training"]["resumed_from"]
    assert resumed and int(resumed.rsplit("-", 1)[1]) > 0
    assert manifest["training"]["global_step"] == 8 * STEPS_PER_EPOCH
    assert (
        f"resuming {'teacher training' if stage == 'teacher' else 'distillation'} from"
        in (folder / "log.txt").read_text()
    )
    if stage == "distill":
        assert "[teacher] skipped" in result.stdout  # the finished teacher was not retrained
