"""The report's accuracies with their intervals, its within-noise sentences, its baselines and
its two plots' layout, on synthetic rows (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.data.confidence import interval, interval_halfwidth
from pipelines.report.assemble import write_report
from pipelines.report.comparisons import int8_teacher
from pipelines.report.noise import Evidence, mcnemar_p
from pipelines.report.plots import accuracy_range, pareto_points, plot_pareto

MACHINE = {"cpu": "Test CPU", "arch": "x86_64", "cores": 2, "isa": ["avx2"]}
# name: (backend, precision, accuracy, p50 ms at 2 threads, role)
ARTIFACTS = {
    "teacher": ("torch", "fp32", 0.900, 1.00, "model"),
    "student": ("torch", "fp32", 0.890, 0.50, "model"),
    "student-onnx": ("onnxruntime", "fp32", 0.890, 0.30, "model"),
    "student-int8-dynamic": ("onnxruntime", "int8", 0.890, 0.100, "model"),
    "student-int8-static": ("onnxruntime", "int8", 0.885, 0.095, "model"),  # the pick
    "student-int8-openvino": ("openvino", "int8", 0.800, 0.050, "model"),  # under the floor
    "teacher-int8-dynamic": ("onnxruntime", "int8", 0.899, 0.40, "model"),
    "teacher-int8-static": ("onnxruntime", "int8", 0.880, 0.38, "model"),
    "student-int8-peer": ("onnxruntime", "int8", 0.886, 0.12, "baseline"),
    "teacher-int8-peer": ("onnxruntime", "int8", 0.897, 0.42, "baseline"),
}


def _rows(artifacts=ARTIFACTS) -> list[dict]:
    rows = []
    for name, (backend, precision, acc, ms, role) in artifacts.items():
        for threads in (1, 2):
            for seq in (16, 32):
                p50 = ms * seq / 32 * (2 / threads)
                rows.append({"artifact": name, "backend": backend, "device": "cpu",
                             "precision": precision, "accuracy": acc, "size_mb": 1.0,
                             "role": role, "mode": "grid", "batch": 1, "seq": seq,
                             "threads": threads, "p50_ms": p50, "p90_ms": 1.1 * p50,
                             "p99_ms": 1.2 * p50, "throughput": 1000 / p50})  # fmt: skip
    return rows


def _manifests(eval_rows: int) -> dict:
    return {
        "teacher": {"hash": "a" * 64, "metrics": {"accuracy": 0.9, "eval_rows": eval_rows}},
        "distill": {"hash": "b" * 64, "metrics": {"accuracy": 0.89, "eval_rows": eval_rows}},
    }


def _predictions(rows: int, accuracies: dict[str, float]) -> dict:
    """Stored predictions where every artifact is wrong on a prefix of the rows (nested errors:
    the most a paired test can tell apart)."""
    labels = [i % 2 for i in range(rows)]
    out = {}
    for name, acc in accuracies.items():
        wrong = round(rows * (1 - acc))
        out[name] = [1 - y if i < wrong else y for i, y in enumerate(labels)]
    return {"labels": labels, "predictions": out}


def test_mcnemar_exact_p_values():
    # 6 discordant rows all one way: 2 · (½)^6
    assert mcnemar_p([1] * 6 + [1] * 4, [0] * 6 + [1] * 4) == (pytest.approx(2 / 64), 6)
    # 5 against 1: 2 · (C(6,0) + C(6,1)) / 2^6
    assert mcnemar_p([1] * 5 + [0], [0] * 5 + [1]) == (pytest.approx(14 / 64), 6)
    assert mcnemar_p([1, 0, 1], [1, 0, 1]) == (1.0, 0)
    with pytest.raises(ValueError, match="same eval rows"):
        mcnemar_p([1, 0], [1])


def test_paired_test_tells_apart_what_overlapping_intervals_cannot():
    """0.95 vs 0.90 on 200 rows: the intervals overlap, but the 10 rows that differ all favour
    one artifact, which the paired test sees (p ≈ 0.002)."""
    a = {"artifact": "a", "accuracy": 0.95}
    b = {"artifact": "b", "accuracy": 0.90}
    manifests = _manifests(200)
    by_overlap = Evidence.of(manifests).compare(a, b)
    assert by_overlap.within_noise and "intervals overlap" in by_overlap.how
    paired = Evidence.of(manifests, _predictions(200, {"a": 0.95, "b": 0.90})).compare(a, b)
    assert not paired.within_noise and "McNemar" in paired.how and "10 rows" in paired.how
    # predictions that do not match the row's accuracy (another split) are not used
    stale = Evidence.of(manifests, _predictions(200, {"a": 0.80, "b": 0.90})).compare(a, b)
    assert "overlap" in stale.how
    # a score that is not a proportion gets no interval and no verdict
    pearson = {**manifests, "distill": {"config": {"task": {"type": "regression"}}}}
    assert Evidence.of(pearson).compare(a, b) is None
    assert Evidence.of(pearson).text(0.95) == "0.9500"


def test_export_agreeing_on_every_row_takes_its_models_predictions():
    manifests = {
        **_manifests(100),
        "export": {
            "exports": {
                "student-onnx": {"parity": {"agreement": 1.0, "rows": 100}},
                "student-onnx-O2": {"parity": {"agreement": 0.99, "rows": 100}},
            }
        },
    }
    ev = Evidence.of(manifests, _predictions(100, {"student": 0.9}))
    assert ev.correct["student-onnx"] == ev.correct["student"]
    assert "student-onnx-O2" not in ev.correct  # one row differs: its own predictions unknown


def test_every_accuracy_in_the_report_carries_its_interval(tmp_path):
    out = write_report(tmp_path, _rows(), _manifests(400), MACHINE, {"min_retained": 0.98})
    text = Path(out["readme"]).read_text()
    assert out["recommended"] == "student-int8-static"
    lo, hi = interval(0.885, 400)
    pick = f"0.8850 ({lo:.3f}–{hi:.3f})"
    summary = text.split("## cpu", 1)[0]
    assert f"0.8850 (95% interval {lo:.3f}–{hi:.3f}, 400 eval rows)" in summary
    table = text.split("## cpu", 1)[1].split("\n## ", 1)[0]
    assert "accuracy (95% CI)" in table
    assert f"| student-int8-static | onnxruntime | int8 | {pick} |" in table
    card = text.split("## Model card", 1)[1]
    assert f"accuracy {pick}" in card
    # the pick against the teacher and against the rule's next pick, each judged by overlap here
    assert "`student-int8-static` at 0.8850" in summary
    assert "`teacher` at 0.9000" in summary and "within noise of each other" in summary
    assert "the latter is the rule's next pick" in summary and "`student-int8-dynamic`" in summary
    # the fastest artifact under the floor 0.882: its whole interval is under it
    assert "`student-int8-openvino` at 0.8000" in summary and "is not noise" in summary
    assert "Eval split too small" not in summary


def test_a_small_eval_split_is_named_with_its_interval_width(tmp_path):
    out = write_report(tmp_path, _rows(), _manifests(40), MACHINE, {"min_retained": 0.98})
    summary = Path(out["readme"]).read_text().split("## cpu", 1)[0]
    half = interval_halfwidth(0.9, 40)  # the teacher's accuracy on 40 rows: ± 0.095
    assert "**Eval split too small:** the eval split has 40 rows" in summary
    assert f"0.90 ± {half:.3f} (95% interval)" in summary and half > 0.03
    # on 40 rows the openvino artifact's interval reaches the floor: its exclusion is noise
    assert "its interval reaches the floor" in summary


def test_paired_verdict_in_the_report(tmp_path):
    accuracies = {k: v[2] for k, v in ARTIFACTS.items()}
    out = write_report(
        tmp_path, _rows(), _manifests(1000), MACHINE, {"min_retained": 0.98},
        predictions=_predictions(1000, accuracies),
    )  # fmt: skip
    summary = Path(out["readme"]).read_text().split("## cpu", 1)[0]
    line = next(x for x in summary.splitlines() if "`teacher` at" in x)
    assert "differ beyond noise" in line and "McNemar" in line and "15 rows" in line


def test_summary_states_each_baseline_from_one_bench_run(tmp_path):
    out = write_report(tmp_path, _rows(), _manifests(400), MACHINE, {"min_retained": 0.98})
    speed = next(
        x for x in Path(out["readme"]).read_text().splitlines() if x.startswith("- Fixed shape")
    )
    # at 2 threads, seq 32: 1.00 / 0.095, 0.38 / 0.095 (teacher-int8-static is the fastest
    # int8 teacher, but less accurate than the pick: teacher-int8-dynamic is the fastest as
    # accurate), 0.12 / 0.095
    assert "**10.53×** the teacher's fp32 PyTorch" in speed
    assert "**4.21×** `teacher-int8-dynamic` (the fastest int8 teacher at equal or better" in speed
    assert "**1.26×** the peer path" in speed


def test_int8_teacher_says_when_none_is_as_accurate():
    rows = [r for r in _rows() if (r["seq"], r["threads"]) == (32, 2)]
    best = next(r for r in rows if r["artifact"] == "student-int8-static")
    assert int8_teacher(rows, best).row["artifact"] == "teacher-int8-dynamic"
    better = {**best, "accuracy": 0.95}
    fallback = int8_teacher(rows, better)
    assert fallback.row["artifact"] == "teacher-int8-static"  # the fastest int8 teacher
    assert "none of the 3 is as accurate" in fallback.note and "0.8990" in fallback.note
    assert int8_teacher([r for r in rows if r["artifact"] == "teacher"], best) is None


def _overlaps(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def test_pareto_labels_do_not_overlap_and_legends_leave_the_axes(tmp_path):
    """A crowded plot: six artifacts at nearly one latency and accuracy (the issue's stacked
    '-dynamic'/'-static' labels) plus the rest."""
    crowded = dict(ARTIFACTS)
    for i, name in enumerate(["a", "b", "c", "d", "e", "f"]):
        crowded[f"student-int8-x{name}"] = ("onnxruntime", "int8", 0.884 + i * 1e-4,
                                            0.095 * (1 + i * 0.01), "model")  # fmt: skip
    points = pareto_points(_rows(crowded))
    evidence = Evidence.of(_manifests(400))
    layout = plot_pareto(points, tmp_path / "pareto.png", evidence)
    labels = layout["labels"]
    assert len(labels) == len(crowded)
    for i, a in enumerate(labels):
        assert not any(_overlaps(a, b) for b in labels[i + 1 :]), f"label {i + 1} overlaps"
        x, y, w, h = a
        axes = layout["axes"]
        assert axes[0] <= x and x + w <= axes[0] + axes[2] and axes[1] <= y <= axes[1] + axes[3]
    for legend in layout["legends"]:  # the teacher cannot hide behind a legend
        assert not _overlaps(legend, layout["axes"])
    lo, hi = layout["ylim"]
    for p in points:  # every error bar inside the range
        span = evidence.interval(p["accuracy"])
        assert lo <= span[0] and span[1] <= hi
    fams = layout["families"]
    assert fams["teacher"] != fams["student-int8-peer"] != fams["student-int8-dynamic"]
    assert (
        fams["student-int8-dynamic"] == fams["student-int8-static"] == fams["teacher-int8-static"]
    )
    assert fams["student-int8-openvino"] != fams["student-int8-dynamic"]


def test_accuracy_axis_does_not_exaggerate():
    """Accuracies 0.9395–0.9405 without intervals: the axis spans at least 2 points, not the
    0.937–0.942 that made half a point look like a cliff."""
    points = [{"accuracy": a} for a in (0.9395, 0.9400, 0.9405)]
    lo, hi = accuracy_range(points, Evidence(rows=None))
    assert hi - lo >= 0.02 and lo < 0.9395 and hi > 0.9405
    lo, hi = accuracy_range([{"accuracy": 1.0}], Evidence(rows=50))
    assert hi <= 1.01 and lo <= interval(1.0, 50)[0]


def test_latency_plot_colours_by_family_and_styles_by_threads(tmp_path):
    out = write_report(tmp_path, _rows(), _manifests(400), MACHINE)
    layout = out["layouts"]["latency"]
    assert len(set(layout["styles"].values())) == 2 and set(layout["styles"]) == {1, 2}
    colours = layout["colours"]
    assert colours["teacher"] != colours["student-int8-peer"]  # both blue before
    assert colours["student-int8-dynamic"] == colours["teacher-int8-dynamic"]
    assert colours["student-int8-openvino"] != colours["student-int8-dynamic"]
    assert all(not _overlaps(legend, layout["axes"]) for legend in layout["legends"])
    assert len(layout["legends"]) == 2


def test_pareto_draws_an_accuracy_of_one_whose_interval_ends_at_it(tmp_path):
    """At accuracy 1.0 the Wilson upper bound is 1.0 up to float rounding: the bar above the
    point is empty, not a negative length matplotlib refuses (found by a newcomer's run)."""
    perfect = {name: (*spec[:2], 1.0, *spec[3:]) for name, spec in ARTIFACTS.items()}
    points = pareto_points(_rows(perfect))
    evidence = Evidence(rows=90)
    assert evidence.interval(1.0)[1] - 1.0 <= 0  # the bound the plot subtracts from
    layout = plot_pareto(points, tmp_path / "pareto.png", evidence)
    assert (tmp_path / "pareto.png").stat().st_size > 10_000
    assert layout["ylim"][1] >= 1.0
