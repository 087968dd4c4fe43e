"""Transfer across tasks (#17): sampling rules, λ weighting, heads, multi-head export, the stages."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch

from distill.combined import CombinedLoss, LossSpec, Schedule
from distill.heads import TaskHeads, load_heads, output_layer
from distill.multitask import TaskBatchSampler
from distill.trainer import DistillationModule, TeacherOutputs
from pipelines.core.errors import ConfigError
from tests.conftest import ROOT, kill_when, tiny_bert, tiny_recipe, write_recipe

SOURCES = [
    {
        "name": "polarity",
        "weight": 0.5,
        "task": {"text_columns": ["text"], "label_column": "label", "labels": ["neg", "pos"]},
        "data": {"source": "synthetic:sentiment_hard", "synthetic_rows": 320, "max_length": 24},
    },
    {
        "name": "topic",
        "weight": 0.25,
        "task": {
            "text_columns": ["text"],
            "label_column": "label",
            "labels": [
                "music",
                "sports",
                "cooking",
                "travel",
                "science",
                "history",
                "movies",
                "gardening",
            ],
        },
        "data": {"source": "synthetic:topic", "synthetic_rows": 320, "max_length": 24},
    },
]


def transfer_recipe(**transfer):
    raw = tiny_recipe(
        data={"source": "synthetic:sentiment", "synthetic_rows": 320, "max_length": 24},
        teacher={"epochs": 2},
        distill={"epochs": 1},
        quantize={"methods": ["dynamic"], "teacher": False, "peer": False},
        export={"teacher": False},
    )
    raw["transfer"] = {"target": "sentiment", "sources": SOURCES, **transfer}
    return raw


# -- sampling rules ---------------------------------------------------------------------------


def test_proportional_sees_every_row_once_in_single_task_batches():
    tasks = np.array([0] * 50 + [1] * 13 + [2] * 40)
    sampler = TaskBatchSampler(tasks, batch_size=8, rule="proportional", seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 7 + 2 + 5
    assert sorted(i for b in batches for i in b) == list(range(len(tasks)))
    assert all(len(set(tasks[b])) == 1 for b in batches)  # one task per batch
    assert Counter(int(tasks[b[0]]) for b in batches) == {0: 7, 1: 2, 2: 5}


def test_order_is_a_function_of_seed_and_epoch():
    tasks = np.array([0] * 40 + [1] * 40)
    a, b = TaskBatchSampler(tasks, 8, seed=1), TaskBatchSampler(tasks, 8, seed=1)
    a.set_epoch(2)
    b.set_epoch(2)
    assert list(a) == list(b)  # what a resumed run relies on
    b.set_epoch(3)
    assert list(TaskBatchSampler(tasks, 8, seed=1)) != list(b)


def test_temperature_lifts_the_small_task_and_round_robin_alternates():
    tasks = np.array([0] * 9000 + [1] * 1000)
    proportional = TaskBatchSampler(tasks, 10, "proportional", seed=0).task_order()
    temperature = TaskBatchSampler(tasks, 10, "temperature", temperature=2.0, seed=0).task_order()
    assert len(proportional) == len(temperature) == 1000  # an epoch is the same length
    assert sum(proportional) == 100
    expected = 1000**0.5 / (1000**0.5 + 9000**0.5)  # p_t ∝ rows^(1/T) = 0.25
    assert abs(sum(temperature) / 1000 - expected) < 0.05
    robin = TaskBatchSampler(tasks, 10, "round_robin", seed=0)
    assert robin.task_order()[:6] == [0, 1, 0, 1, 0, 1]
    batches = list(robin)
    assert all(len(set(tasks[b])) == 1 for b in batches)


# -- heads and λ ------------------------------------------------------------------------------


def _tiny_with_heads(tmp_path):
    model, tokenizer = tiny_bert(tmp_path / "tok", ["good", "bad", "music", "film"])
    heads = TaskHeads.for_model(model, {"a": ["n", "p"], "b": ["x", "y", "z"]})
    return model, tokenizer, heads


def test_heads_switch_the_output_layer_and_round_trip(tmp_path):
    model, tokenizer, heads = _tiny_with_heads(tmp_path)
    batch = tokenizer(["good film", "bad music"], return_tensors="pt", padding=True)
    captured = {}
    output_layer(model).register_forward_hook(lambda m, a, o: captured.update(x=a[0]))
    with torch.no_grad():
        default = model(**batch).logits
        with heads.use(model, "b"):
            other = model(**batch).logits
    assert default.shape == (2, 2) and other.shape == (2, 3)
    expected = captured["x"] @ heads.heads["b"].weight.T + heads.heads["b"].bias
    torch.testing.assert_close(other, expected)
    with torch.no_grad():
        assert torch.equal(model(**batch).logits, default)  # the hook is gone after the block
    model.save_pretrained(tmp_path / "m")
    heads.save(tmp_path / "m")
    again = load_heads(tmp_path / "m", model)
    assert again.names == ["a", "b"]
    assert torch.equal(again.heads["b"].weight, heads.heads["b"].weight)
    with pytest.raises(Exception, match="unknown task 'c'"), heads.use(model, "c"):
        pass


def test_lambda_scales_the_task_loss_and_its_gradient(tmp_path):
    """Fails when λ is ignored: the weighted total and the head's gradient scale with it."""
    model, tokenizer, heads = _tiny_with_heads(tmp_path)
    batch = dict(
        tokenizer(["good film", "bad music", "good music"], return_tensors="pt", padding=True)
    )
    labels = torch.tensor([0, 2, 1])
    teacher = TeacherOutputs(torch.randn(3, 3))
    task = torch.tensor([1, 1, 1])  # task "b"
    results = {}
    for lam in (1.0, 0.25, 0.0):
        module = DistillationModule(
            model, CombinedLoss(LossSpec(), 32, 32), heads, {"a": Schedule(1.0), "b": Schedule(lam)}
        )
        module.zero_grad()
        out = module(labels=labels, teacher=teacher, task=task, **batch)
        out.loss.backward()
        results[lam] = (out, heads.heads["b"].weight.grad.clone())
    full, quarter, zero = results[1.0], results[0.25], results[0.0]
    torch.testing.assert_close(quarter[0].loss, 0.25 * full[0].loss)
    torch.testing.assert_close(quarter[1], 0.25 * full[1])
    assert torch.count_nonzero(zero[1]) == 0 and torch.count_nonzero(full[1]) > 0
    assert set(full[0].terms) == {"b/task", "b/kd"}  # terms named per task
    assert full[0].weights["lambda_b"] == 1.0 and quarter[0].weights["b/kd"] == 0.25 * 0.5
    torch.testing.assert_close(full[0].terms["b/kd"], quarter[0].terms["b/kd"])  # unweighted


# -- export -----------------------------------------------------------------------------------


def test_grafted_heads_match_pytorch_on_every_output(tmp_path):
    from export.heads import add_task_heads
    from export.onnx_export import export_classifier

    model, tokenizer, heads = _tiny_with_heads(tmp_path)
    folder = tmp_path / "m"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    export_classifier(folder, tmp_path / "onnx")
    names = add_task_heads(
        tmp_path / "onnx" / "model.onnx",
        {n: (h.weight.detach().numpy(), h.bias.detach().numpy()) for n, h in heads.heads.items()},
    )
    assert names == ["logits", "logits_b"]
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    batch = tokenizer(["good film film", "bad music"], padding=True, return_tensors="np")
    feed = {i.name: batch[i.name].astype(np.int64) for i in session.get_inputs()}
    logits, logits_b = session.run(["logits", "logits_b"], feed)
    with torch.no_grad():
        pt = {k: torch.from_numpy(v) for k, v in feed.items()}
        np.testing.assert_allclose(logits, model(**pt).logits.numpy(), atol=1e-5)
        with heads.use(model, "b"):
            np.testing.assert_allclose(logits_b, model(**pt).logits.numpy(), atol=1e-5)


# -- recipe -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("transfer", "extra", "message"),
    [
        ({"target": "Bad-Name"}, {}, "task name 'Bad-Name' is not allowed"),
        ({"target": "polarity"}, {}, "repeat"),
        ({}, {"distill": {"qat": {"epochs": 0.5}}}, "distill.qat.epochs: not supported"),
        ({}, {"search": {"enabled": True}}, "search.enabled: not supported"),
        ({"sampling": "random"}, {}, "transfer.sampling"),
    ],
)
def test_transfer_recipes_that_cannot_run_are_refused(tmp_path, transfer, extra, message):
    from pipelines.core.config import load_recipe

    raw = transfer_recipe(**transfer)
    for section, values in extra.items():
        raw[section] = {**raw.get(section, {}), **values}
    with pytest.raises(ConfigError, match=message):
        load_recipe(write_recipe(tmp_path / "r.yaml", raw))


def test_single_task_stage_hashes_do_not_see_the_transfer_section(tmp_path):
    from pipelines.core.config import load_recipe
    from pipelines.run.hashing import stage_hash
    from pipelines.run.registry import STAGES

    plain = load_recipe(write_recipe(tmp_path / "a.yaml", tiny_recipe()))
    raw = tiny_recipe()
    raw["transfer"] = {"target": "target", "sources": []}  # the defaults, spelled out
    spelled = load_recipe(write_recipe(tmp_path / "b.yaml", raw))
    with_sources = load_recipe(write_recipe(tmp_path / "c.yaml", transfer_recipe()))
    stage = STAGES["distill"]
    assert stage_hash(plain, stage, {}, "d") == stage_hash(spelled, stage, {}, "d")
    assert stage_hash(plain, stage, {}, "d") != stage_hash(with_sources, stage, {}, "d")


# -- the stages, end to end -------------------------------------------------------------------


def _run(path, runs, stage):
    cmd = [sys.executable, "-m", "pipelines", "run", str(path), "--stage", stage]
    result = subprocess.run(
        cmd + ["--runs-dir", str(runs)], cwd=ROOT, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout[-1500:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def transfer_run(tmp_path_factory):
    """(recipe path, runs folder) of one multi-task run through the bundle, read by the tests
    below (the bench and bundle settings leave the earlier stages as a run to quantize has them)."""
    tmp = tmp_path_factory.mktemp("transfer")
    raw = transfer_recipe()
    raw["bench"] = {
        "batch_sizes": [1],
        "seq_lens": [16],
        "min_runs": 2,
        "min_seconds": 0.0,
        "warmup_runs": 1,
        "withhold_noisy": False,
        "artifacts": ["student-int8-dynamic"],  # the bundled one; each is a worker process
    }
    raw["bundle"] = {
        "artifact": "student-int8-dynamic",
        "cold_start_runs": 1,
        "latency_sentences": 4,
        "latency_repeats": 1,
    }
    path = write_recipe(tmp / "r.yaml", raw)
    _run(path, tmp / "runs", "bundle")
    return path, tmp / "runs"


@pytest.mark.slow  # a multi-task run through the bundle
def test_multitask_run_per_task_metrics_lambda_and_export_parity(transfer_run):
    from pipelines.core.config import load_recipe
    from pipelines.core.models import load_stage_model
    from pipelines.multitask.evaluate import evaluate_tasks
    from pipelines.multitask.tasks import tokenized_tasks, transfer_tasks

    path, runs = transfer_run
    run = runs / "tiny"
    teacher = json.loads((run / "teacher" / "manifest.json").read_text())
    distill = json.loads((run / "distill" / "manifest.json").read_text())
    # λ: what the manifests say is what was applied (logged weighted = λ × unweighted)
    assert teacher["training"]["weights"]["topic"]["start"] == 0.25
    assert distill["loss"]["task_weights"]["polarity"]["start"] == 0.5
    logged = [
        ast.literal_eval(line[line.index("{") :])
        for line in (run / "teacher" / "log.txt").read_text().splitlines()
        if "loss_topic_weighted" in line and "{'loss'" in line
    ]
    assert logged
    for entry in logged:
        assert entry["lambda_topic"] == 0.25
        assert entry["loss_topic_weighted"] == pytest.approx(0.25 * entry["loss_topic"], rel=1e-3)
    # per-task metrics: each head on its own eval split, as recomputed from the saved student
    recipe = load_recipe(path)
    student, tokenizer = load_stage_model(run / "distill", recipe.security)
    heads = load_heads(run / "distill", student)
    tasks = transfer_tasks(recipe)
    sets = tokenized_tasks(tasks, tokenizer, "eval")
    again = evaluate_tasks(student, heads, tasks, sets, tokenizer, 64, "cpu", "test")
    assert list(distill["tasks"]) == ["sentiment", "polarity", "topic"]
    for name, metrics in again.items():
        assert distill["tasks"][name]["accuracy"] == pytest.approx(metrics["accuracy"])
        assert distill["tasks"][name]["eval_rows"] == len(sets[[t.name for t in tasks].index(name)])
    assert distill["metrics"]["accuracy"] == pytest.approx(again["sentiment"]["accuracy"])
    assert again["topic"]["accuracy"] > 0.3  # 8 labels: learnt, not chance (0.125)
    # export: every head checked for parity, and the graph has one output per task
    export = json.loads((run / "export" / "manifest.json").read_text())
    for artifact in ("student-onnx", "student-onnx-O2"):
        per_task = export["exports"][artifact]["tasks"]
        assert set(per_task) == {"polarity", "topic"}
        assert all(r["passed"] and r["max_abs_diff"] <= 1e-3 for r in per_task.values())
    quantize = json.loads((run / "quantize" / "manifest.json").read_text())
    int8 = quantize["quantized"]["student-int8-dynamic"]["tasks"]
    assert set(int8) == {"polarity", "topic"} and int8["topic"]["eval_rows"] == len(sets[2])


@pytest.mark.slow  # a multi-task run through the bundle
def test_bundle_predicts_each_task_with_its_labels(transfer_run):
    _, runs = transfer_run
    bundle = runs / "tiny" / "bundle"
    config = json.loads((bundle / "distillery.json").read_text())
    assert [t["name"] for t in config["tasks"]] == ["sentiment", "polarity", "topic"]
    assert config["tasks"][2]["output_name"] == "logits_topic"
    line = "the music part : the story is not great\n"
    for task, labels in (("topic", SOURCES[1]["task"]["labels"]), ("polarity", ["neg", "pos"])):
        out = subprocess.run(
            [sys.executable, "predict.py", "--task", task, "--probabilities"],
            input=line,
            cwd=bundle,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        answer = json.loads(out.stdout)
        assert list(answer["probabilities"]) == labels
    default = json.loads(
        subprocess.run(
            [sys.executable, "predict.py", "--probabilities"],
            input=line,
            cwd=bundle,
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
    )
    assert list(default["probabilities"]) == ["negative", "positive"]
    bad = subprocess.run(
        [sys.executable, "predict.py", "--task", "nope"],
        input=line,
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "this bundle's tasks: sentiment, polarity, topic" in bad.stderr


@pytest.mark.slow  # three teacher phases, killed and resumed, in two CLI processes
def test_sequential_teacher_resumes_inside_its_second_phase(tmp_path):
    raw = transfer_recipe(mode="sequential", source_epochs=1)
    raw["teacher"]["epochs"] = 6
    raw["train"] = {"device": "cpu", "save_steps": 10, "logging_steps": 10}
    path = write_recipe(tmp_path / "r.yaml", raw)
    runs = tmp_path / "runs"
    cmd = [
        sys.executable,
        "-m",
        "pipelines",
        "run",
        str(path),
        "--stage",
        "teacher",
        "--runs-dir",
        str(runs),
    ]
    target_phase = runs / "tiny" / "teacher" / "checkpoints" / "target-sentiment"
    kill_when(cmd, (target_phase, "checkpoint-*/trainer_state.json"))
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = runs / "tiny" / "teacher"
    manifest = json.loads((folder / "manifest.json").read_text())
    phases = manifest["training"]["phases"]
    assert [p["phase"] for p in phases] == ["source-polarity", "source-topic", "target-sentiment"]
    assert phases[-1]["resumed_from"] and phases[-1]["global_step"] == 6 * 20  # 320 rows / 16
    assert manifest["training"]["weights"].startswith("not used")
    log = (folder / "log.txt").read_text()
    assert "teacher phase source-polarity already done" in log
    assert "resuming teacher phase target-sentiment from" in log
    assert set(manifest["tasks"]) == {"sentiment", "polarity", "topic"}
