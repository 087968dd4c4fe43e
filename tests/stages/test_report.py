"""Report on synthetic rows: schema, recommendation rule, tables, plots that decode."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from pipelines.report.assemble import write_report
from pipelines.report.plots import pareto_points
from pipelines.report.recommend import RecommendRule, recommend
from pipelines.report.results_schema import RESULTS_SCHEMA, validate_results
from pipelines.report.tables import terminal_table

# name: (backend, precision, accuracy, size MB, ms per (batch·seq) token at 1 thread)
ARTIFACTS = {
    "teacher": ("torch", "fp32", 0.90, 1.0, 0.100),
    "student": ("torch", "fp32", 0.895, 0.5, 0.050),
    "student-onnx": ("onnxruntime", "fp32", 0.895, 0.5, 0.030),
    "student-onnx-O2": ("onnxruntime", "fp32", 0.895, 0.48, 0.020),
    "student-int8-dynamic": ("onnxruntime", "int8", 0.85, 0.15, 0.010),  # fastest, too inaccurate
    "teacher-int8-dynamic": ("onnxruntime", "int8", 0.899, 0.3, 0.040),
}
MANIFESTS = {
    "teacher": {"hash": "a" * 64, "metrics": {"accuracy": 0.90}},
    "distill": {"hash": "b" * 64, "metrics": {"accuracy": 0.895, "retained": 0.994}},
    "export": {
        "hash": "c" * 64,
        "exports": {
            "student-onnx-O2": {
                "path": "student-onnx-O2",
                "opset": 18,
                "parity": {
                    "rows": 10,
                    "max_abs_diff": 2e-6,
                    "agreement": 1.0,
                    "accuracy_reference": 0.895,
                    "accuracy_candidate": 0.895,
                },
            }
        },
    },
    "quantize": {"hash": "d" * 64, "quantized": {}},
}
MACHINE = {"cpu": "Test CPU", "arch": "x86_64", "cores": 2, "isa": ["avx2"]}


def _rows() -> list[dict]:
    rows = []
    for name, (backend, precision, acc, size, per_token) in ARTIFACTS.items():
        common = {"artifact": name, "backend": backend, "device": "cpu", "precision": precision,
                  "accuracy": acc, "size_mb": size, "path": f"runs/x/{name}", "mode": "grid",
                  "peak_rss_mb": 100.0, "load_s": 0.1}  # fmt: skip
        for threads in (1, 2):
            for batch in (1, 2):
                for seq in (8, 16):
                    p50 = per_token * batch * seq / threads
                    rows.append({**common, "batch": batch, "seq": seq, "threads": threads,
                                 "p50_ms": p50, "p90_ms": 1.1 * p50, "p99_ms": 1.5 * p50,
                                 "mean_ms": 1.05 * p50, "runs": 10,
                                 "throughput": batch * 1000 / (1.05 * p50)})  # fmt: skip
    rows.append({**rows[0], "device": "cuda", "batch": None, "seq": None, "p50_ms": None,
                 "p90_ms": None, "p99_ms": None, "mean_ms": None, "runs": None,
                 "throughput": None, "skipped": "torch.cuda.is_available() is False"})  # fmt: skip
    rows.append({**rows[0], "artifact": "broken", "p50_ms": None, "p90_ms": None,
                 "p99_ms": None, "throughput": None, "error": "worker exited 1: boom"})  # fmt: skip
    rows.append({**rows[8], "mode": "real_length", "batch": 2, "seq": 16, "p50_ms": None,
                 "p90_ms": None, "p99_ms": None, "throughput": None,
                 "bucket_sentences_per_s": 900.0, "padded_sentences_per_s": 300.0,
                 "bucket_speedup": 3.0, "padding_fraction": 0.6})  # fmt: skip
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    return write_report(
        tmp_path_factory.mktemp("report"), _rows(), MANIFESTS, MACHINE, RecommendRule()
    )


def test_rows_validate():
    validate_results(_rows())
    assert RESULTS_SCHEMA["type"] == "array"
    assert {"artifact", "p50_ms", "throughput", "size_mb"} <= set(
        RESULTS_SCHEMA["items"]["required"]
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.pop("p99_ms"), r"row 3 \(artifact 'teacher'\): field 'p99_ms' is missing"),
        (
            lambda r: r.update(p50_ms="fast"),
            r"row 3 \(artifact 'teacher'\): field 'p50_ms': expected",
        ),
        (lambda r: r.update(batch=0), r"row 3 .*field 'batch': 0 < minimum 1"),
        (lambda r: r.update(accuracy=1.5), r"row 3 .*field 'accuracy': 1.5 > maximum 1"),
        (lambda r: r.update(backend="tvm"), r"row 3 .*field 'backend': 'tvm' is not one of"),
        (lambda r: r.update(p90_ms=r["p99_ms"] * 2), r"row 3 .*percentiles out of order"),
        (lambda r: r.update(p50_ms=None), r"row 3 .*'p50_ms' is null on a measured row"),
    ],
)
def test_validate_names_row_and_field(change, message):
    rows = copy.deepcopy(_rows())
    change(rows[3])
    with pytest.raises(ValueError, match=message):
        validate_results(rows)


def test_recommend_keeps_99_percent_of_teacher():
    best = recommend(_rows(), MANIFESTS, RecommendRule())
    # int8-dynamic is fastest but 0.85 < 0.99·0.90; seq 128 unmeasured → largest seq 16; 2 threads
    assert best["artifact"] == "student-onnx-O2"
    assert (best["batch"], best["seq"], best["threads"]) == (1, 16, 2)
    assert (
        recommend(_rows(), MANIFESTS, {"min_retained": 0.9})["artifact"] == "student-int8-dynamic"
    )
    with pytest.raises(ValueError, match="min_retained must be in"):
        RecommendRule(min_retained=1.5)


def test_report_files(report):
    rows = json.loads(Path(report["results"]).read_text())
    validate_results(rows)
    assert len(rows) == len(_rows())
    assert report["recommended"] == "student-onnx-O2"
    assert report["recommended_path"] == "runs/x/student-onnx-O2"


def test_plots_decode_and_pareto_has_one_point_per_artifact(report):
    import matplotlib.image

    for key in ("pareto", "latency"):
        image = matplotlib.image.imread(report[key])
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    points = report["pareto_points"]
    assert sorted(p["artifact"] for p in points) == sorted(ARTIFACTS)
    assert {(p["batch"], p["seq"], p["threads"]) for p in points} == {(1, 16, 2)}
    front = {p["artifact"] for p in points if p["pareto"]}
    assert front == {"student-int8-dynamic", "student-onnx-O2", "teacher-int8-dynamic", "teacher"}
    assert set(report["latency_series"]) == set(ARTIFACTS)
    for by_threads in report["latency_series"].values():  # every thread count, its own line
        assert sorted(by_threads) == [1, 2]
        assert all([s for s, _ in line] == [8, 16] for line in by_threads.values())


def test_readme_tables_and_model_card(report):
    text = Path(report["readme"]).read_text()
    cpu = text.split("## cpu:", 1)[1].split("## ", 1)[0]
    for name in [*ARTIFACTS, "broken"]:
        assert sum(line.startswith(f"| {name} |") for line in cpu.splitlines()) == 1, name
    assert "b1 p50/p99 ms" in cpu and "b2 p50/p99 ms" in cpu and "seq 16, 2 threads" in cpu
    teacher_line = next(line for line in cpu.splitlines() if line.startswith("| teacher |"))
    assert "1.00×" in teacher_line
    o2_line = next(line for line in cpu.splitlines() if line.startswith("| student-onnx-O2 |"))
    assert "5.00×" in o2_line  # 0.100 / 0.020 ms per token
    assert "## cuda: nothing could run here" in text  # one line per reason, not per artifact
    assert "| torch.cuda.is_available() is False | teacher fp32 |" in text
    assert "error: worker exited 1: boom" in cpu
    assert "Real lengths" in text and "3.00×" in text
    card = text.split("## Model card: `student-onnx-O2`", 1)[1]
    for digest in ("a" * 64, "b" * 64, "c" * 64):
        assert digest in card
    assert "ORTModelForSequenceClassification.from_pretrained('runs/x/student-onnx-O2'" in card


def test_the_summary_adds_one_line_per_kind_of_model(report):
    """The teacher and the student's kind, each at its most accurate artifact at the rule's cell
    (b1, seq 16, 2 threads): the three 0.895 students tie, the fastest (O2) stands for them."""
    from pipelines.report.kinds import kind_lines
    from pipelines.report.recommend import compared_rows

    text = Path(report["readme"]).read_text()
    summary = text.split("## cpu:", 1)[0]
    assert (
        "- **teacher** (transformer): accuracy 0.9000 (`teacher`), 100.0% of the teacher, 1.00× "
        "the teacher's fp32 PyTorch, 1.00 MB." in summary
    )
    assert (
        "- **transformer** student: accuracy 0.8950 (`student-onnx-O2`), 99.4% of the teacher, "
        "5.00× the teacher's fp32 PyTorch, 0.48 MB." in summary  # 0.100 / 0.020 ms per token
    )
    assert "speed-ups at batch 1, seq 16, 2 threads" in summary
    # a cnn student: the distill manifest's student.init names the kind of every student artifact
    cnn = {**MANIFESTS, "distill": {**MANIFESTS["distill"], "student": {"init": "cnn"}}}
    lines = kind_lines(compared_rows(_rows()), cnn, 0.90)
    assert [line.split(":")[0] for line in lines if line.startswith("- ")] == [
        "- **teacher** (transformer)",
        "- **cnn** student",
    ]
    assert kind_lines(compared_rows(_rows()), {}, 0.90) == []  # rows alone name no kind


def test_terminal_table_matches_readme(report):
    """The terminal shows the README's cpu table: same artifacts, same cells."""
    import re

    table = terminal_table(_rows())
    lines = table.splitlines()
    for name in ARTIFACTS:
        found = sum(line.split()[0] == name for line in lines if line.strip())
        assert found == 1, name  # the cuda block lists its skip reasons, not artifacts
    assert "torch.cuda.is_available() is False  teacher fp32" in table
    readme = Path(report["readme"]).read_text()
    cpu = readme.split("## cpu:", 1)[1].split("\n## ", 1)[0]
    readme_rows = {
        cells[0]: cells
        for line in cpu.splitlines()
        if line.startswith("| ") and not line.startswith("| artifact")
        for cells in [[c.strip() for c in line.strip("|").split(" | ")]]
    }
    terminal_rows = {}
    for line in table.split("\n\n", 1)[0].splitlines()[3:]:  # the cpu block, after its header
        cells = re.split(r"\s{2,}", line.strip())
        terminal_rows[cells[0]] = cells
    assert set(readme_rows) == set(terminal_rows) and len(readme_rows) >= 3
    for name, cells in readme_rows.items():
        assert terminal_rows[name] == cells, name


def test_pareto_ignores_rows_without_accuracy():
    rows = _rows()
    for r in rows:
        if r["artifact"] == "student":
            r["accuracy"] = None
    assert "student" not in {p["artifact"] for p in pareto_points(rows)}
