"""The bench sized to the question (#29, #28): the quick grid and the full one, the real-length
cell timed in every round with one warm-up run per bucket shape, progress lines, the report's
fixed-shape and real-length ratios and `bench.serve`, `distillery bench PATH…` and
`distillery compare`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pipelines.core.config import BenchConfig, load_recipe
from tests.conftest import ROOT, tiny_bert

LENGTHS = [5, 12, 3, 16, 9, 7, 20]


# ---------------------------------------------------------------- the grid a recipe asks for


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr("pipelines.bench.grid.usable_cores", lambda: 4)


def test_the_quick_grid_is_batch_1_at_the_headline_length_on_all_cores(four_cores):
    from pipelines.bench.grid import grid_shape

    assert BenchConfig().grid == "quick" and BenchConfig().serve == "latency"
    assert grid_shape(BenchConfig(), max_length=256) == ([1], [128], [4])
    assert grid_shape(BenchConfig(), max_length=32) == ([1], [32], [4])  # the model serves ≤ 32
    assert grid_shape(BenchConfig(threads=[1]), max_length=256) == ([1], [128], [1])


def test_the_full_grid_and_explicit_lists_mean_what_they_meant(four_cores):
    from pipelines.bench.grid import grid_shape

    full = ([1, 8, 32], [16, 64, 128], [1, 4])
    assert grid_shape(BenchConfig(grid="full"), max_length=32) == full
    # a recipe that sets one list gets the grid of before bench.grid, quick or not
    assert grid_shape(BenchConfig(seq_lens=[64]), 256) == ([1, 8, 32], [64], [1, 4])
    assert grid_shape(BenchConfig(batch_sizes=[2]), 256) == ([2], [16, 64, 128], [1, 4])
    demo = load_recipe(ROOT / "recipes" / "demo.yaml")
    assert grid_shape(demo.bench, demo.data.max_length) == ([1, 8], [16, 32], [1, 4])


# ---------------------------------------------------------------- real lengths


def test_real_length_runs_each_bucket_shape_once_before_the_timer():
    """A backend that compiles per shape (OpenVINO static shapes) compiles in the warm-up, never
    inside the timed pass; the fed inputs are built once and kept for the next rounds."""
    from pipelines.bench.loaders import Runner
    from pipelines.bench.worker import measure_real_length, serving_batches

    calls: list[tuple[int, int]] = []
    runner = Runner(lambda x: calls.append(x["input_ids"].shape), lambda a: a, ["input_ids"])
    job = {"real_length": {"lengths": LENGTHS, "max_length": 16, "batch_size": 3}, "vocab_size": 50}
    cache: dict = {}
    out = measure_real_length(runner, job, ("bucket",), cache)
    plan = serving_batches(LENGTHS, 16, 3, "bucket")
    shapes = {(len(rows), width) for rows, width in plan}
    assert len(shapes) == 3 and set(calls[: len(shapes)]) == shapes
    assert len(calls) == len(shapes) + len(plan)  # warm-up, then every batch once, timed
    assert out["bucket"]["shapes"] == 3 and out["bucket"]["rows_seen"] == len(LENGTHS)
    assert "padded" not in out and "bucket_speedup" not in out
    feeds = cache["bucket"][1]
    both = measure_real_length(runner, job, ("bucket", "padded"), cache)
    assert cache["bucket"][1] is feeds and both["bucket_speedup"] > 0


def test_the_real_length_cell_keeps_every_round_and_flags_disagreeing_rounds():
    from pipelines.bench.stats import real_length_row

    def reply(rate: float, padded: bool) -> dict:
        cell = {"sentences_per_s": rate, "rows_seen": 7, "rows_unique": 7, "shapes": 3}
        out = {"rows": 7, "max_length": 16, "batch_size": 3, "bucket": {**cell}}
        out["bucket"]["padding_fraction"] = 0.1
        if padded:
            out["padded"] = {**cell, "sentences_per_s": rate / 2, "padding_fraction": 0.5}
        return out

    base = {"artifact": "a", "mode": "grid", "threads": 1}
    row = real_length_row(base, {}, [reply(100, False), reply(300, False), reply(120, True)])
    assert row["mode"] == "real_length" and row["round_sentences_per_s"] == [100, 300, 120]
    assert row["bucket_sentences_per_s"] == 120  # the median round
    assert row["padded_sentences_per_s"] == 60 and row["bucket_speedup"] == 2
    assert (row["batch"], row["seq"], row["bucket_shapes"]) == (3, 16, 3)
    assert row["noisy"] == "its rounds differ 3.00×"


def test_progress_says_a_line_per_artifact_and_cell(capsys):
    from pipelines.bench.artifacts import Artifact
    from pipelines.bench.progress_lines import cell_lines

    count = ([0], 4)
    times = {(1, 16): [[1.0, 2.0], [3.0]]}
    errors = {(1, 32): "RuntimeError: shape\nsecond line"}
    real = [{"batch_size": 32, "bucket": {"sentences_per_s": 1234.0}}]
    cell_lines(Artifact("student-onnx", "onnxruntime", "p"), 2, times, errors, real, count)
    assert capsys.readouterr().err.splitlines() == [
        "[bench] 1/4 student-onnx b1/s16 2t: p50 2 ms (2 rounds)",
        "[bench] 2/4 student-onnx b1/s32 2t: error: second line",
        "[bench] 3/4 student-onnx real lengths b32 2t: 1,234 sentences/s",
    ]


# ---------------------------------------------------------------- the report's two ratios


def _rows() -> list[dict]:
    """b1/s128 and real-length rows: OpenVINO fastest at b1, ORT dynamic at real lengths."""

    def grid(name, p50, acc, backend="onnxruntime", precision="int8", role="model"):
        return {
            "artifact": name,
            "backend": backend,
            "device": "cpu",
            "precision": precision,
            "batch": 1,
            "seq": 128,
            "threads": 2,
            "p50_ms": p50,
            "p90_ms": p50,
            "p99_ms": p50 * 1.2,
            "throughput": 1000 / p50,
            "accuracy": acc,
            "size_mb": 1.0,
            "round_p50_ms": [p50] * 3,
            "role": role,
            "mode": "grid",
        }

    def real(row, rate):
        return {
            **{k: v for k, v in row.items() if k != "round_p50_ms"},
            "mode": "real_length",
            "batch": 32,
            "seq": 128,
            "rows": 872,
            **dict.fromkeys(("p50_ms", "p90_ms", "p99_ms", "throughput")),
            "bucket_sentences_per_s": rate,
            "round_sentences_per_s": [rate] * 3,
        }

    rows = [
        grid("teacher", 20.0, 0.91, "torch", "fp32"),
        grid("teacher-int8-dynamic", 8.0, 0.905, role="baseline"),
        grid("student-int8-openvino", 2.0, 0.905, "openvino"),
        grid("student-int8-dynamic", 2.6, 0.904),
        grid("student-int8-peer", 3.0, 0.903, role="baseline"),
    ]
    rates = [100.0, 250.0, 900.0, 1800.0, 1500.0]
    return rows + [real(r, rate) for r, rate in zip(rows, rates, strict=True)]


def test_the_headline_states_fixed_shape_and_real_length_ratios(tmp_path):
    from pipelines.report.assemble import write_report

    out = write_report(tmp_path, _rows(), {}, {"cpu": "x", "cores": 2})
    assert out["recommended"] == "student-int8-openvino"  # by latency, today's behaviour
    text = (tmp_path / "README.md").read_text().splitlines()
    fixed, real = text[4], text[5]
    assert fixed.startswith("- Fixed shape (what it is recommended by, bench.serve: latency), ")
    assert "**10.00×** the teacher's fp32 PyTorch" in fixed
    assert "**4.00×** `teacher-int8-dynamic` (the fastest int8 teacher at equal or better" in fixed
    assert "**1.50×** the peer path (`student-int8-peer`" in fixed
    assert real.startswith("- Real lengths, the 872 eval rows length-bucketed, batch 32, 2 threads")
    assert "900 sentences/s" in real and "**9.00×** the teacher's fp32 PyTorch" in real
    assert "**3.60×** the best int8 teacher" in real and "**0.60×** the peer path" in real


def test_serve_throughput_recommends_by_real_length_sentences_per_second(tmp_path):
    from pipelines.report.assemble import write_report
    from pipelines.report.recommend import RecommendRule

    rule = RecommendRule(serve="throughput")
    out = write_report(tmp_path, _rows(), {}, {"cpu": "x", "cores": 2}, rule)
    assert out["recommended"] == "student-int8-dynamic"
    assert out["reason"].startswith("most sentences/s (1,800) over the 872 eval rows")
    text = (tmp_path / "README.md").read_text().splitlines()
    assert text[5].startswith("- Real lengths (what it is recommended by, bench.serve: throughput)")
    assert "**18.00×** the teacher's fp32 PyTorch" in text[5] and "**1.20×** the peer" in text[5]
    without_real = [r for r in _rows() if r["mode"] == "grid"]
    out = write_report(tmp_path / "b", without_real, {}, {"cpu": "x", "cores": 2}, rule)
    assert out["recommended"] == "student-int8-openvino" and "bench.bucket off" in out["reason"]
    with pytest.raises(ValueError, match="serve must be one of"):
        RecommendRule(serve="batch")


# ---------------------------------------------------------------- distillery bench / compare


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """A tiny HF classifier, its ONNX export and its ORT dynamic int8 (a bare .onnx file)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from export.onnx_export import export_classifier

    root = tmp_path_factory.mktemp("models")
    labels = {0: "negative", 1: "positive"}
    words = [f"w{i}" for i in range(60)]
    model, _ = tiny_bert(
        root / "hf", words, 0, id2label=labels, label2id={"negative": 0, "positive": 1}
    )
    model.save_pretrained(root / "hf")
    export_classifier(root / "hf", root / "onnx")
    quantize_dynamic(root / "onnx" / "model.onnx", root / "int8.onnx", weight_type=QuantType.QInt8)
    (root / "texts.txt").write_text("\n".join(" ".join(words[: 2 + i % 30]) for i in range(40)))
    return root


def test_bench_finds_each_model_s_backend_or_says_what_it_looked_for(models, tmp_path):
    from modelkit.errors import InputError
    from pipelines.bench.standalone import artifacts_for, find_backend

    assert find_backend(models / "int8.onnx") == ("onnxruntime", "int8")
    assert find_backend(models / "onnx") == ("onnxruntime", "fp32")
    assert find_backend(models / "hf") == ("torch", "fp32")
    (tmp_path / "pickle").mkdir()
    (tmp_path / "pickle" / "config.json").write_text("{}")
    (tmp_path / "pickle" / "pytorch_model.bin").write_bytes(b"0")
    with pytest.raises(InputError) as bad:
        artifacts_for([tmp_path / "nothing", tmp_path], peer=tmp_path / "pickle")
    lines = str(bad.value).splitlines()
    assert lines[0].endswith(
        "nothing: no such file or folder; give an .onnx file, an OpenVINO "
        ".xml, or a folder holding model.onnx, model.xml (OpenVINO IR) or a "
        "Hugging Face model (config.json with model.safetensors)."
    )
    assert "no model found" in lines[1] and "safetensors only" in lines[2]


def test_distillery_bench_times_a_bare_onnx_file_against_a_peer(models, tmp_path, capsys):
    from pipelines.cli import main

    out = tmp_path / "out"
    args = ["bench", str(models / "onnx"), "--peer", str(models / "int8.onnx"), "--out", str(out)]
    args += ["--rounds", "2", "--min-runs", "3", "--min-seconds", "0.01", "--threads", "1"]
    assert main(args + ["--texts", str(models / "texts.txt")]) == 0
    printed = capsys.readouterr()
    results = json.loads((out / "results.json").read_text())
    grid = [r for r in results["rows"] if r["mode"] == "grid"]
    assert [(r["artifact"], r["role"], r["batch"], r["seq"]) for r in grid] == [
        ("onnx", "model", 1, 64),  # quick: b1 at min(128, the model's 64 positions)
        ("int8", "baseline", 1, 64),
    ]
    assert all(r["p50_ms"] > 0 and len(r["round_p50_ms"]) == 2 for r in grid)
    real = [r for r in results["rows"] if r["mode"] == "real_length"]
    assert [r["artifact"] for r in real] == ["onnx", "int8"]
    assert all(r["rows"] == 40 and len(r["round_sentences_per_s"]) == 2 for r in real)
    assert results["machine"]["cores"] and "steal_pct" in results["conditions"]
    table = (out / "results.md").read_text()
    assert table.strip() in printed.out and "| int8 (peer) | onnxruntime | int8 |" in table
    assert "× onnx" in table and "× int8 (peer)" in table
    said = sorted(line.split(" ", 2)[2] for line in printed.err.splitlines() if "/4 " in line)
    assert [re.sub(r"[\d.,]+ (ms|sentences)", r"N \1", line) for line in said] == [
        "int8 b1/s64 1t: p50 N ms (2 rounds)",
        "int8 real lengths b32 1t: N sentences/s",
        "onnx b1/s64 1t: p50 N ms (2 rounds)",
        "onnx real lengths b32 1t: N sentences/s",
    ]


def _report_run(runs: Path, name: str, rows: list[dict], recommended: str) -> Path:
    run = runs / name
    (run / "report").mkdir(parents=True)
    (run / "report" / "results.json").write_text(json.dumps(rows))
    manifest = {"stage": "report", "recommended": recommended, "reason": "its rule"}
    (run / "report" / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_compare_puts_two_runs_side_by_side(tmp_path, capsys):
    from pipelines.cli import main

    a = _report_run(tmp_path, "small", _rows(), "student-int8-openvino")
    faster = [{**r, "p50_ms": r["p50_ms"] / 2} if r["p50_ms"] else r for r in _rows()]
    b = _report_run(tmp_path, "base", faster[:-1], "student-int8-dynamic")  # no peer real row
    assert main(["compare", str(a), str(b), "--out", str(tmp_path / "cmp.md")]) == 0
    text = capsys.readouterr().out
    assert "- **A**: `small`" in text and "recommended: `student-int8-openvino` (its rule)" in text
    assert "- **B**: `base`" in text and "recommended: `student-int8-dynamic`" in text
    line = next(x for x in text.splitlines() if x.startswith("| student-int8-openvino"))
    assert line.split(" | ")[1:6] == ["0.905", "0.905", "2.000", "1.000", "2.00×"]
    assert "(recommended in A)" in line
    assert (tmp_path / "cmp.md").read_text().strip() == text.strip()


def test_compare_names_a_run_folder_with_no_results(tmp_path, capsys):
    from pipelines.cli import main

    a = _report_run(tmp_path, "done", _rows(), "student-int8-openvino")
    (tmp_path / "empty" / "teacher").mkdir(parents=True)
    assert main(["compare", str(a), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'empty'}: no results in this folder (looked for report/results.json" in err
    assert "distillery run RECIPE" in err
