"""The distill stage with a pruned config student (`student.init_weights: prune`): the recipe's
checks, a pruned student trained from the tiny teacher, an impossible cut refused before the teacher
trains. The cut itself (distill/prune.py): tests/lib/test_prune.py."""

from __future__ import annotations

import pytest
import torch

from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError
from tests.conftest import seed_run, tiny_recipe, write_recipe


@pytest.mark.parametrize(
    "student, message",
    [
        (
            {"init": "teacher_layers", "layers": [0], "init_weights": "prune"},
            "applies to init: config",
        ),
        (
            {
                "init": "config",
                "init_weights": "prune",
                "init_embeddings": "pca",
                "layers": [0, 1, 2, 3],
            },
            "conflicts with init_weights: prune",
        ),
        ({"init": "config", "init_weights": "prune"}, "give one teacher layer per student layer"),
    ],
)
def test_recipe_validation(tmp_path, student, message):
    with pytest.raises(ConfigError) as error:
        load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(student=student)))
    assert message in str(error.value)


def test_distill_stage_trains_a_pruned_student(tmp_path, tiny_teacher):
    """End to end on the tiny teacher: the cut student starts near the teacher and is recorded."""
    from pipelines.run.runner import run_pipeline

    recipe = load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe(
                student={
                    "init": "config",
                    "init_weights": "prune",
                    "prune_rows": 64,
                    "layers": [1],
                    "config": {
                        "num_hidden_layers": 1,
                        "hidden_size": 16,
                        "num_attention_heads": 1,
                        "intermediate_size": 32,
                    },
                },
                distill={"epochs": 2, "learning_rate": 3e-3, "matches": ["hidden_mse"]},
            ),
        )
    )
    seed_run(tmp_path / "runs", tiny_teacher[0] / "runs" / "tiny", "teacher")
    done = run_pipeline(recipe, tmp_path / "runs", target="distill", echo=lambda _: None)
    manifest = done["distill"]
    assert manifest["student"]["init_weights"] == "prune"
    assert manifest["student"]["layers"] == [1]
    assert manifest["student"]["hidden_size"] == 16
    assert manifest["loss"]["layer_map"] == [
        [0, 1]
    ]  # 'auto' pairs the student layer with its source
    assert manifest["loss"]["projections"] == ["hidden_mse"]
    assert manifest["metrics"]["accuracy"] >= 0.85 * manifest["metrics"]["teacher_accuracy"]
    log = (tmp_path / "runs" / "tiny" / "distill" / "log.txt").read_text()
    assert "student cut from teacher layers [1]: 16 of 32 channels" in log
    # Before any training, the cut student already tracks the teacher; a random one does not.
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distill.student import from_config
    from pipelines.data.loading import load_task_data, tokenize
    from pipelines.distillation.student_choice import build_student
    from pipelines.train.evaluation import predict_logits

    folder = tmp_path / "runs" / "tiny" / "teacher"
    teacher = AutoModelForSequenceClassification.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    data = load_task_data(recipe)
    train, evaluation = tokenize(data.train, tok, recipe), tokenize(data.eval, tok, recipe)
    cut, _ = build_student(recipe, teacher, tok, train)
    random = from_config(teacher, 1, 16, 1, 32, "truncate", recipe.seed)

    def kl_to_teacher(model):
        p_t = torch.softmax(
            torch.from_numpy(predict_logits(teacher, evaluation, tok, progress=False)), -1
        )
        log_s = torch.log_softmax(
            torch.from_numpy(predict_logits(model, evaluation, tok, progress=False)), -1
        )
        return float((p_t * (p_t.log() - log_s)).sum(-1).mean())

    assert kl_to_teacher(cut) < 0.5 * kl_to_teacher(random)


def test_an_impossible_cut_is_refused_before_the_teacher_trains(tmp_path):
    from pipelines.run.runner import run_pipeline

    student = {
        "init": "config",
        "init_weights": "prune",
        "layers": [1],
        "config": {
            "num_hidden_layers": 1,
            "hidden_size": 16,
            "num_attention_heads": 2,  # heads of 8; the tiny teacher's are 16 wide
            "intermediate_size": 32,
        },
    }
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(student=student)))
    with pytest.raises(ConfigError) as error:
        run_pipeline(recipe, tmp_path / "runs", target="distill", echo=lambda _: None)
    assert "hidden_size 16 needs 1 heads" in str(error.value)
    assert not (tmp_path / "runs" / "tiny" / "teacher").exists()
