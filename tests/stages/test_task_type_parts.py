"""Task types beyond single-label classification (`task.type`), part by part: the multi-label and
regression metrics against hand-computed values, labels encoded by type and bad ones named, the
recipe's refusals, unchanged hashes for the default type, the typed losses. The runs end to end
are in tests/e2e/test_task_types.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.combined import CombinedLoss, LossSpec
from distill.losses import kd_regression, kd_sigmoid, task_bce, task_mse
from modelkit.label_forms import encode_label, is_multi_hot
from modelkit.task_types import TASK_TYPES
from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError, DataError
from pipelines.data.loading import load_task_data
from pipelines.run.hashing import stage_hash
from pipelines.run.registry import STAGES
from tests.conftest import tiny_recipe, write_jsonl, write_recipe

ASPECTS = ["plot", "cast", "music", "ending"]  # synthetic:tags' labels


# ---------------------------------------------------------------- metrics and labels


def test_regression_metrics_are_pearson_and_spearman():
    kind = TASK_TYPES["regression"]
    gold = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    cubic = (gold**3).reshape(-1, 1)  # monotone, not linear
    metrics = kind.metrics(cubic, gold)
    assert metrics["spearman"] == pytest.approx(1.0)
    assert metrics["pearson"] == pytest.approx(np.corrcoef(cubic[:, 0], gold)[0, 1])
    assert metrics["pearson"] < 0.99 and metrics["accuracy"] == metrics["pearson"]
    tied = kind.metrics(np.array([[1.0], [1.0], [2.0], [3.0]]), np.array([1.0, 2.0, 3.0, 4.0]))
    # ranks of the predictions with the tie averaged: 0.5, 0.5, 2, 3
    expected = np.corrcoef([0.5, 0.5, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0])[0, 1]
    assert tied["spearman"] == pytest.approx(expected)


def test_multi_label_metrics_are_micro_and_macro_f1():
    kind = TASK_TYPES["multi_label"]
    gold = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]], dtype=float)
    logits = np.array([[2.0, -1.0, -3.0], [1.0, 4.0, -2.0], [0.5, 0.2, -0.1]])  # > 0: present
    metrics = kind.metrics(logits, gold)
    # label 0: tp 2 fp 1 fn 0; label 1: tp 2 fp 0 fn 0; label 2: tp 0 fp 0 fn 1
    assert metrics["micro_f1"] == pytest.approx(2 * 4 / (2 * 4 + 1 + 1))
    assert metrics["macro_f1"] == pytest.approx((2 * 2 / (4 + 1) + 1.0 + 0.0) / 3)
    assert metrics["exact_match"] == pytest.approx(1 / 3)
    assert kind.values(logits) == [[0], [0, 1], [0, 1]]


def test_labels_are_encoded_by_type_and_bad_ones_named(tmp_path):
    assert encode_label("multi_label", ["cast", "plot"], ASPECTS) == [1.0, 1.0, 0.0, 0.0]
    assert encode_label("multi_label", [3], ASPECTS) == [0.0, 0.0, 0.0, 1.0]
    assert encode_label("multi_label", [0, 1, 1, 0], ASPECTS, multi_hot=True) == [
        0.0,
        1.0,
        1.0,
        0.0,
    ]
    # [0, 1] with two labels: "the second" in a 0/1 column, "both" in an index column
    assert is_multi_hot([[0, 1], [1, 1], [0, 0]], ["a", "b"])
    assert not is_multi_hot([[0, 1], [1], []], ["a", "b"])
    assert encode_label("multi_label", [0, 1], ["a", "b"], multi_hot=True) == [0.0, 1.0]
    assert encode_label("multi_label", [0, 1], ["a", "b"]) == [1.0, 1.0]
    assert encode_label("multi_label", "plot", ASPECTS) is None
    assert encode_label("regression", 3, ["score"]) == 3.0
    assert encode_label("regression", "high", ["score"]) is None
    rows = [{"text": "the plot is good", "label": ["plot"]}] * 20
    write_jsonl(tmp_path / "data" / "train.jsonl", [*rows, {"text": "x", "label": ["acting"]}])
    write_jsonl(tmp_path / "data" / "validation.jsonl", rows)
    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe(
                task={"type": "multi_label", "labels": ASPECTS},
                data={"source": str(tmp_path / "data")},
            ),
        )
    )
    with pytest.raises(
        DataError, match=r"line 21: label \['acting'\] is not valid for task.type multi_label"
    ):
        load_task_data(recipe)


def test_recipes_refuse_what_typed_tasks_do_not_do_yet(tmp_path):
    def load(**sections):
        return load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(**sections)))

    with pytest.raises(
        ConfigError, match=r"task.labels: \['a', 'b'\]; a regression task has one output"
    ):
        load(task={"type": "regression", "labels": ["a", "b"]})
    with pytest.raises(
        ConfigError, match="distill.ablation: not supported with task.type multi_label"
    ):
        load(task={"type": "multi_label", "labels": ASPECTS}, distill={"ablation": True})
    with pytest.raises(
        ConfigError, match="distill.kd_loss: not supported with task.type regression"
    ):
        load(task={"type": "regression", "labels": ["score"]}, distill={"kd_loss": "mse"})
    with pytest.raises(ConfigError, match="needs the teacher's ONNX export"):
        load(export={"teacher": False}, quantize={"teacher": True})


def test_the_default_task_type_keeps_existing_hashes(tmp_path):
    plain = load_recipe(write_recipe(tmp_path / "a.yaml", tiny_recipe()))
    explicit = tiny_recipe()
    explicit["task"] = {"type": "single_label", **explicit["task"]}
    typed = load_recipe(write_recipe(tmp_path / "b.yaml", explicit))
    stage = STAGES["teacher"]
    assert stage_hash(plain, stage, {}, "d") == stage_hash(typed, stage, {}, "d")
    regression = tiny_recipe(task={"type": "regression", "labels": ["score"]})
    other = load_recipe(write_recipe(tmp_path / "c.yaml", regression))
    assert stage_hash(other, stage, {}, "d") != stage_hash(plain, stage, {}, "d")


# ---------------------------------------------------------------- losses


def test_typed_losses_match_their_definitions():
    torch.manual_seed(0)
    z_s, z_t = torch.randn(6, 4, requires_grad=True), torch.randn(6, 4)
    targets = (torch.rand(6, 4) > 0.5).float()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(z_s, targets)
    assert torch.allclose(task_bce(z_s, targets), expected)
    same = z_t.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(kd_sigmoid(same, z_t, 2.0), same)
    assert grad.abs().max() < 1e-6  # the sigmoid KD is stationary where student = teacher
    assert kd_sigmoid(z_s, z_t, 2.0) > kd_sigmoid(z_t, z_t, 2.0)
    y_s, y_t, gold = torch.randn(5, 1), torch.randn(5, 1), torch.randn(5)
    assert torch.allclose(kd_regression(y_s, y_t, 4.0), ((y_s - y_t) ** 2).mean())
    assert torch.allclose(task_mse(y_s, gold), ((y_s[:, 0] - gold) ** 2).mean())


def test_the_combined_loss_uses_the_types_terms():
    from types import SimpleNamespace

    spec = LossSpec(task_type="regression")
    loss = CombinedLoss(spec, 8, 8)
    y_s, y_t, gold = torch.randn(4, 1), torch.randn(4, 1), torch.randn(4)
    total, terms, weights = loss(SimpleNamespace(logits=y_s), y_t, gold, None)
    assert torch.allclose(terms["task"], ((y_s[:, 0] - gold) ** 2).mean())
    assert torch.allclose(terms["kd"], ((y_s - y_t) ** 2).mean())
    assert torch.allclose(total, weights["task"] * terms["task"] + weights["kd"] * terms["kd"])
