"""A token-vector student (cnn) through every stage on the tiny teacher: distilled from cached
logits over an augmented set, exported with parity, int8, benched beside the teacher, reported,
bundled, and the bundle verified."""

from __future__ import annotations

import json

from pipelines import cli
from pipelines.core.config import load_recipe
from pipelines.run.runner import run_pipeline
from tests.conftest import SECTIONS, seed_run, tiny_recipe, write_recipe


def test_a_cnn_student_runs_through_the_bundle_and_verifies(tiny_teacher, tmp_path):
    seed_run(tmp_path / "runs", tiny_teacher[0] / "runs" / "tiny", "teacher")
    sections = {
        **SECTIONS,
        "student": {"init": "cnn", "tokens": {"width": 16, "filters": 8, "kernel_sizes": [2, 3]}},
        "distill": {
            "epochs": 2,
            "batch_size": 16,
            "learning_rate": 1e-2,
            "kd_loss": "mse",
            "augment": {"factor": 1, "methods": ["tang", "replace"]},
        },
    }
    path = write_recipe(tmp_path / "recipe.yaml", tiny_recipe(**sections))
    manifests = run_pipeline(load_recipe(path), tmp_path / "runs", target="bundle", echo=print)
    distill = manifests["distill"]
    assert distill["student"]["init"] == "cnn"
    assert distill["training"]["augmented_rows"] > 0
    assert distill["metrics"]["accuracy"] > 0.8  # the tiny task is easy; chance is 0.5
    export = manifests["export"]["exports"]
    assert list(export) == ["student-onnx"]  # nothing to fuse
    assert export["student-onnx"]["parity"]["max_abs_diff"] < 1e-4
    assert "student-int8-dynamic" in manifests["quantize"]["quantized"]
    rows = json.loads((tmp_path / "runs" / "tiny" / "bench" / "rows.json").read_text())
    benched = {row["artifact"] for row in rows["rows"]}
    assert {"teacher", "student", "student-onnx", "student-int8-dynamic"} <= benched
    bundle = tmp_path / "runs" / "tiny" / "bundle"
    assert cli.main(["bundle", "--verify", str(bundle)]) == 0
