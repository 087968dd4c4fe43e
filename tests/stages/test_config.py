from pathlib import Path

import pytest
import yaml

from pipelines.core.config import Recipe, load_recipe
from pipelines.core.errors import ConfigError
from pipelines.core.schema import build, key_paths
from tests.conftest import ROOT, tiny_recipe, write_recipe


def test_tiny_recipe_loads_with_defaults(recipe_file):
    recipe = load_recipe(recipe_file())
    assert recipe.name == "tiny"
    assert recipe.teacher.config.hidden_size == 32
    assert recipe.distill.kd_loss == "kl"
    assert recipe.distill.weights == {"task": 0.5, "kd": 0.5}
    assert recipe.security.allow_pickle is False and recipe.security.trust_remote_code is False


def test_typo_key_is_named_with_suggestion(recipe_file):
    path = recipe_file(teacher={**tiny_recipe()["teacher"], "epoch": 3})
    with pytest.raises(
        ConfigError, match=r"teacher\.epoch: unknown key\. Did you mean 'teacher\.epochs'\?"
    ):
        load_recipe(path)


def test_unknown_top_level_key_lists_valid_keys(recipe_file):
    path = recipe_file(studnet={"init": "config"})
    with pytest.raises(
        ConfigError,
        match=r"studnet: unknown key\. Did you mean 'student'\?.*Valid keys under the recipe: .*distill",
    ):
        load_recipe(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("teacher.epochs=abc", r"teacher\.epochs: expected a number, got 'abc'"),
        ("teacher.batch_size=2.5", r"teacher\.batch_size: expected an integer, got 2\.5"),
        ("data.max_length=4", r"data\.max_length: 4 is out of range; allowed values: \[8, 4096\]"),
        (
            "student.init=magic",
            r"student\.init: 'magic' is not allowed\. Allowed values: teacher_layers, config, pretrained",
        ),
        ("teacher.finetune=maybe", r"teacher\.finetune: expected true/false, got 'maybe'"),
        (
            "train.device=tpu",
            r"train\.device: 'tpu' is not allowed\. Allowed values: auto, cpu, cuda",
        ),
        ("task.text_columns=[a, b, c]", r"task\.text_columns: .* has 3 columns"),
        ("distill.weights.hiden_mse=1", r"distill\.weights\.hiden_mse: unknown weight"),
    ],
)
def test_set_goes_through_the_same_validation(recipe_file, override, message):
    with pytest.raises(ConfigError, match=message):
        load_recipe(recipe_file(), [override])


def test_set_unknown_key_suggests(recipe_file):
    with pytest.raises(
        ConfigError,
        match=r"--set teacher\.learning_rat: unknown key\. Did you mean 'teacher\.learning_rate'\?",
    ):
        load_recipe(recipe_file(), ["teacher.learning_rat=0.1"])


def test_exponent_floats_without_a_dot_are_numbers(recipe_file):
    recipe = load_recipe(recipe_file(), ["teacher.learning_rate=1e-4"])  # YAML 1.1 reads a string
    assert recipe.teacher.learning_rate == 1e-4


def test_set_overrides_values(recipe_file):
    recipe = load_recipe(
        recipe_file(),
        ["teacher.epochs=1", "data.max_train_samples=50", "distill.matches=[hidden_mse]"],
    )
    assert recipe.teacher.epochs == 1.0
    assert recipe.data.max_train_samples == 50
    assert recipe.distill.matches == ["hidden_mse"]


def test_missing_required_key(tmp_path):
    raw = tiny_recipe()
    del raw["data"]["source"]
    with pytest.raises(ConfigError, match=r"data\.source: missing required key"):
        load_recipe(write_recipe(tmp_path / "r.yaml", raw))


def test_pretrained_teacher_needs_model(recipe_file):
    with pytest.raises(ConfigError, match=r"teacher\.model: missing"):
        load_recipe(recipe_file(teacher={"init": "pretrained"}))


def test_heads_must_divide_width(recipe_file):
    with pytest.raises(ConfigError, match="not divisible by num_attention_heads"):
        load_recipe(recipe_file(), ["teacher.config.num_attention_heads=5"])


def test_relative_paths_resolve_against_the_recipe_folder(tmp_path):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "data").mkdir()
    raw = tiny_recipe(data={"source": "../data"})
    recipe = load_recipe(write_recipe(tmp_path / "recipes" / "r.yaml", raw))
    assert Path(recipe.data.source) == (tmp_path / "data").resolve()


def test_hub_ids_are_left_alone(recipe_file):
    recipe = load_recipe(
        recipe_file(data={"source": "glue/sst2"}),
        ["teacher.init=pretrained", "teacher.model=bert-base-uncased"],
    )
    assert recipe.data.source == "glue/sst2"
    assert recipe.teacher.model == "bert-base-uncased"


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_recipe(path)


@pytest.mark.parametrize("name", ["demo.yaml", "sst2.yaml", "sst2-minilm.yaml"])
def test_shipped_recipes_validate_and_start_with_their_command(name):
    path = ROOT / "recipes" / name
    first = path.read_text().splitlines()[0]
    assert first.startswith("# Run:") and "recipes/" + name in first
    recipe = load_recipe(path)
    assert recipe.name


def test_key_paths_cover_the_public_interface():
    paths = {row[0] for row in key_paths(Recipe)}
    public = {
        "name",
        "seed",
        "task.text_columns",
        "task.label_column",
        "task.labels",
        "data.source",
        "data.train_split",
        "data.eval_split",
        "data.max_train_samples",
        "data.max_eval_samples",
        "data.max_length",
        "teacher.model",
        "teacher.finetune",
        "teacher.epochs",
        "teacher.learning_rate",
        "teacher.batch_size",
    }
    assert public <= paths


def test_build_round_trips_through_yaml():
    from pipelines.core.schema import to_dict

    recipe = build(Recipe, tiny_recipe())
    again = build(Recipe, yaml.safe_load(yaml.safe_dump(to_dict(recipe))))
    assert again == recipe


@pytest.mark.parametrize("path", sorted((ROOT / "recipes").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_recipe_validates(path):
    """The recipes docs/recipes.md lists load with today's keys (a renamed key breaks here, not
    in front of a user); real-data paths are only resolved, not read."""
    load_recipe(path)  # raises ConfigError naming the key
