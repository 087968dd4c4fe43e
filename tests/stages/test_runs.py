import json
import os
from pathlib import Path

import pytest

from pipelines.core.machine import machine
from pipelines.core.runs import RunDir, atomic_write_json, atomic_write_text, canonical_hash
from pipelines.run.registry import STAGES, plan
from pipelines.train.checkpoints import last_checkpoint


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "m.json"
    atomic_write_json(target, {"a": 1})
    atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_atomic_write_failure_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    atomic_write_text(target, "old")

    def boom(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]


def test_damaged_manifest_counts_as_not_done(tmp_path):
    run = RunDir(tmp_path, "x")
    run.stage("teacher").mkdir(parents=True)
    run.manifest_path("teacher").write_text('{"stage": "teacher", "ha')
    assert run.read_manifest("teacher") is None


def test_hash_is_order_independent_and_content_sensitive():
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 2})


def test_plan_runs_upstream_stages_first():
    # search is in the static plan; the runner drops it unless the recipe enables it
    assert plan("distill") == ["teacher", "search", "distill"]
    assert plan(None) == list(STAGES)
    with pytest.raises(
        Exception,
        match=r"--stage 'distil': unknown stage\. Allowed values: teacher, search, distill",
    ):
        plan("distil")


def test_search_stage_runs_only_when_the_recipe_enables_it():
    from pipelines.core.config import load_recipe

    demo = Path(__file__).resolve().parents[2] / "recipes" / "demo.yaml"
    recipe = load_recipe(demo)
    assert not STAGES["search"].runs_for(recipe)
    assert STAGES["distill"].runs_for(recipe)
    assert STAGES["search"].runs_for(load_recipe(demo, ["search.enabled=true"]))


def test_machine_records_cpu_and_isa(monkeypatch):
    from modelkit import cpu

    monkeypatch.setattr(
        cpu,
        "cpu_info",
        lambda: {"brand_raw": "X CPU", "flags": ["avx2", "avx512f", "bogus", "AMX_INT8"]},
    )
    info = machine()
    assert info["cpu"] == "X CPU"
    assert info["isa"] == ["amx_int8", "avx2", "avx512f"]  # the ISA flags only, sorted
    assert info["cores"] >= 1 and info["affinity"] >= 1


def test_last_checkpoint_skips_incomplete_ones(tmp_path):
    (tmp_path / "checkpoint-10").mkdir()
    (tmp_path / "checkpoint-10" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-20").mkdir()  # killed while writing: no trainer_state.json
    assert last_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")
    assert last_checkpoint(tmp_path / "missing") is None


def test_a_relative_runs_dir_names_the_same_folder_from_any_working_directory(
    tmp_path, monkeypatch
):
    """The bench's worker processes run in another directory: a run folder given relative to
    where the user typed the command must still name that folder there."""
    monkeypatch.chdir(tmp_path)
    run = RunDir(Path("runs"), "demo")
    atomic_write_json(run.manifest_path("teacher"), {"hash": "x"})
    monkeypatch.chdir(Path(__file__).parent)
    assert run.read_manifest("teacher") == {"hash": "x"}
    assert run.path == tmp_path / "runs" / "demo"
