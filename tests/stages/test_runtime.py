"""Issue #16: the peer baseline, OpenVINO as a second CPU engine, interleaved benchmark rounds
that stay honest on a shared machine, and the report's headline against the peer path."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from pipelines.core.config import load_recipe
from pipelines.run.runner import run_pipeline
from quantize.openvino import available as openvino_missing
from tests.conftest import tiny_bert, tiny_recipe, write_recipe

WORDS = [f"w{i}" for i in range(40)]
needs_openvino = pytest.mark.skipif(
    openvino_missing() is not None, reason="needs the [openvino] extra"
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny classifier exported by optimum's main_export, as optimum-cli would."""
    import torch

    from export.onnx_export import export_classifier

    tmp = tmp_path_factory.mktemp("runtime")
    model, _ = tiny_bert(tmp / "model", WORDS)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)  # logits that differ between rows
    model.save_pretrained(tmp / "model")
    export_classifier(tmp / "model", tmp / "onnx")
    return tmp


def _rows(tokenizer_dir, n=48, seed=0):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.choice(WORDS, rng.integers(3, 15))) for _ in range(n)]
    return tok, [dict(tok(t)) for t in texts]


# ---------------------------------------------------------------- the peer path


def test_peer_is_exactly_what_optimum_cli_makes(exported, tmp_path):
    import onnx

    from quantize.peer import quantize_like_optimum

    result = quantize_like_optimum(
        exported / "onnx" / "model.onnx", tmp_path / "peer" / "model.onnx", "avx512_vnni"
    )
    assert (
        result["call"] == "AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False)"
    )
    cli = tmp_path / "cli"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "optimum.commands.optimum_cli",
            "onnxruntime",
            "quantize",
            "--onnx_model",
            str(exported / "onnx"),
            "--avx512_vnni",
            "-o",
            str(cli),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-1500:]
    ours = onnx.load(str(tmp_path / "peer" / "model.onnx"))
    theirs = onnx.load(str(cli / "model_quantized.onnx"))
    assert [n.op_type for n in ours.graph.node] == [n.op_type for n in theirs.graph.node]
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in theirs.graph.initializer}
    for tensor in ours.graph.initializer:  # same quantized weights, bit for bit
        np.testing.assert_array_equal(onnx.numpy_helper.to_array(tensor), weights[tensor.name])
    assert result["quantized_ops"] > 0 and (tmp_path / "peer" / "tokenizer.json").is_file()


# ---------------------------------------------------------------- OpenVINO


@needs_openvino
def test_openvino_int8_tracks_fp32_and_runs_at_f32_precision(exported, tmp_path):
    from export.parity import onnx_logits
    from modelkit.batching import pad_rows
    from quantize.openvino import OVClassifier, quantize_openvino

    tok, rows = _rows(exported / "onnx")
    result = quantize_openvino(exported / "onnx" / "model.onnx", tmp_path / "ov", rows[:32])
    assert result["precision_hint"] == "f32" and result["quantized_ops"] > 0
    assert (tmp_path / "ov" / "model.xml").is_file() and (tmp_path / "ov" / "model.bin").is_file()
    model = OVClassifier(tmp_path / "ov", threads=1)
    batch = pad_rows(rows[32:], tok.pad_token_id, model.input_names)
    ov_logits = model.logits(batch)
    assert model.precision() == "f32"  # not the bf16 the plugin would pick on this CPU
    from datasets import Dataset

    reference = onnx_logits(exported / "onnx", Dataset.from_list(rows[32:]), tok, batch_size=64)
    assert np.abs(ov_logits - reference).max() < 0.1 * np.abs(reference).max()
    assert (ov_logits.argmax(-1) == reference.argmax(-1)).mean() >= 0.9
    again = model.logits(batch)  # the compiled shape is reused: same numbers
    np.testing.assert_array_equal(again, ov_logits)


@pytest.mark.slow  # a run from the teacher to the report
def test_without_openvino_the_method_is_skipped_and_the_report_says_why(tmp_path, monkeypatch):
    import quantize.openvino

    reason = "OpenVINO is not installed (openvino missing): pip install 'distillery[openvino]'"
    monkeypatch.setattr(quantize.openvino, "available", lambda: reason)  # what EXTRAS reads
    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe(
                teacher={"epochs": 1},
                distill={"epochs": 0.25, "batch_size": 16},
                export={"optimize": "none", "teacher": False},
                quantize={"methods": ["dynamic", "openvino"], "teacher": False},
                bench={
                    "batch_sizes": [1],
                    "seq_lens": [16],
                    "threads": [1],
                    "min_runs": 3,
                    "min_seconds": 0.0,
                    "rounds": 2,
                    "bucket": False,
                    "gpu": False,
                },
            ),
        )
    )
    done = run_pipeline(recipe, tmp_path / "runs", target="report", echo=lambda _: None)
    assert done["quantize"]["skipped"] == {"student-int8-openvino": reason}
    rows = json.loads((tmp_path / "runs" / "tiny" / "bench" / "rows.json").read_text())["rows"]
    absent = [r for r in rows if r["artifact"] == "student-int8-openvino"]
    assert absent and absent[0]["skipped"] == reason
    readme = (tmp_path / "runs" / "tiny" / "report" / "README.md").read_text()
    assert f"| student-int8-openvino | openvino | int8 | – | – | skipped: {reason}" in readme
    assert "student-int8-peer (baseline)" in readme  # the peer row is there and marked


# ---------------------------------------------------------------- interleaved rounds


def test_rounds_interleave_the_workers_and_rotate_their_order(monkeypatch):
    from pipelines.bench import jobs
    from pipelines.bench.artifacts import Artifact

    calls = []

    class FakeWorker:
        def __init__(self, job, timeout_s):
            self.job, self.header = job, {"load_s": 0.1, "import_s": 0.1}

        def request(self, command):
            calls.append((self.job["artifact"], command["round"]))
            cells = [{"batch": 1, "seq": 8, "times_ms": [1.0, 1.1, 0.9]}]
            return {"event": "round", "cells": cells}

        def close(self):
            return {"peak_rss_mb": 10.0}

    monkeypatch.setattr(jobs, "Worker", FakeWorker)
    monkeypatch.setattr(jobs, "PAUSE_S", 0.0)
    settings = {
        "batch_sizes": [1],
        "seq_lens": [8],
        "min_runs": 6,
        "min_seconds": 0.0,
        "warmup_runs": 1,
        "real_length": None,
    }
    plan = [
        (
            Artifact(n, "onnxruntime", "/x"),
            {
                **jobs.make_job(Artifact(n, "onnxruntime", "/x"), "cpu", "fp32", 1, settings),
                "vocab_size": 5,
            },
        )
        for n in ("a", "b", "c")
    ]
    rows = jobs.run_jobs(plan, timeout_s=10, rounds=3)
    timed = [c for c in calls if c[1] >= 0]
    assert [c[0] for c in timed] == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert {c[0] for c in calls if c[1] == -1} == {"a", "b", "c"}  # an untimed round first
    assert all(r["rounds"] == 3 and len(r["round_p50_ms"]) == 3 for r in rows)
    assert all(r["runs"] == 9 and "noisy" not in r for r in rows)


def test_a_cell_disturbed_in_one_round_is_noisy_but_machine_drift_cancels():
    from pipelines.bench.jobs import cell_row, round_drift

    steady = [[1.0] * 20, [1.0] * 20, [1.0] * 20]
    slow_round = [[1.0] * 20, [1.0] * 20, [3.0] * 20]  # something else ran during its round 3
    times = {0: {(1, 8): steady}, 1: {(1, 8): steady}, 2: {(1, 8): slow_round}}
    drift = round_drift(times, (1, 8), 3)
    assert drift == [1.0, 1.0, 1.0]  # one artifact's trouble is not the machine's
    base = {"artifact": "x"}
    assert "rounds differ 3.00×" in cell_row(base, 1, 8, slow_round, drift)["noisy"]
    assert "noisy" not in cell_row(base, 1, 8, steady, drift)
    # The whole machine 3× slower in round 3: every artifact alike, so nothing is flagged.
    everyone = {i: {(1, 8): slow_round} for i in range(3)}
    drift = round_drift(everyone, (1, 8), 3)
    assert drift == pytest.approx([1.0, 1.0, 3.0])
    assert "noisy" not in cell_row(base, 1, 8, slow_round, drift)
    tail = [[1.0] * 95 + [9.0] * 5] * 3
    assert "p99 9.0× p50" in cell_row(base, 1, 8, tail, [1.0, 1.0, 1.0])["noisy"]


def test_speedups_are_taken_within_rounds():
    from pipelines.report.speed import busy, show, speedup

    teacher = {"p50_ms": 20.0, "round_p50_ms": [10.0, 40.0, 20.0]}  # machine speed changed
    student = {"p50_ms": 2.0, "round_p50_ms": [1.0, 4.0, 2.0]}  # but 10× in every round
    assert speedup(teacher, student) == (10.0, 10.0, 10.0)
    assert show(speedup(teacher, student)) == "10.00×"
    pooled = {"p50_ms": 4.0}
    assert speedup(teacher, pooled) == (5.0, 5.0, 5.0)  # no rounds: pooled p50s
    assert busy([], {"before": {"busy_pct": 80.0}, "steal_pct": 0.0}, 2) == [
        "other processes used 80.0% of the CPUs just before the bench"
    ]
    assert busy([], {"before": {"busy_pct": 1.0}, "steal_pct": 12.0}, 2) == [
        "12.0% of CPU time was stolen by other guests during the bench"
    ]


# ---------------------------------------------------------------- the report's headline


def _bench_rows(noisy_teacher=False):
    def row(name, p50, rounds, role="model", acc=0.9, backend="onnxruntime", precision="int8"):
        r = {
            "artifact": name,
            "backend": backend,
            "device": "cpu",
            "precision": precision,
            "batch": 1,
            "seq": 128,
            "threads": 2,
            "p50_ms": p50,
            "p90_ms": p50 * 1.1,
            "p99_ms": p50 * 1.2,
            "throughput": 1000 / p50,
            "accuracy": acc,
            "size_mb": 1.0,
            "round_p50_ms": rounds,
            "role": role,
            "mode": "grid",
        }
        return r

    rows = [
        row("teacher", 20.0, [20.0, 22.0, 18.0], backend="torch", precision="fp32", acc=0.91),
        row("student-int8-openvino", 2.0, [2.0, 2.2, 1.8], backend="openvino", acc=0.905),
        row("student-int8-dynamic", 2.6, [2.6, 2.9, 2.3], acc=0.904),
        row("student-int8-peer", 3.0, [3.0, 3.3, 2.7], role="baseline", acc=0.903),
    ]
    if noisy_teacher:
        rows[0]["noisy"] = "its rounds differ 2.50× beyond the machine's drift"
    return rows


def test_report_opens_with_the_summary_and_the_ratio_against_the_peer(tmp_path):
    from pipelines.report.assemble import write_report

    out = write_report(tmp_path, _bench_rows(), {}, {"cpu": "x", "isa": [], "cores": 2})
    text = (tmp_path / "README.md").read_text().splitlines()
    assert out["recommended"] == "student-int8-openvino"  # the peer is a baseline, never picked
    assert text[2] == "- **Recommended: `student-int8-openvino`** (openvino, int8)."
    assert text[3].startswith("- Accuracy 0.9050, 99.5% of the teacher's 0.9100")
    assert "**10.00×** the teacher's fp32 PyTorch" in text[4]
    assert "**1.50×** the peer path (`student-int8-peer`" in text[4]
    assert "student-int8-peer (baseline)" in "\n".join(text)


def test_a_recommended_teacher_int8_is_held_against_the_peers_int8_teacher(tmp_path):
    """Students under the floor, the teacher's int8 recommended: its peer is optimum-cli's int8
    of the teacher (2.5× slower here), not the peer's int8 student (faster, far less accurate)."""
    from pipelines.report.assemble import write_report

    rows = _bench_rows()
    for r in rows[1:]:
        r["accuracy"] = 0.80  # every student artifact under the floor
    teachers = (
        ("teacher-int8-dynamic", 8.0, 0.91, "model"),
        ("teacher-int8-peer", 20.0, 0.905, "baseline"),
    )
    for name, p50, acc, role in teachers:
        rows.append(
            dict(rows[3], artifact=name, p50_ms=p50, p90_ms=p50 * 1.1, p99_ms=p50 * 1.2,
                 round_p50_ms=[p50] * 3, accuracy=acc, role=role)
        )  # fmt: skip
    for name, per_s in (("teacher-int8-dynamic", 400.0), ("teacher-int8-peer", 100.0)):
        grid = next(r for r in rows if r["artifact"] == name)
        rows.append(
            dict(grid, mode="real_length", batch=32, rows=872, bucket_sentences_per_s=per_s)
        )
    out = write_report(tmp_path, rows, {}, {"cpu": "x", "isa": [], "cores": 2})
    text = (tmp_path / "README.md").read_text().splitlines()
    assert out["recommended"] == "teacher-int8-dynamic"
    fixed, real = text[4], text[5]
    assert (
        "**2.50×** the peer path (`teacher-int8-peer`: optimum-cli's int8 of the same teacher"
        in fixed
    )
    assert "**4.00×** the peer path (`teacher-int8-peer`" in real
    assert "student-int8-peer`:" not in fixed + real

    without = [r for r in rows if r["artifact"] != "teacher-int8-peer"]  # not benched
    write_report(tmp_path, without, {}, {"cpu": "x", "isa": [], "cores": 2})
    fixed = (tmp_path / "README.md").read_text().splitlines()[4]
    assert "no `teacher-int8-peer` row" in fixed and "student-int8-peer" not in fixed


def test_noisy_compared_cells_withhold_the_recommendation(tmp_path):
    from pipelines.report.assemble import write_report

    out = write_report(tmp_path, _bench_rows(noisy_teacher=True), {}, {"cpu": "x", "cores": 2})
    assert out["recommended"] is None and "noisy: teacher" in out["withheld"]
    text = (tmp_path / "README.md").read_text()
    assert text.splitlines()[2].startswith("- **No recommendation:** the measurements")
    assert "## Model card" not in text


def test_only_noisy_cells_that_could_change_the_pick_withhold_it(tmp_path):
    from pipelines.report.assemble import write_report

    rows = _bench_rows()
    # dynamic's rounds were disturbed, but even its fastest round (2.3 ms) is slower than the pick
    rows[2]["noisy"] = "its rounds differ 2.00× beyond the machine's drift"
    out = write_report(tmp_path, rows, {}, {"cpu": "x", "cores": 2})
    assert out["recommended"] == "student-int8-openvino" and out["withheld"] is None
    assert "student-int8-dynamic b1/s128/2t" in (tmp_path / "README.md").read_text()  # reported
    # one fast round says it may be the faster artifact: then the pick is not trustworthy
    rows[2]["round_p50_ms"] = [2.6, 2.9, 1.9]
    rows[2]["p50_ms"] = 2.6
    out = write_report(tmp_path / "again", rows, {}, {"cpu": "x", "cores": 2})
    assert out["recommended"] is None and "noisy: student-int8-dynamic" in out["withheld"]


def test_openvino_pads_lengths_to_a_few_shapes_without_changing_logits(exported, tmp_path):
    from modelkit.batching import pad_rows
    from quantize.openvino import OVClassifier, quantize_openvino

    tok, rows = _rows(exported / "onnx")
    quantize_openvino(exported / "onnx" / "model.onnx", tmp_path / "ov", rows[:32])
    static = OVClassifier(tmp_path / "ov", threads=1)
    dynamic = OVClassifier(tmp_path / "ov", threads=1, static_shapes=False)  # no padding
    for n in (3, 9, 13):
        batch = pad_rows(
            [{**r, **{k: v[:n] for k, v in r.items() if isinstance(v, list)}} for r in rows[32:40]],
            tok.pad_token_id,
            static.input_names,
        )
        assert batch[static.input_names[0]].shape[1] == n
        np.testing.assert_allclose(static.logits(batch), dynamic.logits(batch), atol=1e-4)
    assert list(static._compiled) == [(8, 16)]  # three lengths, one compiled shape
