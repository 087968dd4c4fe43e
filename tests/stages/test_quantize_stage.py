import json
import shutil

import pytest

from pipelines.bench.gpu import cuda_status
from pipelines.core.config import load_recipe
from pipelines.core.errors import StageFailedError
from pipelines.run.runner import run_pipeline
from quantize.openvino import available as openvino_missing
from tests.conftest import seed_run, tiny_recipe, write_recipe

# every quantization method, then the bench of 12 artifacts and the report
pytestmark = pytest.mark.slow

BENCH = {
    "batch_sizes": [1, 2],
    "seq_lens": [8, 16],
    "threads": [1],
    "min_runs": 3,
    "min_seconds": 0.02,
    "warmup_runs": 1,
    "real_length_batch": 16,
    "ceiling_size": 256,  # measured here (the tiny recipe's default is 0: not measured)
    "load_sample_s": 0.5,
}
QUANTIZE = {
    "calibration": {"samples": 64},
    "inc": {"configs": ["dynamic"], "calibration_samples": 32},
}


@pytest.fixture(scope="module")
def quantized(tmp_path_factory, tiny_student):
    tmp = tmp_path_factory.mktemp("quantize")
    seed_run(tmp / "runs", tiny_student[0] / "runs" / "tiny", "teacher", "distill")
    raw = tiny_recipe(distill={"epochs": 0.5, "batch_size": 16}, quantize=QUANTIZE, bench=BENCH)
    recipe = load_recipe(write_recipe(tmp / "recipe.yaml", raw))
    manifests = run_pipeline(recipe, tmp / "runs", target="report", echo=lambda _: None)
    return tmp, manifests


def test_every_method_is_evaluated_against_the_fp32_student(quantized):
    tmp, manifests = quantized
    manifest = json.loads((tmp / "runs" / "tiny" / "quantize" / "manifest.json").read_text())
    q = manifest["quantized"]
    methods = {"student-int8-dynamic", "student-int8-static", "student-int8-inc"}
    methods |= {"student-int8-openvino"} if openvino_missing() is None else set()
    assert set(q) == methods | {"teacher-int8-dynamic", "student-int8-peer", "teacher-int8-peer"}
    assert {k for k, v in q.items() if v.get("role") == "baseline"} == {
        "student-int8-peer",
        "teacher-int8-peer",
    }
    assert set(manifest["gate"]["accepted"]) | set(manifest["gate"]["rejected"]) == methods
    reference = manifests["distill"]["metrics"]["accuracy"]
    assert manifest["gate"]["reference_accuracy"] == pytest.approx(reference)
    for name in methods:
        assert q[name]["parity"]["rows"] == 160
        assert q[name]["drop_points"] == pytest.approx(
            100 * (reference - q[name]["accuracy"]), abs=1e-6
        )
        assert q[name]["rejected"] is False
    dynamic_ops = q["student-int8-dynamic"]["op_counts"]
    assert dynamic_ops.get("DynamicQuantizeLinear", 0) + dynamic_ops.get("QAttention", 0) > 0
    assert q["student-int8-static"]["op_counts"].get("QuantizeLinear", 0) > 0
    assert (
        manifest["preset"]["name"] in ("avx512_vnni", "avx512", "avx2", "arm64")
        and manifest["preset"]["reason"]
    )
    distill_tokenizer = tmp / "runs" / "tiny" / "distill" / "tokenizer.json"
    inc_tokenizer = tmp / "runs" / "tiny" / "quantize" / "student-int8-inc" / "tokenizer.json"
    assert inc_tokenizer.read_bytes() == distill_tokenizer.read_bytes()


def test_gate_failure_lists_each_drop_and_keeps_the_candidates(quantized, tmp_path, monkeypatch):
    from dataclasses import replace

    from pipelines.bench.backends import BACKENDS

    tmp, _ = quantized
    for stage in ("teacher", "distill", "export"):
        shutil.copytree(tmp / "runs" / "tiny" / stage, tmp_path / "runs" / "tiny" / stage)
    ort = BACKENDS["onnxruntime"]

    def wrong(*args, **kwargs):  # every int8 prediction flipped: a 100-point-ish drop
        return ort.logits(*args, **kwargs)[:, ::-1].copy()

    monkeypatch.setitem(BACKENDS, "onnxruntime", replace(ort, logits=wrong))
    raw = tiny_recipe(
        distill={"epochs": 0.5, "batch_size": 16},
        quantize={**QUANTIZE, "methods": ["dynamic", "static"], "teacher": False},
    )
    recipe = load_recipe(write_recipe(tmp_path / "recipe.yaml", raw))
    with pytest.raises(
        StageFailedError,
        match=r"student-int8-dynamic.*student-int8-static|student-int8-static.*student-int8-dynamic",
    ):
        run_pipeline(recipe, tmp_path / "runs", target="quantize", echo=lambda _: None)
    out = tmp_path / "runs" / "tiny" / "quantize"
    assert not (out / "manifest.json").exists()
    assert (out / "student-int8-dynamic" / "model.onnx").is_file()  # best candidate kept
    failure = json.loads((out / "gate_failure.json").read_text())
    assert failure["gate"]["accepted"] == [] and len(failure["gate"]["rejected"]) == 2


def test_bench_and_report_cover_every_artifact(quantized):
    from pipelines.report.results_schema import validate_results

    tmp, manifests = quantized
    report = tmp / "runs" / "tiny" / "report"
    rows = json.loads((report / "results.json").read_text())
    validate_results(rows)
    names = {a["name"] for a in manifests["bench"]["measured"]}
    assert names == {
        "teacher",
        "student",
        "teacher-onnx",
        "teacher-onnx-O2",
        "student-onnx",
        "student-onnx-O2",
        "student-int8-dynamic",
        "student-int8-static",
        "student-int8-inc",
        "teacher-int8-dynamic",
        "student-int8-peer",
        "teacher-int8-peer",
    } | ({"student-int8-openvino"} if openvino_missing() is None else set())
    grid = [
        r
        for r in rows
        if r.get("mode", "grid") == "grid" and r.get("device") == "cpu" and r.get("p50_ms")
    ]
    assert {(r["artifact"], r["batch"], r["seq"]) for r in grid} == {
        (n, b, s) for n in names for b in (1, 2) for s in (8, 16)
    }
    assert all(r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] for r in grid)
    inc = [r for r in grid if r["artifact"] == "student-int8-inc"]
    assert inc and all(r["compiled"] and r["compile_s"] > 0 for r in inc)  # timed after compile
    gpu = [r for r in rows if r.get("device") == "cuda"]
    assert gpu  # GPU rows are kept: measured on a CUDA machine, else with the reason
    if cuda_status() is not None:
        assert all(r.get("skipped") for r in gpu)
    readme = (report / "README.md").read_text()
    assert all(f"| {n} |" in readme for n in names)
    assert manifests["report"]["recommended"] in names
    assert manifests["bench"]["roofline"] and manifests["bench"]["roofline"][0]["flops"] > 0
    ceiling = manifests["bench"]["ceiling"]  # measured after the grid at its top thread count
    assert ceiling["int8"] > 0 and ceiling["fp32"] > 0, ceiling
    int8_roof = [r for r in manifests["bench"]["roofline"] if r["precision"] == "int8"]
    assert int8_roof and all(
        r["fraction_of_ceiling"] == pytest.approx(r["achieved_ops_per_s"] / ceiling["int8"])
        for r in int8_roof
    )
    assert "Measured GEMM ceiling" in readme
