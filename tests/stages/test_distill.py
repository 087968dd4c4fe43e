import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.core.config import load_recipe
from pipelines.run.runner import run_pipeline
from tests.conftest import tiny_recipe, write_recipe


@pytest.fixture(scope="module")
def teacher_run(tiny_teacher):
    """The tiny teacher, trained once per session (tests/conftest.py); each test copies its run
    folder and distills from it."""
    return tiny_teacher[0] / "runs" / "tiny" / "teacher"


def _distill(tmp_path, teacher_dir, **sections):
    shutil.copytree(teacher_dir, tmp_path / "runs" / "tiny" / "teacher")
    recipe = load_recipe(write_recipe(tmp_path / "recipe.yaml", tiny_recipe(**sections)))
    lines = []
    manifests = run_pipeline(recipe, tmp_path / "runs", target="distill", echo=lines.append)
    assert lines[0].startswith("[teacher] skipped")
    return recipe, manifests["distill"], tmp_path / "runs" / "tiny" / "distill"


def _eval_logits(folder, recipe):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from pipelines.data.loading import load_task_data, tokenize
    from pipelines.train.evaluation import predict_logits

    model = AutoModelForSequenceClassification.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    data = load_task_data(recipe)
    return model, predict_logits(
        model, tokenize(data.eval, tokenizer, recipe), tokenizer, progress=False
    )


def student_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def _kl(logits_t, logits_s):
    p_t = torch.softmax(torch.tensor(logits_t), -1)
    return float((p_t * (p_t.log() - torch.log_softmax(torch.tensor(logits_s), -1))).sum(-1).mean())


def test_config_student_approaches_the_teacher(tmp_path, teacher_run):
    recipe, manifest, folder = _distill(
        tmp_path,
        teacher_run,
        student={
            "init": "config",
            "config": {
                "num_hidden_layers": 1,
                "hidden_size": 16,
                "num_attention_heads": 2,
                "intermediate_size": 32,
            },
        },
        distill={
            "epochs": 4,
            "learning_rate": 3e-3,
            "batch_size": 16,
            "matches": ["hidden_mse"],
            "weights": {"task": 0.5, "kd": 0.5, "hidden_mse": 0.5},
        },
    )
    from pipelines.data.loading import load_task_data, tokenize
    from pipelines.train.evaluation import predict_logits

    _, logits_t = _eval_logits(teacher_run, recipe)
    student, logits_s = _eval_logits(folder, recipe)
    untrained = copy.deepcopy(student)
    torch.manual_seed(0)
    for p in untrained.parameters():  # the untrained starting point, for scale
        torch.nn.init.normal_(p, std=0.02)
    eval_set = tokenize(load_task_data(recipe).eval, student_tokenizer(folder), recipe)
    logits_u = predict_logits(untrained, eval_set, student_tokenizer(folder), progress=False)
    assert manifest["metrics"]["accuracy"] >= 0.85 * manifest["metrics"]["teacher_accuracy"]
    # measured: KL 0.0016 trained, 0.54 untrained; a barely trained student would miss this
    assert _kl(logits_t, logits_s) < 0.1 * _kl(logits_t, logits_u)
    assert manifest["loss"]["projections"] == ["hidden_mse"]  # widths 16 vs 32
    # the saved student is a plain classifier: no projection weights, reloads with no missing keys
    from safetensors.torch import load_file

    saved = set(load_file(folder / "model.safetensors"))
    assert not any("projection" in k for k in saved)
    assert saved == set(student.state_dict())
    assert student.config.hidden_size == 16


def test_teacher_layers_student_with_attention_matches_logs_every_term(tmp_path, teacher_run):
    _, manifest, folder = _distill(
        tmp_path,
        teacher_run,
        distill={
            "epochs": 1,
            "batch_size": 16,
            "matches": ["attention_kl", "hidden_cosine", "embedding_mse"],
        },
    )
    assert manifest["loss"]["layer_map"] == [[0, 1]]  # the copied layer's own position
    assert manifest["loss"]["projections"] == []  # same width
    log = (folder / "log.txt").read_text()
    for term in ("task", "kd", "attention_kl", "hidden_cosine", "embedding_mse"):
        assert f"'loss_{term}':" in log and f"'loss_{term}_weighted':" in log
    assert (
        manifest["training"]["cached_teacher_logits"] is False
    )  # matches need the teacher's forward


def test_cached_logits_match_recomputed_on_the_first_step_and_teacher_is_frozen(
    teacher_run, tmp_path
):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    from distill.api import distill, teacher_logits
    from distill.combined import LossSpec
    from distill.student import from_teacher_layers
    from pipelines.data.loading import load_task_data, tokenize

    recipe = load_recipe(write_recipe(tmp_path / "r2.yaml", tiny_recipe()))
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_run)
    tokenizer = AutoTokenizer.from_pretrained(teacher_run)
    train = tokenize(load_task_data(recipe).train, tokenizer, recipe)
    before = copy.deepcopy(teacher.state_dict())
    cached = teacher_logits(teacher, train, tokenizer, batch_size=64)
    losses = {}
    for mode in ("recompute", "cached"):
        args = TrainingArguments(
            output_dir=str(tmp_path / f"tmp-{mode}"),
            max_steps=2,
            logging_steps=1,
            per_device_train_batch_size=16,
            learning_rate=1e-3,
            use_cpu=True,
            seed=3,
            report_to="none",
            save_strategy="no",
            remove_unused_columns=False,
            disable_tqdm=True,
        )
        trainer = distill(
            teacher,
            from_teacher_layers(teacher, [1]),
            train,
            tokenizer,
            LossSpec(),
            args,
            cached_logits=cached if mode == "cached" else None,
        )
        losses[mode] = [h["loss_kd"] for h in trainer.state.log_history if "loss_kd" in h]
    assert losses["cached"][0] == pytest.approx(losses["recompute"][0], rel=1e-4, abs=1e-6)
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())


def test_cache_holds_the_teachers_logits_is_reused_and_speedup_measured(tmp_path, teacher_run):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distill.api import teacher_logits
    from pipelines.data.loading import load_task_data, tokenize

    recipe, manifest, _ = _distill(
        tmp_path, teacher_run, distill={"epochs": 0.5, "batch_size": 16, "cache_speedup_steps": 8}
    )
    cache = manifest["training"]["cache"]
    assert cache["reused"] is False and cache["path"].endswith(".npy")
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_run)
    tokenizer = AutoTokenizer.from_pretrained(teacher_run)
    train = tokenize(load_task_data(recipe).train, tokenizer, recipe)
    np.testing.assert_allclose(
        np.load(cache["path"]), teacher_logits(teacher, train, tokenizer, 64), atol=1e-5
    )
    written = Path(cache["path"]).stat().st_mtime_ns
    # Another distillation of the same teacher and rows reads the file instead of recomputing.
    again = load_recipe(
        write_recipe(
            tmp_path / "again.yaml", tiny_recipe(distill={"epochs": 0.25, "batch_size": 16})
        )
    )
    second = run_pipeline(again, tmp_path / "runs", target="distill", echo=lambda _: None)
    reused = second["distill"]["training"]["cache"]
    assert reused == {"path": cache["path"], "reused": True, "seconds": 0.0}
    assert Path(cache["path"]).stat().st_mtime_ns == written
    speed = manifest["cache_speedup"]
    assert speed["steps"] == 8 and speed["timed_steps"] == 7  # step 1 (setup) is not timed
    assert speed["recompute_seconds_per_step"] > 0 and speed["cached_seconds_per_step"] > 0


@pytest.mark.slow  # three distillations (kept out of make test-fast's 5 minutes)
def test_ablation_writes_a_table_of_three_variants(tmp_path, teacher_run):
    _, manifest, folder = _distill(
        tmp_path, teacher_run, distill={"epochs": 0.5, "batch_size": 16, "ablation": True}
    )
    rows = json.loads((folder / "ablation.json").read_text())
    assert [r["variant"] for r in rows] == ["labels_only", "logits_kd", "kd_matches"]
    assert rows[0]["weights"] == {"task": 1.0, "kd": 0.0} and rows[2]["matches"] == [
        "hidden_mse",
        "attention_kl",
    ]
    assert (
        rows[1].get("reused_main_run") is True
    )  # the recipe's own loss is logits KD: not trained twice
    assert rows[1]["accuracy"] == manifest["metrics"]["accuracy"]
    table = (folder / "ablation.md").read_text().splitlines()
    assert len(table) == 5
    for row, line in zip(rows, table[2:], strict=True):  # the table shows what the json holds
        assert line.startswith(f"| {row['variant']} | {row['accuracy']:.4f} |")
    assert not (folder / "ablation").exists()
