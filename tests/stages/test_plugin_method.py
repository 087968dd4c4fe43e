"""A quantization method added from outside the project is one function and one registry entry,
and the recipe, the quantize stage, the bench and the report pick it up (issue #27)."""

from __future__ import annotations

import json

import pytest

from pipelines.bench.artifacts import discover_artifacts, legacy_backend
from pipelines.bench.backends import BACKENDS
from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError
from pipelines.run.runner import run_pipeline
from quantize.methods import METHODS, Method, chosen, job_for, recipe_methods
from tests.conftest import seed_run, tiny_recipe, write_recipe

TOY = "toy"  # the method's name; its artifact is student-int8-toy
ARTIFACT = f"student-int8-{TOY}"
BENCH = {  # the smallest bench that still times every artifact once
    "batch_sizes": [1],
    "seq_lens": [8],
    "threads": [1],
    "rounds": 1,
    "min_runs": 1,
    "min_seconds": 0.0,
    "warmup_runs": 0,
    "bucket": False,
    "gpu": False,
    "ceiling_size": 0,
    "artifacts": ["student-onnx", ARTIFACT],  # found by name: the bench discovered it
}


def toy_quantize(job) -> dict:
    """ORT dynamic int8 of the plain export under another name, per-tensor weights."""
    from quantize.ort_dynamic import quantize_dynamic

    result = quantize_dynamic(job.onnx, job.out / "model.onnx", job.preset, per_channel=False)
    return {**result, "method": TOY, "calibration_given": job.calibration is not None}


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, tiny_student):
    tmp = tmp_path_factory.mktemp("plugin")
    seed_run(tmp / "runs", tiny_student[0] / "runs" / "tiny", "teacher", "distill")  # same configs
    raw = tiny_recipe(
        distill={"epochs": 0.5, "batch_size": 16},
        export={"teacher": False, "optimize": "none"},
        quantize={"methods": [TOY], "teacher": False, "peer": False},
        bench=BENCH,
    )
    path = write_recipe(tmp / "recipe.yaml", raw)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(METHODS, TOY, Method(toy_quantize))  # the one registry entry
        recipe = load_recipe(path)
        manifests = run_pipeline(recipe, tmp / "runs", target="report", echo=lambda _: None)
    return tmp / "runs" / "tiny", manifests, path


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_the_recipe_allows_a_method_only_once_it_is_registered(toy_run):
    _, _, path = toy_run
    with pytest.raises(ConfigError, match=r"quantize.methods: 'toy' is not allowed.*dynamic"):
        load_recipe(path)  # the entry is gone again: the registry decides, read at validation


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_the_quantize_stage_makes_scores_and_records_the_method(toy_run):
    run, manifests, _ = toy_run
    manifest = json.loads((run / "quantize" / "manifest.json").read_text())
    record = manifest["quantized"][ARTIFACT]
    assert list(manifest["quantized"]) == [ARTIFACT]
    assert record["method"] == TOY and record["per_channel"] is False  # our function ran
    assert record["calibration_given"] is False  # it declared no need for calibration rows
    assert record["bench_backend"] == "onnxruntime" and record["path"] == ARTIFACT
    assert record["quantized_ops"] > 0
    assert record["parity"]["rows"] == 160  # scored on the whole eval split
    reference = manifests["distill"]["metrics"]["accuracy"]
    assert record["drop_points"] == pytest.approx(100 * (reference - record["accuracy"]), abs=1e-6)
    assert manifest["gate"]["best"] == ARTIFACT
    assert manifests["quantize"]["metrics"][f"{ARTIFACT}_accuracy"] == record["accuracy"]


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_the_bench_and_report_include_it(toy_run):
    run, manifests, _ = toy_run
    rows = json.loads((run / "bench" / "rows.json").read_text())["rows"]
    toy = [r for r in rows if r["artifact"] == ARTIFACT]
    assert len(toy) == 1 and toy[0]["backend"] == "onnxruntime" and toy[0]["p50_ms"] > 0
    assert toy[0]["precision"] == "int8" and (toy[0]["batch"], toy[0]["seq"]) == (1, 8)
    results = json.loads((run / "report" / "results.json").read_text())
    assert {r["artifact"] for r in results} == {"student-onnx", ARTIFACT}
    assert f"| {ARTIFACT} |" in (run / "report" / "README.md").read_text()


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_the_bench_reads_the_recorded_backend_and_falls_back_for_older_runs(toy_run, tmp_path):
    run, _, _ = toy_run
    manifest = json.loads((run / "quantize" / "manifest.json").read_text())
    folder = run / "quantize" / ARTIFACT
    assert legacy_backend(folder) == "onnxruntime"
    (folder / "model.xml").write_text("<net/>")  # a file the old rule reads as OpenVINO
    try:
        found = {a.name: a.backend for a in discover_artifacts(run)}
        assert found[ARTIFACT] == "onnxruntime"  # the manifest's word, not the files'
        del manifest["quantized"][ARTIFACT]["bench_backend"]  # as a run made before it was
        (tmp_path / "quantize").mkdir()
        (tmp_path / "quantize" / "manifest.json").write_text(json.dumps(manifest))
        (tmp_path / "quantize" / ARTIFACT).symlink_to(folder)
        assert {a.name: a.backend for a in discover_artifacts(tmp_path)} == {ARTIFACT: "openvino"}
    finally:
        (folder / "model.xml").unlink()
    assert legacy_backend(tmp_path) is None


def test_every_method_names_a_bench_backend_and_a_function():
    from quantize.methods import _resolve

    for name, method in METHODS.items():
        assert method.backend in BACKENDS, name
        assert callable(_resolve(method.run)), name
        assert BACKENDS[method.backend].logits is not None, name  # its accuracy can be scored


def test_chosen_keeps_registry_order_and_adds_the_qat_candidates():
    assert recipe_methods() == ["dynamic", "static", "inc", "openvino"]
    assert chosen(["openvino", "dynamic"], trained=False) == ["dynamic", "openvino"]
    assert chosen(["openvino", "dynamic"], trained=True) == [
        "dynamic",
        "qat",
        "qat-openvino",
        "openvino",
    ]
    assert chosen(["static"], trained=True) == ["static", "qat"]  # qat-openvino follows openvino


def test_a_method_gets_only_what_it_declared(tmp_path):
    from quantize.methods import Job

    full = Job(out=tmp_path, settings=None, preset=None, onnx=tmp_path / "m.onnx", calibration=len)
    static = job_for("static", full, tmp_path / "s")
    assert static.out == tmp_path / "s" and static.calibration is len and static.model is None
    dynamic = job_for("dynamic", full, tmp_path / "d")
    assert dynamic.onnx == tmp_path / "m.onnx" and dynamic.calibration is None
    with pytest.raises(ValueError, match=r"needs \['gpu'\]: unknown; choose from \['calibration'"):
        Method(toy_quantize, needs=("gpu",))
