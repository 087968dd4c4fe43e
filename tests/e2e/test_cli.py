import os
import subprocess
import sys
import time

import pytest

from pipelines.core.errors import SourceError
from pipelines.core.sources import Source, preflight
from tests.conftest import ROOT, tiny_recipe, write_recipe


def cli(*args, cwd=ROOT, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def test_validate_typo_exits_nonzero_and_suggests(tmp_path):
    raw = tiny_recipe()
    raw["teacher"]["epoch"] = 2
    result = cli("validate", str(write_recipe(tmp_path / "typo.yaml", raw)))
    assert result.returncode == 2
    assert "teacher.epoch: unknown key. Did you mean 'teacher.epochs'?" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_ok_and_set_validation(tmp_path):
    path = write_recipe(tmp_path / "ok.yaml", tiny_recipe())
    assert cli("validate", str(path)).returncode == 0
    bad = cli("validate", str(path), "--set", "teacher.batch_size=0")
    assert (
        bad.returncode == 2
        and "teacher.batch_size: 0 is out of range; allowed values: [1, 4096]" in bad.stderr
    )


def test_hub_recipe_fails_fast_with_the_local_fix():
    started = time.time()
    result = cli("run", "recipes/sst2.yaml", timeout=60)
    assert time.time() - started < 30
    assert result.returncode == 2 and "Traceback" not in result.stderr
    for needle in (
        "teacher.model = bert-base-uncased",
        "data.source = glue/sst2",
        "--set",
        "teacher.model=",
        "data.source=",
    ):
        assert needle in result.stderr


def test_unreachable_hub_is_reported_per_source(monkeypatch):
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.HfApi, "repo_info", refuse)
    sources = [
        (
            Source("hub", "bert-base-uncased", key="teacher.model", given="bert-base-uncased"),
            "model",
        ),
        (
            Source("hub", "nyu-mll/glue", subset="sst2", key="data.source", given="glue/sst2"),
            "dataset",
        ),
    ]
    with pytest.raises(SourceError) as caught:
        preflight(sources)
    lines = str(caught.value).splitlines()
    unreachable = "the Hugging Face Hub could not be reached (ConnectionError)"
    assert f"  teacher.model = bert-base-uncased: {unreachable}" in lines
    assert (
        f"  data.source = glue/sst2 (hub dataset nyu-mll/glue, config sst2): {unreachable}" in lines
    )
    assert "--set teacher.model=/path/to/local/model data.source=/path/to/local/data" in str(
        caught.value
    )


def test_dry_run_trains_nothing_and_writes_nothing(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", tiny_recipe())
    result = cli(
        "run", str(path), "--stage", "distill", "--dry-run", "--runs-dir", str(tmp_path / "runs")
    )
    assert result.returncode == 0, result.stderr
    assert "[teacher] would run" in result.stdout and "[distill] would run" in result.stdout
    assert not (tmp_path / "runs").exists()


def test_stages_lists_every_stage_and_what_it_needs(tmp_path):
    result = cli("stages")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [
        ["teacher", "needs", "-"],
        ["search", "needs", "teacher"],
        ["distill", "needs", "teacher,"],
        ["export", "needs", "teacher,"],
        ["quantize", "needs", "distill,"],
        ["bench", "needs", "teacher,"],
        ["report", "needs", "bench"],
        ["bundle", "needs", "teacher,"],
    ]
    assert lines[1].endswith("(optional)") and "teacher, search (if enabled)" in lines[2]


def test_unwritable_runs_dir_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    path = write_recipe(tmp_path / "r.yaml", tiny_recipe())
    result = cli("run", str(path), "--stage", "teacher", "--runs-dir", str(blocker / "runs"))
    assert result.returncode == 2 and f"{blocker}/runs/tiny: cannot write here" in result.stderr
