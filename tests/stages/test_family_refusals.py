"""What a teacher's family cannot give is refused before any training, naming the family: a pruned
student of a non-BERT teacher, a config student of sentence pairs whose teacher has no segment
embeddings."""

from __future__ import annotations

import pytest

from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError
from pipelines.run.runner import run_pipeline
from tests.conftest import family_recipe, write_recipe
from tests.families import build_family, corpus_words


@pytest.mark.parametrize("family", ["roberta", "distilbert", "deberta-v2"])
def test_prune_init_is_refused_before_training_for_non_bert_teachers(family, tmp_path):
    build_family(family, tmp_path / "model", corpus_words())
    recipe = family_recipe(family, tmp_path / "model")
    recipe["student"] = {
        "init": "config",
        "init_weights": "prune",
        "layers": [1],
        "config": {
            "num_hidden_layers": 1,
            "hidden_size": 16,
            "num_attention_heads": 1,
            "intermediate_size": 32,
        },
    }
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    with pytest.raises(
        ConfigError, match=rf"this teacher is '{family}' \(prunable model types: bert\)"
    ):
        run_pipeline(load_recipe(path), tmp_path / "runs", target="distill", echo=lambda _: None)
    assert not (tmp_path / "runs" / family / "teacher" / "manifest.json").exists()


@pytest.mark.parametrize("family", ["distilbert", "deberta-v2"])
def test_a_config_student_of_pairs_is_refused_when_the_teacher_has_no_segments(family, tmp_path):
    build_family(family, tmp_path / "model", corpus_words("verdict"))
    recipe = family_recipe(
        family,
        tmp_path / "model",
        task={"text_columns": ["text_a", "text_b"], "labels": ["no", "yes"]},
        data={"source": "synthetic:verdict", "synthetic_rows": 200, "max_length": 32},
    )
    recipe["student"] = {"init": "config", "config": {"num_hidden_layers": 1, "hidden_size": 32}}
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    with pytest.raises(ConfigError, match=rf"this teacher \('{family}'\) takes none"):
        run_pipeline(load_recipe(path), tmp_path / "runs", target="distill", echo=lambda _: None)
    assert not (tmp_path / "runs" / family / "teacher").exists()
