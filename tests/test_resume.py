"""A training stage killed with SIGKILL resumes from its last complete checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT, tiny_recipe, write_recipe


def test_killed_teacher_training_resumes_from_checkpoint(tmp_path):
    raw = tiny_recipe(
        teacher={"epochs": 8}, train={"device": "cpu", "save_steps": 20, "logging_steps": 10}
    )
    path = write_recipe(tmp_path / "r.yaml", raw)
    runs = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "pipelines",
        "run",
        str(path),
        "--stage",
        "teacher",
        "--runs-dir",
        str(runs),
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    checkpoints = runs / "tiny" / "teacher" / "checkpoints"
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            if list(checkpoints.glob("checkpoint-*/trainer_state.json")):
                break
            time.sleep(0.2)
        assert proc.poll() is None, "training finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not (runs / "tiny" / "teacher" / "manifest.json").exists()
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = json.loads((runs / "tiny" / "teacher" / "manifest.json").read_text())
    resumed = manifest["training"]["resumed_from"]
    assert resumed and int(resumed.rsplit("-", 1)[1]) > 0
    assert manifest["training"]["global_step"] == 8 * 50
    assert "resuming teacher training from" in (runs / "tiny" / "teacher" / "log.txt").read_text()
