"""Issue #7 faults that need a real process or a real write: a kill while an artifact or a
manifest is being written (case 12), a full disk (case 15), and a vocabulary mismatch caught
before any training (case 5, through the CLI)."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys

import pytest

from pipelines.core.config import load_recipe
from pipelines.core.errors import DistilleryError
from pipelines.run.runner import run_pipeline
from tests.conftest import ROOT, seed_run, tiny_bert, tiny_recipe, write_recipe

# Runs the CLI with one write sabotaged: the process SIGKILLs itself in the middle of writing the
# distill stage's weights (a torn file on disk), or with the manifest's temporary file complete but
# not yet renamed. Patched before transformers is imported, so its `from safetensors.torch import
# save_file` binds to the sabotaged function.
DRIVER = r"""
import os, signal, sys
from pathlib import Path

mode, stage, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if mode == "artifact":
    import safetensors.torch as st
    real_save = st.save_file

    def save_file(tensors, filename, metadata=None):
        if Path(filename).parent.name == stage:
            data = b"\x00" * 4096
            with open(filename, "wb") as handle:  # half a file, then the power goes
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.kill(os.getpid(), signal.SIGKILL)
        return real_save(tensors, filename, metadata=metadata)

    st.save_file = save_file
elif mode == "manifest":
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst).name == "manifest.json" and Path(dst).parent.name == stage:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_replace(src, dst, *args, **kwargs)

    os.replace = replace
from pipelines.cli import main
sys.exit(main(argv))
"""


def _cli(args, env_extra=None, driver=None, timeout=600):
    cmd = [sys.executable, "-m", "pipelines", *args]
    if driver:
        cmd = [sys.executable, "-c", DRIVER, *driver, *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=timeout)


@pytest.mark.slow  # four CLI processes: a killed distillation and its rerun, twice
@pytest.mark.parametrize("mode", ["artifact", "manifest"])
def test_kill_while_writing_leaves_no_manifest_and_rerun_redoes_only_that_stage(
    tmp_path, mode, tiny_teacher
):
    path = write_recipe(tmp_path / "r.yaml", tiny_recipe())
    runs = seed_run(tmp_path / "runs", tiny_teacher[0] / "runs" / "tiny", "teacher")
    args = ["run", str(path), "--stage", "distill", "--runs-dir", str(runs)]
    killed = _cli(args, driver=[mode, "distill"])
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL, not a clean exit

    teacher_manifest = runs / "tiny" / "teacher" / "manifest.json"
    distill = runs / "tiny" / "distill"
    assert teacher_manifest.is_file()
    assert not (distill / "manifest.json").exists()
    if mode == "artifact":  # the torn file really is on disk
        assert (distill / "model.safetensors").stat().st_size == 4096
    before = teacher_manifest.read_bytes()

    rerun = _cli(args)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "[teacher] skipped: already done" in rerun.stdout
    assert "[distill] running" in rerun.stdout
    assert teacher_manifest.read_bytes() == before  # the finished stage was not touched
    manifest = json.loads((distill / "manifest.json").read_text())
    assert manifest["metrics"]["accuracy"] > 0.5
    assert not list(distill.glob(".manifest.json.*.tmp"))  # no stale temporaries left behind

    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(distill, use_safetensors=True)
    assert model.config.num_hidden_layers == 1  # the rewritten weights load


def test_disk_full_names_the_path_and_keeps_finished_stages(tmp_path, monkeypatch, tiny_teacher):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe()))
    runs = seed_run(tmp_path / "runs", tiny_teacher[0] / "runs" / "tiny", "teacher")
    run_pipeline(recipe, runs, target="teacher", echo=lambda _: None)
    teacher_manifest = runs / "tiny" / "teacher" / "manifest.json"
    before = teacher_manifest.read_bytes()

    import transformers

    def no_space(self, save_directory, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(save_directory))

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", no_space)
    with pytest.raises(DistilleryError) as caught:
        run_pipeline(recipe, runs, target="distill", echo=lambda _: None)
    message = str(caught.value)
    assert str(runs / "tiny" / "distill") in message
    assert "No space left on device" in message and "stage 'distill'" in message
    assert "Free disk space" in message
    assert teacher_manifest.read_bytes() == before
    assert not (runs / "tiny" / "distill" / "manifest.json").exists()


def test_disk_full_on_the_manifest_itself(tmp_path, monkeypatch):
    # a fifth of an epoch: the manifest is written after any amount of training
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(teacher={"epochs": 0.2})))
    runs = tmp_path / "runs"
    import pipelines.core.runs as runs_module

    real = runs_module.atomic_write_json

    def full(path, data):
        if path.name == "manifest.json":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(runs_module, "atomic_write_json", full)
    with pytest.raises(DistilleryError, match=r"teacher/manifest\.json: cannot write the manifest"):
        run_pipeline(recipe, runs, target="teacher", echo=lambda _: None)
    assert not (runs / "tiny" / "teacher" / "manifest.json").exists()


def _tiny_pretrained(folder, words):
    model, _ = tiny_bert(folder, words, num_hidden_layers=1)
    model.save_pretrained(folder)
    return folder


def test_student_with_another_vocabulary_is_refused_before_the_teacher_trains(tmp_path):
    teacher = _tiny_pretrained(tmp_path / "teacher", ["good", "bad", "not", "movie"])
    student = _tiny_pretrained(tmp_path / "student", ["good", "bad", "film", "very"])
    raw = tiny_recipe(
        teacher={"init": "pretrained", "model": str(teacher)},
        student={"init": "pretrained", "model": str(student)},
    )
    raw["teacher"].pop("config")
    path = write_recipe(tmp_path / "r.yaml", raw)
    runs = tmp_path / "runs"
    result = _cli(["run", str(path), "--stage", "distill", "--runs-dir", str(runs)])
    assert result.returncode == 2
    assert "student.model: the student's vocabulary differs from the teacher's" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (runs / "tiny" / "teacher").exists()  # refused before any training


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_damaged_artifact_of_a_finished_stage_is_named_and_redone(tmp_path, teacher_for):
    """A finished stage whose files changed is not trusted: the run names the file and redoes
    that stage (issue #19: a fully skipped run checks the artifacts too)."""
    raw = tiny_recipe(  # the student's export and one int8 method: what the checks need
        teacher={"epochs": 1},
        export={"teacher": False},
        quantize={"methods": ["dynamic"], "teacher": False},
    )
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", raw))
    runs = seed_run(tmp_path / "runs", teacher_for(teacher={"epochs": 1}), "teacher")
    manifests = run_pipeline(recipe, runs, target="export", echo=lambda _: None)
    files = manifests["export"]["files"]
    assert "student-onnx/model.onnx" in files and files["student-onnx/model.onnx"]["bytes"] > 0
    onnx_file = runs / "tiny" / "export" / "student-onnx" / "model.onnx"
    onnx_file.write_bytes(onnx_file.read_bytes()[:2000])  # truncated after the stage finished
    lines = []
    done = run_pipeline(recipe, runs, target="quantize", echo=lines.append)
    assert any(
        re.search(
            r"\[export\] its files changed since it finished \(.*student-onnx/model\.onnx: "
            r"has 2000 bytes, the manifest recorded \d+\); rerunning the stage",
            line,
        )
        for line in lines
    )
    assert lines[0].startswith("[teacher] skipped") and lines[1].startswith("[distill] skipped")
    assert onnx_file.stat().st_size == files["student-onnx/model.onnx"]["bytes"]  # redone
    assert done["quantize"]["metrics"]["accuracy"] > 0.5

    weights = runs / "tiny" / "teacher" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10:] = b"\xff" * 10  # same size, different bytes
    weights.write_bytes(bytes(data))
    lines = []
    run_pipeline(recipe, runs, target="teacher", echo=lines.append)
    assert "teacher/model.safetensors: has changed since the stage finished" in lines[0]
    assert lines[-1].startswith("[teacher] done")
