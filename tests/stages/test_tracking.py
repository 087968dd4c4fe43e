"""train.report_to: TensorBoard event files hold every loss term by name (#18)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT, tiny_recipe, write_recipe


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events.parent))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out[tag] = {e.step: e.value for e in acc.Scalars(tag)}
    return out


@pytest.mark.slow  # a CLI run training a teacher and a student
def test_tensorboard_gets_every_loss_term_of_the_distill_stage(tmp_path):
    pytest.importorskip("tensorboard")
    raw = tiny_recipe(
        teacher={"epochs": 1},
        distill={"epochs": 1, "matches": ["hidden_mse"]},
        train={"device": "cpu", "logging_steps": 10, "report_to": ["tensorboard"]},
    )
    path = write_recipe(tmp_path / "r.yaml", raw)
    cmd = [sys.executable, "-m", "pipelines", "run", str(path), "--stage", "distill"]
    done = subprocess.run(
        cmd + ["--runs-dir", str(tmp_path / "runs")], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    stage = tmp_path / "runs" / "tiny" / "distill"
    assert not (stage / "checkpoints").exists()  # the event files outlive the checkpoints
    scalars = _scalars(stage / "tensorboard")
    for term in ("task", "kd", "hidden_mse"):
        assert f"train/loss_{term}" in scalars and f"train/loss_{term}_weighted" in scalars
    assert "train/weight_kd" in scalars and "train/temperature" in scalars
    # the same numbers as the stage's log, step by step
    logged = {
        int(line.split("step ")[1].split(":")[0]): ast.literal_eval(line[line.index("{") :])
        for line in (stage / "log.txt").read_text().splitlines()
        if "'loss_kd'" in line
    }
    assert logged
    for step, entry in logged.items():
        assert scalars["train/loss_kd"][step] == pytest.approx(entry["loss_kd"], rel=1e-5)
    assert _scalars(tmp_path / "runs" / "tiny" / "teacher" / "tensorboard")["train/loss"]


def test_a_tracker_without_its_package_is_refused_before_training(tmp_path, monkeypatch):
    import importlib.util

    from pipelines.core.errors import DistilleryError
    from pipelines.train.settings import check_trackers

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "tensorboard" else real(n, *a)
    )
    with pytest.raises(DistilleryError, match=r"pip install 'distillery\[tracking\]'"):
        check_trackers(["tensorboard"])
