"""Benchmark grid on a tiny run folder: every cell, ordered percentiles, real lengths, GPU skips."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
import torch

from pipelines.bench.artifacts import Artifact, discover_artifacts
from pipelines.bench.gpu import ORT_INT8_CUDA, cuda_status, gpu_rows
from pipelines.bench.grid import run_grid
from pipelines.bench.roofline import bert_flops, flops_per_cycle, roofline
from pipelines.bench.stats import percentiles
from pipelines.bench.worker import serving_batches
from tests.conftest import ROOT, tiny_bert

pytestmark = pytest.mark.filterwarnings("ignore:torch.tensor results are registered as constants")

WORDS = [f"w{i}" for i in range(60)]
LABELS = {0: "negative", 1: "positive"}
BATCHES, SEQS, THREADS = [1, 2], [8, 16], [1]
LENGTHS = [5, 12, 3, 16, 9, 7, 20]  # 20 > max_length: clipped, still counted once
SETTINGS = {"min_runs": 3, "min_seconds": 0.05, "warmup_runs": 1}
ACCURACY = {
    "teacher": 0.9,
    "student": 0.895,
    "teacher-onnx": 0.9,
    "student-onnx": 0.895,
    "student-int8-dynamic": 0.89,
    "student-int8-inc": 0.88,
}


def _save_bert(path: Path, seed: int) -> Path:
    """A 2-layer BERT classifier (hidden 32) and word-level tokenizer, saved like a checkpoint."""
    model, _ = tiny_bert(
        path, WORDS, seed, id2label=LABELS, label2id={v: k for k, v in LABELS.items()}
    )
    model.save_pretrained(path)
    return path


def _parity(accuracy: float) -> dict:
    return {
        "rows": 7,
        "max_abs_diff": 1e-6,
        "agreement": 1.0,
        "accuracy_reference": accuracy,
        "accuracy_candidate": accuracy,
    }


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """runs/<name>/ with teacher, distill, export (2 ONNX), quantize (ORT dynamic + an INC stub)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export.onnx_export import export_classifier

    run = tmp_path_factory.mktemp("run")
    _save_bert(run / "teacher", seed=0)
    _save_bert(run / "distill", seed=1)
    for name, src in (("teacher-onnx", "teacher"), ("student-onnx", "distill")):
        export_classifier(run / src, run / "export" / name)
    int8 = run / "quantize" / "student-int8-dynamic"
    int8.mkdir(parents=True)
    quantize_dynamic(
        run / "export" / "student-onnx" / "model.onnx",
        int8 / "model.onnx",
        weight_type=QuantType.QInt8,
    )
    (int8 / "config.json").write_text((run / "distill" / "config.json").read_text())
    inc = run / "quantize" / "student-int8-inc"  # never loaded here: discovery only
    inc.mkdir()
    (inc / "inc_recipe.json").write_text("{}")
    (inc / "inc_tensors.safetensors").write_bytes(b"0" * 1024)

    def manifest(stage: str, **extra) -> None:
        body = {"stage": stage, "hash": f"{stage}-hash", **extra}
        (run / stage / "manifest.json").write_text(json.dumps(body))

    manifest("teacher", metrics={"accuracy": ACCURACY["teacher"]})
    manifest("distill", metrics={"accuracy": ACCURACY["student"], "retained": 0.994})
    manifest(
        "export",
        exports={
            n: {"path": n, "opset": 18, "parity": _parity(ACCURACY[n])}
            for n in ("teacher-onnx", "student-onnx")
        },
    )
    manifest(
        "quantize",
        quantized={
            "student-int8-dynamic": {
                "path": "student-int8-dynamic",
                "accuracy": ACCURACY["student-int8-dynamic"],
                "method": "dynamic",
                "source": str(run / "export" / "student-onnx" / "model.onnx"),
                "parity": _parity(ACCURACY["student-int8-dynamic"]),
            },
            "student-int8-inc": {
                "path": "student-int8-inc",
                "accuracy": ACCURACY["student-int8-inc"],
            },
        },
    )
    return run


@pytest.fixture(scope="module")
def artifacts(run_dir) -> list[Artifact]:
    return discover_artifacts(run_dir)


@pytest.fixture(scope="module")
def measured(artifacts) -> list[Artifact]:
    """Everything but the INC stub, plus one artifact whose worker must fail."""
    keep = [a for a in artifacts if a.backend != "inc"]
    return keep + [Artifact("broken", "onnxruntime", "/nonexistent/model.onnx", "fp32")]


@pytest.fixture(scope="module")
def rows(measured) -> list[dict]:
    real = {"lengths": LENGTHS, "max_length": 16, "batch_size": 3}
    return run_grid(measured, BATCHES, SEQS, THREADS, **SETTINGS, real_lengths=real, timeout_s=300)


def _grid(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["mode"] == "grid"]


def test_discover_artifacts_reads_manifests(artifacts):
    by_name = {a.name: a for a in artifacts}
    assert list(by_name) == [
        "teacher",
        "student",
        "teacher-onnx",
        "student-onnx",
        "student-int8-dynamic",
        "student-int8-inc",
    ]
    assert [(a.backend, a.precision) for a in artifacts] == [
        ("torch", "fp32"),
        ("torch", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
        ("inc", "int8"),
    ]
    assert {a.name: a.accuracy for a in artifacts} == ACCURACY
    assert all(a.size_mb and a.size_mb > 0 for a in artifacts)
    assert by_name["student-int8-dynamic"].size_mb < by_name["student-onnx"].size_mb


def test_discover_skips_stages_not_run(tmp_path):
    assert discover_artifacts(tmp_path) == []


def test_artifact_rejects_unknown_names():
    with pytest.raises(ValueError, match=r"unknown backend 'tensorrt'; choose from \['inc'"):
        Artifact("x", "tensorrt", "p")
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Artifact("x", "torch", "p", precision="fp8")


def test_grid_has_every_cell(rows, measured):
    cells = [(r["artifact"], r["batch"], r["seq"], r["threads"]) for r in _grid(rows)]
    expected = itertools.product([a.name for a in measured], BATCHES, SEQS, THREADS)
    assert sorted(cells) == sorted(expected)
    for r in _grid(rows):
        assert {
            "backend",
            "device",
            "precision",
            "accuracy",
            "size_mb",
            "peak_rss_mb",
            "load_s",
        } <= set(r)


def test_percentiles_ordered_and_throughput_matches_latency(rows):
    ok = [r for r in _grid(rows) if not r.get("error")]
    assert len(ok) == 5 * len(BATCHES) * len(SEQS)
    for r in ok:
        assert 0 < r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"]
        assert r["runs"] >= SETTINGS["min_runs"]
        # timing goes on until min_seconds have passed (time_runs), whatever min_runs says
        assert r["runs"] * r["mean_ms"] >= 0.8 * 1000 * SETTINGS["min_seconds"]
        assert r["peak_rss_mb"] > 0 and r["load_s"] >= 0


def test_failing_worker_yields_error_rows(rows):
    broken = [r for r in rows if r["artifact"] == "broken"]
    assert len(broken) == len(BATCHES) * len(SEQS)
    assert all("nonexistent" in r["error"] and r["p50_ms"] is None for r in broken)


def test_real_length_covers_every_row_once(rows, measured):
    real = [r for r in rows if r["mode"] == "real_length"]
    assert sorted(r["artifact"] for r in real) == sorted(
        a.name for a in measured if a.name != "broken"
    )
    for r in real:
        assert r["rows_seen"] == {"bucket": len(LENGTHS), "padded": len(LENGTHS)}
        assert r["rows_unique"] == {"bucket": len(LENGTHS), "padded": len(LENGTHS)}
        assert r["bucket_sentences_per_s"] > 0 and r["padded_sentences_per_s"] > 0
        assert r["bucket_padding_fraction"] < r["padding_fraction"]
        # timed in every interleaved round (3 by default), each bucket shape warmed up once
        assert len(r["round_sentences_per_s"]) == 3 and r["bucket_shapes"] == 3


def test_length_batches_bucket_and_padded():
    bucket = serving_batches(LENGTHS, 16, 3, "bucket")
    padded = serving_batches(LENGTHS, 16, 3, "padded")
    for plan in (bucket, padded):
        assert sorted(i for rows, _ in plan for i in rows) == list(range(len(LENGTHS)))
    assert bucket == [([2, 0, 5], 7), ([4, 1, 3], 16), ([6], 16)]
    assert [w for _, w in padded] == [16, 16, 16]


def test_percentiles_in_milliseconds_interpolated():
    stats = percentiles([i / 1000 for i in range(1, 101)])  # 1 … 100 ms, given in seconds
    assert stats == pytest.approx(
        {"p50_ms": 50.5, "p90_ms": 90.1, "p99_ms": 99.01, "mean_ms": 50.5}
    )


def test_gpu_rows_carry_a_skip_reason(artifacts):
    if cuda_status() is None:
        pytest.skip("a CUDA device is present; the skip path is for CPU-only machines")
    rows = gpu_rows(artifacts, BATCHES, SEQS)
    keys = [(r["artifact"], r["precision"]) for r in rows]
    assert keys == [
        ("teacher", "fp32"),
        ("teacher", "bf16"),
        ("student", "fp32"),
        ("student", "bf16"),
        ("teacher-onnx", "fp32"),
        ("teacher-onnx", "fp16"),  # converted at load (pipelines.bench.gpu.to_fp16)
        ("student-onnx", "fp32"),
        ("student-onnx", "fp16"),
        ("student-int8-dynamic", "int8"),
        ("student-int8-inc", "int8"),
    ]
    assert all(r["device"] == "cuda" and r["skipped"] for r in rows)
    assert rows[0]["skipped"].startswith("torch.cuda.is_available() is False")
    assert rows[5]["skipped"].startswith("torch.cuda.is_available() is False")
    assert rows[8]["skipped"].startswith(ORT_INT8_CUDA)  # dynamic int8: neither CUDA EP nor TRT
    assert "#10267" in rows[8]["skipped"] and "dynamic int8" in rows[8]["skipped"]


@pytest.mark.parametrize(("batch", "seq"), [(1, 16), (3, 8)])
def test_bert_flops_formula_counts_what_torch_counts(batch, seq):
    """The formula against torch's own FLOP counter on a real BERT encoder (eager attention)."""
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertModel

    shape = {"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64}
    config = BertConfig(vocab_size=50, num_attention_heads=2, attn_implementation="eager", **shape)
    encoder = BertModel(config, add_pooling_layer=False).eval().encoder
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        encoder(torch.randn(batch, seq, 32))
    flops, formula = bert_flops(shape, batch=batch, seq=seq)
    assert flops == counter.get_total_flops()
    assert formula.startswith("batch·(2·P_lin·seq + 4·L·seq²·H)")


# a two-port AVX-512 server core, so that the peak does not depend on the machine running the test
INTEL_CPU = {
    "cores": 2,
    "ghz": 2.0,
    "flags": ["avx512f", "fma", "avx512_vnni"],
    "vendor": "GenuineIntel",
    "family": 6,
}
TINY_SHAPE = {"num_hidden_layers": 2, "hidden_size": 32, "intermediate_size": 64}


def test_roofline_peak_and_fraction():
    intel, config = INTEL_CPU, TINY_SHAPE
    fp32 = roofline(config, 1, 16, cpu=intel, p50_ms=1.0)
    assert fp32["peak_ops_per_s"] == 2 * 2.0e9 * 64
    assert fp32["achieved_ops_per_s"] == pytest.approx(fp32["flops"] / 1e-3)
    assert fp32["fraction_of_peak"] == pytest.approx(
        fp32["achieved_ops_per_s"] / fp32["peak_ops_per_s"]
    )
    assert fp32["fraction_of_ceiling"] is None  # nothing measured, nothing claimed
    assert "2 cores × 2.00 GHz" in fp32["assumption"] and "AVX-512" in fp32["assumption"]
    int8 = roofline(config, 1, 16, cpu=intel, precision="int8")
    assert int8["peak_ops_per_s"] == 4 * fp32["peak_ops_per_s"] and int8["fraction_of_peak"] is None
    assert flops_per_cycle({"avx2", "fma"}) == (32, "AVX2: 8 fp32 lanes × 2 (FMA) × 2 FMA ports")
    # Zen 4 has the same flags but runs 512-bit instructions on two 256-bit halves: half the peak
    zen4 = {**intel, "vendor": "AuthenticAMD", "family": 25}
    half = roofline(config, 1, 16, cpu=zen4, p50_ms=1.0, precision="int8", ceiling={"int8": 4e11})
    assert half["peak_ops_per_s"] == int8["peak_ops_per_s"] / 2 and "Zen 4" in half["assumption"]
    assert half["fraction_of_ceiling"] == pytest.approx(half["achieved_ops_per_s"] / 4e11)
    zen5 = roofline(config, 1, 16, cpu={**zen4, "family": 26}, precision="int8")
    assert zen5["peak_ops_per_s"] == int8["peak_ops_per_s"]


def test_gemm_ceiling_model_computes_the_product_and_times_it():
    import numpy as np
    import onnxruntime as ort
    from onnx import numpy_helper

    from pipelines.bench.ceiling import gemm_model, measured_ceiling

    for precision in ("int8", "fp32"):
        model = gemm_model(precision, size=16)
        weights = numpy_helper.to_array(model.graph.initializer[0])
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        rng = np.random.default_rng(3)
        if precision == "int8":
            # below 128: AVX2 without VNNI sums u8·s8 pairs in saturating int16 (vpmaddubsw), so
            # full-range inputs differ from the exact product on such CPUs (Zen 3, older Intel)
            a = rng.integers(0, 128, (16, 16), dtype=np.uint8)
            expected = a.astype(np.int64) @ weights.astype(np.int64)
        else:
            a = rng.standard_normal((16, 16), dtype=np.float32)
            expected = a @ weights
        np.testing.assert_allclose(session.run(None, {"a": a})[0], expected, rtol=1e-5, atol=1e-4)
    with pytest.raises(ValueError, match="expected one of"):
        gemm_model("fp8")
    measured = measured_ceiling(threads=1, size=64)  # a child process, as in the bench stage
    assert measured["threads"] == 1 and measured["size"] == 64, measured
    for precision in ("int8", "fp32"):
        assert measured[precision] == pytest.approx(
            2 * 64**3 / (measured[f"{precision}_best_ms"] / 1e3), rel=1e-2
        )


def test_roofline_lines_name_the_ceiling_once_and_each_fraction():
    from pipelines.report.assemble import roofline_lines

    cpu, config = INTEL_CPU, TINY_SHAPE
    ceiling = {"int8": 5e11, "fp32": 1e11}
    rows = [
        {
            "artifact": "student-int8",
            **roofline(config, 1, 16, cpu=cpu, p50_ms=0.01, precision="int8", ceiling=ceiling),
        },
        {
            "artifact": "student-onnx",
            **roofline(config, 1, 16, cpu=cpu, p50_ms=0.02, ceiling=ceiling),
        },
    ]
    text = "\n".join(roofline_lines(rows))
    assert text.count("Measured GEMM ceiling") == 1 and "int8 500 GOP/s" in text
    line = next(x for x in text.splitlines() if x.startswith("- `student-int8`"))
    assert f"{rows[0]['fraction_of_ceiling']:.1%} of the measured ceiling" in line
    no_ceiling = [{**r, "ceiling_ops_per_s": None, "fraction_of_ceiling": None} for r in rows]
    bare = "\n".join(roofline_lines(no_ceiling))
    assert "Measured GEMM ceiling" not in bare and "of the measured ceiling" not in bare


def test_report_from_measured_rows(rows, run_dir, tmp_path):
    from pipelines.report.assemble import write_report
    from pipelines.report.results_schema import validate_results

    manifests = {
        s: json.loads((run_dir / s / "manifest.json").read_text())
        for s in ("teacher", "distill", "export", "quantize")
    }
    gpu = gpu_rows(discover_artifacts(run_dir), BATCHES, SEQS) if cuda_status() else []
    out = write_report(  # measured while other tests load the cores: pick from them anyway
        tmp_path / "report", rows + gpu, manifests, {"cpu": "test", "isa": []}, withhold_noisy=False
    )
    validate_results(json.loads(Path(out["results"]).read_text()))
    # teacher accuracy 0.9 → floor 0.891: the int8 model (0.89) is out, whatever its speed
    assert out["recommended"] in {"teacher", "student", "teacher-onnx", "student-onnx"}
    points = out["pareto_points"]
    measured = {r["artifact"] for r in _grid(rows) if not r.get("error")}
    assert {p["artifact"] for p in points} == measured  # every measured artifact, none invented
    assert min(points, key=lambda p: p["p50_ms"])["pareto"]  # the fastest is on the front
    assert max(points, key=lambda p: (p["accuracy"], -p["p50_ms"]))["pareto"]  # and the best
    for p in points:  # a point is on the front exactly when nothing is faster and as accurate
        beaten = any(q["p50_ms"] < p["p50_ms"] and q["accuracy"] >= p["accuracy"] for q in points)
        assert p["pareto"] is not beaten, p


def test_a_torch_worker_answers_without_transformers_optional_extras(tmp_path):
    """The torch loader turns off scikit-learn and torchao in transformers (loaders.py) and the
    model still answers the same logits as in this process."""
    import subprocess
    import sys

    model, _ = tiny_bert(tmp_path / "model", WORDS)
    model.save_pretrained(tmp_path / "model")
    ids = [[2, 7, 9, 3], [2, 11, 3, 0]]
    code = (
        "import json, sys, numpy as np\n"
        "from pipelines.bench.loaders import load_torch\n"
        f"runner = load_torch({{'path': {str(tmp_path / 'model')!r}, 'device': 'cpu', "
        "'precision': 'fp32'})\n"
        f"ids = np.array({ids}, dtype=np.int64)\n"
        "arrays = {'input_ids': ids, 'attention_mask': (ids > 0).astype(np.int64), "
        "'token_type_ids': np.zeros_like(ids)}\n"
        "logits = runner.run(runner.feed(arrays)).tolist()\n"
        "print(json.dumps({'logits': logits, 'loaded': sorted(m for m in ('sklearn', 'torchao') "
        "if m in sys.modules)}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["loaded"] == []
    ids_t = torch.tensor(ids)
    with torch.inference_mode():
        expected = model(input_ids=ids_t, attention_mask=(ids_t > 0).long()).logits
    assert torch.allclose(torch.tensor(out["logits"]), expected, atol=1e-5)
