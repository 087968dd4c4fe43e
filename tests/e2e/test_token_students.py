"""A token-vector student (cnn) through every stage on the tiny teacher: distilled from cached
logits over an augmented set, exported with parity, int8, benched beside the teacher, reported
(with its kind's line, and beside a transformer student's run in `distillery compare`),
bundled, and the bundle verified."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest

from pipelines import cli
from pipelines.core.config import load_recipe
from pipelines.report.compare import compare_markdown, run_results
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
    run = tmp_path / "runs" / "tiny"
    line = kind_line(run, "- **cnn** student: ", manifests, rows["rows"])
    assert line in (run / "report" / "README.md").read_text()
    # beside a transformer student's run (this run's report, its distill manifest saying
    # teacher_layers): one line per kind, each run's figures its own
    other = tmp_path / "other" / "tiny"
    for stage in ("teacher", "distill", "report"):
        shutil.copytree(run / stage, other / stage)
    record = json.loads((other / "distill" / "manifest.json").read_text())
    record["student"]["init"] = "teacher_layers"
    (other / "distill" / "manifest.json").write_text(json.dumps(record))
    text = compare_markdown(run_results(other), run_results(run))
    assert f"- **cnn** student: B: {line.split(': ', 1)[1]}" in text
    assert f"- **transformer** student: A: {line.split(': ', 1)[1]}" in text
    assert "**teacher** (transformer): A: accuracy" in text and "; B: accuracy" in text
    bundle = run / "bundle"
    assert cli.main(["bundle", "--verify", str(bundle)]) == 0


@pytest.mark.slow  # two pipelines through the bundle
@pytest.mark.parametrize(
    "kind, tokens",
    [("static", {"width": 16, "head_hidden": 16}), ("bilstm", {"width": 16, "lstm_hidden": 8})],
)
def test_static_and_bilstm_students_are_exported_quantized_bundled_and_verified(
    tiny_teacher, tmp_path, kind, tokens
):
    """The other two kinds through the same stages as the cnn above, their int8 graph bundled
    (what recipes/sst2-minilm-{static,bilstm}.yaml ship) and the bundle verified."""
    seed_run(tmp_path / "runs", tiny_teacher[0] / "runs" / "tiny", "teacher")
    sections = {
        **SECTIONS,
        "student": {"init": kind, "tokens": tokens},
        "distill": {"epochs": 2, "batch_size": 16, "learning_rate": 1e-2, "kd_loss": "mse"},
        "bench": {**SECTIONS["bench"], "artifacts": ["teacher", "student-int8-dynamic"]},
        "bundle": {**SECTIONS["bundle"], "artifact": "student-int8-dynamic"},
    }
    path = write_recipe(tmp_path / "recipe.yaml", tiny_recipe(**sections))
    manifests = run_pipeline(load_recipe(path), tmp_path / "runs", target="bundle", echo=print)
    assert manifests["distill"]["student"]["init"] == kind
    assert manifests["distill"]["metrics"]["accuracy"] > 0.6  # chance: 0.5 ± 0.08 on 160 rows
    parity = manifests["export"]["exports"]["student-onnx"]["parity"]
    assert parity["max_abs_diff"] < 1e-4 and parity["agreement"] == 1.0
    int8 = manifests["quantize"]["quantized"]["student-int8-dynamic"]
    assert int8["accuracy"] > 0.6
    assert manifests["bundle"]["metrics"]["artifact"] == "student-int8-dynamic"
    assert cli.main(["bundle", "--verify", str(tmp_path / "runs" / "tiny" / "bundle")]) == 0


def kind_line(run: Path, start: str, manifests: dict, rows: list[dict]) -> str:
    """The report's line for the student's kind, from the manifests: its most accurate artifact
    (ties: the fastest; the peer baseline left out, as the report does) at the report's cell
    (b1, the one seq, 1 thread), % of the teacher's accuracy, the median over rounds of the
    teacher's p50 ÷ its p50, its size."""
    accuracy = {
        "student": manifests["distill"]["metrics"]["accuracy"],
        **{k: v["parity"]["accuracy_candidate"] for k, v in manifests["export"]["exports"].items()},
        **{
            k: v["accuracy"]
            for k, v in manifests["quantize"]["quantized"].items()
            if v.get("role") != "baseline"
        },
    }
    cell = {r["artifact"]: r for r in rows if r.get("mode") == "grid" and r.get("p50_ms")}
    name = max(accuracy, key=lambda k: (accuracy[k], -cell[k]["p50_ms"]))
    teacher = manifests["teacher"]["metrics"]["accuracy"]
    ratios = [
        t / s
        for t, s in zip(cell["teacher"]["round_p50_ms"], cell[name]["round_p50_ms"], strict=True)
    ]
    lo, mid, hi = min(ratios), statistics.median(ratios), max(ratios)
    speed = f"{mid:.2f}×" if hi - lo < 0.005 else f"{mid:.2f}× ({lo:.2f}–{hi:.2f})"
    size = cell[name]["size_mb"]
    size = f"{size:.2g}" if size < 1 else f"{size:.2f}"  # the report's two significant digits
    return (
        f"{start}accuracy {accuracy[name]:.4f} (`{name}`), {accuracy[name] / teacher:.1%} of the "
        f"teacher, {speed} the teacher's fp32 PyTorch, {size} MB."
    )
