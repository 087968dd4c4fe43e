"""A training stage killed with SIGKILL resumes from its last complete checkpoint (issue #7 case 11)."""

import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT, kill_when, tiny_recipe, write_recipe

STEPS_PER_EPOCH = 50  # 800 generated rows, batch 16


@pytest.mark.slow  # eight epochs, killed and resumed, in two CLI processes
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
    folder = runs / "tiny" / stage
    # distill checkpoints also carry the training seconds so far: wait for that file too
    marker = "trainer_state.json" if stage == "teacher" else "distillery_train_seconds.json"
    kill_when(cmd, (folder / "checkpoints", f"checkpoint-*/{marker}"))
    assert not (folder / "manifest.json").exists()
    # Say the killed session had trained for 10,000 s: the resumed run must count them.
    for seconds in (folder / "checkpoints").glob("checkpoint-*/distillery_train_seconds.json"):
        assert json.loads(seconds.read_text())["train_seconds"] > 0
        seconds.write_text(json.dumps({"train_seconds": 10_000.0}))
    rerun_started = time.time()
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
        # the reported training time is the seconds before the kill plus this session's
        session = time.time() - rerun_started
        assert 10_000.0 < manifest["training"]["train_seconds"] < 10_000.0 + session


def _fake_checkpoint(folder, step=20):
    ckpt = folder / "checkpoints" / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "trainer_state.json").write_text("{}")
    return ckpt


def test_checkpoints_of_another_config_are_not_resumed(tmp_path):
    """An interrupted run, then an edited recipe: the rerun starts over instead of continuing the
    old training under the new config's hash."""
    from pipelines.core.config import load_recipe
    from pipelines.core.runs import RunDir
    from pipelines.run.runner import run_pipeline

    runs = tmp_path / "runs"
    run = RunDir(runs, "tiny")
    folder = run.stage("teacher")
    folder.mkdir(parents=True)
    (folder / ".attempt").write_text("0" * 64 + "\n")  # the hash the interrupted run had
    _fake_checkpoint(folder)  # a real resume from this would fail: no weights in it
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(teacher={"epochs": 1})))
    lines = []
    done = run_pipeline(recipe, runs, target="teacher", echo=lines.append)
    assert any(
        "checkpoints of an interrupted run with hash 000000000000 removed" in line for line in lines
    )
    assert done["teacher"]["training"]["resumed_from"] is None
    assert (folder / ".attempt").read_text().strip() == done["teacher"]["hash"]
    assert ".attempt" not in done["teacher"]["files"]


def test_start_attempt_keeps_checkpoints_of_the_same_config(tmp_path):
    from pipelines.core.runs import RunDir

    run = RunDir(tmp_path, "r")
    folder = run.stage("distill")
    folder.mkdir(parents=True)
    ckpt = _fake_checkpoint(folder)
    assert run.start_attempt("distill", "a" * 64) is not None  # no record: unknown config, dropped
    assert not ckpt.exists()
    ckpt = _fake_checkpoint(folder, 40)
    assert run.start_attempt("distill", "a" * 64) is None  # same config: kept for resume
    assert ckpt.exists()
    assert "hash aaaaaaaaaaaa removed" in run.start_attempt("distill", "b" * 64)
    assert not ckpt.exists()
