"""Tests on the real SST-2 data and MiniLM under ../shared (marker `real`; skipped without it)."""

import pytest

from pipelines.config import load_recipe
from pipelines.stages import run_pipeline
from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.real


def test_minilm_finetunes_on_2000_sst2_rows(tmp_path):
    recipe = load_recipe(
        ROOT / "recipes" / "sst2-minilm.yaml",
        [
            "name=sst2-real-test",
            "data.max_train_samples=2000",
            "teacher.epochs=3",
            "teacher.learning_rate=1e-4",
            "train.save_steps=1000",
            "train.device=cpu",
        ],
    )
    assert recipe.teacher.model == str((SHARED / "models" / "all-minilm-l6-v2").resolve())
    manifest = run_pipeline(recipe, tmp_path / "runs", target="teacher", echo=print)["teacher"]
    assert manifest["metrics"]["eval_rows"] == 872
    assert manifest["metrics"]["accuracy"] >= 0.80
