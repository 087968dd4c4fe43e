"""A token-vector student (static, cnn, bilstm) in a recipe: its keys, and what is refused for
it at validation with the reason."""

from __future__ import annotations

import pytest

from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"distill": {"matches": ["hidden_mse"]}}, "distill.matches"),
        ({"distill": {"qat": {"epochs": 0.1}}}, "distill.qat.epochs"),
        ({"distill": {"ablation": True}}, "distill.ablation"),
    ],
)
def test_what_a_token_student_cannot_do_is_refused_with_the_reason(recipe_file, section, key):
    sections = {"student": {"init": "cnn"}, "quantize": {"methods": ["dynamic"]}, **section}
    if "distill" in section:
        sections["distill"] = {
            "epochs": 1,
            "learning_rate": 1e-3,
            "batch_size": 16,
            **section["distill"],
        }
    with pytest.raises(ConfigError, match=f"{key}: not supported with student.init cnn: a token"):
        load_recipe(recipe_file(**sections))


def test_a_token_student_on_a_token_task_is_refused(recipe_file):
    with pytest.raises(ConfigError, match="student.init: not supported with task.type"):
        load_recipe(
            recipe_file(
                task={"type": "regression", "labels": ["score"]},
                student={"init": "static"},
                quantize={"methods": ["dynamic"]},
            )
        )


def test_the_shape_keys_read_and_default(recipe_file):
    r = load_recipe(
        recipe_file(
            student={"init": "bilstm", "tokens": {"lstm_hidden": 32}},
            quantize={"methods": ["dynamic"]},
        )
    )
    assert r.student.init == "bilstm"
    assert r.student.tokens.lstm_hidden == 32 and r.student.tokens.vectors == "forward"
    with pytest.raises(ConfigError, match="kernel_sizes"):
        load_recipe(
            recipe_file(student={"init": "cnn", "tokens": {"kernel_sizes": []}})
        )  # inc: skipped at run
