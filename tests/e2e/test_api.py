"""The Python API (`import distillery`): what a notebook user calls instead of the CLI."""

from __future__ import annotations

import json

import pytest

import distillery
from pipelines.core.errors import ConfigError
from tests.conftest import seed_run, tiny_recipe, write_recipe


def test_run_a_stage_with_overrides_and_read_back_metrics_and_paths(tmp_path, tiny_teacher):
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_recipe())
    seed_run(tmp_path / "runs", tiny_teacher[0] / "runs" / "tiny", "teacher", name="api")
    result = distillery.run(
        recipe,
        stage="distill",
        overrides={"distill.epochs": 0.5, "student.layers": [0], "name": "api"},
        runs_dir=tmp_path / "runs",
        quiet=True,
    )
    assert result.name == "api" and set(result.manifests) == {"teacher", "distill"}
    assert result.path("distill") == tmp_path / "runs" / "api" / "distill"
    student = json.loads((result.path("distill") / "config.json").read_text())
    assert student["num_hidden_layers"] == 1  # the override reached the stage
    assert (
        result.metrics("distill")["accuracy"] == result.manifests["distill"]["metrics"]["accuracy"]
    )
    assert result.artifact("distill", "model") == result.path("distill") / "model.safetensors"
    with pytest.raises(KeyError, match=r"distill has no artifact 'onnx'; it has \['config'"):
        result.artifact("distill", "onnx")
    # a second call skips what is done and returns the same manifests
    again = distillery.run(
        recipe,
        stage="distill",
        overrides={"distill.epochs": 0.5, "student.layers": [0], "name": "api"},
        runs_dir=tmp_path / "runs",
        quiet=True,
    )
    assert again.manifests["distill"]["hash"] == result.manifests["distill"]["hash"]


def test_bad_overrides_name_the_key(tmp_path):
    recipe = write_recipe(tmp_path / "recipe.yaml", tiny_recipe())
    with pytest.raises(ConfigError, match="distill.epochs"):
        distillery.load(recipe, {"distill.epochs": "many"})
    with pytest.raises(ConfigError, match="distill.epoch"):
        distillery.validate(recipe, {"distill.epoch": 1})
    assert distillery.validate(recipe, {"seed": 3}).seed == 3
