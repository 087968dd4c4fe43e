"""The honest baseline: the teacher quantized by the student's methods (quantize.teacher_methods),
its eval predictions stored for the report's paired tests, and the report's summary stating the
pick's speed-up over the teacher's fp32 PyTorch, the best int8 teacher and the peer path."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError
from pipelines.run.runner import run_pipeline
from tests.conftest import SECTIONS, seed_run, tiny_recipe, write_recipe

BENCHED = [
    "teacher",
    "student-int8-dynamic",
    "student-int8-static",
    "teacher-int8-dynamic",
    "teacher-int8-static",
    "student-int8-peer",
]


@pytest.mark.slow
def test_teacher_quantized_by_each_method_and_the_summary_compares(tmp_path, tiny_student):
    seed_run(tmp_path / "runs", tiny_student[0] / "runs" / "tiny", "teacher", "distill")
    quantize = {
        "methods": ["dynamic", "static"],
        "teacher": True,  # SECTIONS leaves the teacher out (time): this test is about it
        "teacher_methods": ["dynamic", "static"],
        "calibration": {"samples": 32},
    }
    raw = tiny_recipe(**{**SECTIONS, "export": {"teacher": True}, "quantize": quantize})
    raw["bench"] = {**raw["bench"], "artifacts": BENCHED, "min_retained": 0.5}
    recipe = load_recipe(write_recipe(tmp_path / "recipe.yaml", raw))
    run_pipeline(recipe, tmp_path / "runs", target="report", echo=lambda _: None)
    out = tmp_path / "runs" / "tiny"
    manifest = json.loads((out / "quantize" / "manifest.json").read_text())
    q = manifest["quantized"]
    assert {"teacher-int8-dynamic", "teacher-int8-static", "teacher-int8-peer"} <= set(q)
    assert q["teacher-int8-static"]["op_counts"].get("QuantizeLinear", 0) > 0
    assert set(manifest["gate"]["accepted"]) | set(manifest["gate"]["rejected"]) == {
        "student-int8-dynamic",
        "student-int8-static",
    }  # the teacher's int8 copies are baselines, never gated

    stored = json.loads((out / "quantize" / manifest["predictions"]).read_text())
    labels = np.array(stored["labels"])
    assert {"teacher", "student", *q} <= set(stored["predictions"])
    for name, record in q.items():  # each artifact's stored predictions score as its record
        predicted = np.array(stored["predictions"][name])
        assert len(predicted) == len(labels) == record["parity"]["rows"]
        assert (predicted == labels).mean() == pytest.approx(record["accuracy"]), name

    readme = (out / "report" / "README.md").read_text()
    summary = readme.split("\n## ", 1)[0]
    speed = next(line for line in summary.splitlines() if line.startswith("- Fixed shape"))
    assert "the teacher's fp32 PyTorch" in speed and "the peer path" in speed
    assert "`teacher-int8-" in speed and "int8 teacher" in speed
    assert "McNemar" in summary  # every benched artifact's predictions were stored: paired
    assert "accuracy (95% CI)" in readme


def test_teacher_methods_are_checked_against_the_registry(recipe_file):
    with pytest.raises(ConfigError, match=r"'bogus' is not allowed. Allowed values: dynamic, inc"):
        load_recipe(recipe_file(), ["quantize.teacher_methods=[dynamic,bogus]"])
    assert load_recipe(recipe_file()).quantize.teacher_methods is None  # dynamic only, as before
