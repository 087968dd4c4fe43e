"""Recipe keys in one place: a key's hash policy is declared on the key and the stage hash reads
it; finished runs keep their hashes; the training knobs are one section handed whole to the
TrainingArguments; one table says what the task types and a multi-task run refuse."""

from __future__ import annotations

import re

import pytest

from pipelines.core.config import (
    REFUSALS,
    DistillConfig,
    Recipe,
    TeacherConfig,
    TrainingKnobs,
    load_recipe,
)
from pipelines.core.errors import ConfigError
from pipelines.core.schema import HASH_POLICIES, Int, Section, all_key_paths, f, hash_policy
from pipelines.run.hashing import hashed_part, stage_hash
from pipelines.run.registry import STAGES
from tests.conftest import ROOT

DEMO = ROOT / "recipes" / "demo.yaml"


def hashes(recipe: Recipe) -> dict[str, str]:
    """Every stage's hash with a fixed fake input hash per upstream stage and data hash."""
    return {
        name: stage_hash(recipe, stage, {need: "0" * 64 for need in stage.needs}, "d" * 64)
        for name, stage in STAGES.items()
    }


# Computed with the code before the hash policies moved onto the keys (commit e47015e: the
# HASHED_WHEN_SET / COSMETIC / SECTIONS_HASHED_WHEN_SET tables in pipelines/run/hashing.py), from
# the inputs of `hashes` above. A run of recipes/demo.yaml made then must still be skipped as done.
DEMO_HASHES = {
    "teacher": "291196bc134db3cf58fd8dc048e75793ada84fddec41352181dfc529990f9988",
    "search": "03ce0df026708cd7612c934f2963c38b4083cddb9d08475ee99eb64841353def",
    "distill": "2c75bcccd9da9c91f0dfd0d9664536d4ea3d9f969ae613b65628e75e42871eee",
    "export": "e6ba17c619a8a6a84d3994cad2a11fed0b0b896df4f70f44d4195a2e0c1405ba",
    "quantize": "31a2d601208ca5ec79f550e0d089555043f95b0a03b8b85c7b1bb9fab5c14437",
    "bench": "a9f6c737e7ef499f2087426f29109d664c08ff91dec491e319a54b84427d5e12",
    "report": "1126c8cf8f4b5fd1a82bee34f707d98e49f12aa7cb82b468c2f726e37078da0a",
    "bundle": "b70c053aa63b6645b51177d0a87d3300a33ddb4b213621f96b3bddbdc5ddc5e2",
}
# Same, for the multi-task demo (its source tasks: lists of sections inside `transfer`).
TRANSFER_HASHES = {
    "teacher": "d1e0b209d6193c75c972722f6a2a94393c809fad494767fbe058555f156e3054",
    "distill": "ae65aa2cfc62bbb0659e93990fdb16ebc59ed14baf41d48bc8d561017f7f38a0",
}
NEW_KEY_HINT = (
    "a stage hash of a shipped recipe changed, so every finished run of it would train again. "
    'A new key? Declare it f(..., hash="when_set") (or hash="never" if it changes no output). '
    "Changed the recipe file or the stage's sections on purpose? Recompute these hashes."
)


def test_the_demo_recipes_keep_their_stage_hashes():
    assert hashes(load_recipe(DEMO)) == DEMO_HASHES, NEW_KEY_HINT
    transfer = hashes(load_recipe(ROOT / "recipes" / "demo-transfer.yaml"))
    assert {k: transfer[k] for k in TRANSFER_HASHES} == TRANSFER_HASHES, NEW_KEY_HINT


@pytest.mark.parametrize(
    ("override", "stage"),
    [
        ("distill.two_step=0.5", "distill"),
        ("distill.teacher_dtype=auto", "distill"),
        ("distill.augment.factor=1.0", "distill"),
        ("distill.auto=true", "distill"),
        ("distill.qat.epochs=0.5", "distill"),
        ("distill.ablation_variants=[labels_only]", "distill"),
        ("student.prune_rows=64", "distill"),
        ("train.optim=adamw_torch_fused", "teacher"),
        ("bench.withhold_noisy=true", "bench"),  # the demo sets it false: back to the default
        ("bench.grid=full", "bench"),
        ("bench.serve=throughput", "bench"),
        ("bench.serve=throughput", "report"),
        ("transfer.sampling=round_robin", "teacher"),
        ("quantize.teacher_methods=[dynamic]", "quantize"),  # dynamic alone, yet set: hashed
        ("search.space.kinds=[transformer,cnn]", "search"),
        ("search.space.tokens.width=64", "search"),
    ],
)
def test_a_late_key_enters_the_hash_only_when_set(override, stage):
    demo = hashes(load_recipe(DEMO))[stage]
    assert hashes(load_recipe(DEMO, [override]))[stage] != demo
    key = override.partition("=")[0]
    section, *path = key.split(".")
    default = Recipe.model_fields[section].default_factory()
    for part in path:
        default = getattr(default, part)
    if key == "bench.withhold_noisy":
        return  # the demo's own value is not the default; the line above checked the default
    as_default = f"{key}={'null' if default is None else default!r}".replace("'", "")
    assert hashes(load_recipe(DEMO, [as_default]))[stage] == demo


@pytest.mark.parametrize(
    "override",
    [
        "train.logging_steps=7",
        "train.report_to=[tensorboard]",
        "train.dataloader_num_workers=2",
        "train.ddp_find_unused_parameters=true",
    ],
)
def test_keys_that_change_no_output_enter_no_hash(override):
    assert hashes(load_recipe(DEMO, [override])) == hashes(load_recipe(DEMO))


def test_a_new_key_is_one_edit_including_the_hash():
    """A key added with hash="when_set" leaves the hash of a section at its defaults as it was;
    set, it enters; added without a policy, it would change the hash (the pin above fails)."""

    class Before(Section):
        a: Int = f(1)

    class Marked(Before):
        b: Int = f(2, hash="when_set")

    class Unmarked(Before):
        b: Int = f(2)

    before = hashed_part(Before, Before().model_dump())
    assert hashed_part(Marked, Marked().model_dump()) == before
    assert hashed_part(Marked, Marked(b=3).model_dump()) == {"a": 1, "b": 3}
    assert hashed_part(Unmarked, Unmarked().model_dump()) != before


def test_hash_policies_are_declared_with_a_known_name():
    with pytest.raises(TypeError, match="hash='sometimes'"):
        f(1, hash="sometimes")
    declared = {}

    def walk(section: type[Section], prefix: str) -> None:
        for name, info in section.model_fields.items():
            if hash_policy(info):
                declared[prefix + name] = hash_policy(info)
            nested = info.annotation
            if isinstance(nested, type) and issubclass(nested, Section):
                walk(nested, f"{prefix}{name}.")

    walk(Recipe, "")
    assert set(declared.values()) <= set(HASH_POLICIES)
    # the policies that were hand-kept tables in pipelines/run/hashing.py before (commit e47015e)
    assert {k for k, v in declared.items() if v == "when_set"} == {
        "task.type",
        "student.init_weights",
        "student.prune_rows",
        "distill.teacher_dtype",
        "distill.augment",
        "distill.two_step",
        "distill.qat",
        "distill.ablation_variants",
        "bench.withhold_noisy",
        "bench.grid",  # added since, with their policy on the key: the quick grid by default,
        "bench.serve",  # and what the recommendation ranks by
        "bench.batch_sizes",  # null since bench.grid: a recipe that sets them hashes them as
        "bench.seq_lens",  # before; one that did not is benched by bench.grid (quick)
        "train.optim",
        "transfer",
        "teacher.train_rows",  # added since, with its policy on the key
        "student.model_layers",  # added since: a student from another checkpoint (#28)
        "student.tokenizer",
        "distill.auto",
        "distill.unlabelled",  # its text's content enters as a source (stage_sources)
        "quantize.teacher_methods",  # null: dynamic alone, as before the key
        "student.tokens",  # the token-vector students (#32)
        "distill.augment.p_replace",
        "distill.augment.p_ngram",
        "search.space.kinds",  # token-vector kinds among the search's candidates (#32)
        "bench.load_sample_s",  # the watch for other work before the grid (#27: 0 in tests)
        "search.space.tokens",
    }
    assert {k for k, v in declared.items() if v == "never"} == {
        "train.logging_steps",
        "train.report_to",
        "train.dataloader_num_workers",
        "train.ddp_find_unused_parameters",
        "teacher.min_lift",  # the distill stage's guard: changes no output, only whether it starts
    }


# ---------------------------------------------------------------- the training knobs


def test_teacher_and_distill_share_the_training_knobs_with_their_own_defaults():
    knobs = set(TrainingKnobs.model_fields)
    assert knobs == {
        "epochs",
        "learning_rate",
        "batch_size",
        "eval_batch_size",
        "warmup_ratio",
        "weight_decay",
    }
    assert issubclass(TeacherConfig, TrainingKnobs) and issubclass(DistillConfig, TrainingKnobs)
    teacher, distill = TeacherConfig(init="config"), DistillConfig()
    assert (teacher.learning_rate, distill.learning_rate) == (2e-5, 5e-5)
    same = {"epochs": 3.0, "batch_size": 32, "eval_batch_size": 128, "warmup_ratio": 0.06}
    for name, value in {**same, "weight_decay": 0.01}.items():
        assert getattr(teacher, name) == getattr(distill, name) == value
    paths = set(all_key_paths(Recipe))
    assert {f"{s}.{k}" for s in ("teacher", "distill") for k in knobs} <= paths


def test_training_arguments_take_a_section_whole_with_a_phase_s_changes(tmp_path):
    from pipelines.train.settings import training_arguments

    recipe = load_recipe(DEMO)
    teacher = training_arguments(recipe, tmp_path / "t", recipe.teacher, train_rows=64)
    assert (teacher.learning_rate, teacher.num_train_epochs) == (1e-3, 8)
    qat = training_arguments(
        recipe, tmp_path / "q", recipe.distill, train_rows=64, epochs=0.5, warmup_ratio=0.0
    )
    assert (qat.learning_rate, qat.num_train_epochs, qat.warmup_ratio) == (5e-4, 0.5, 0.0)
    assert qat.per_device_train_batch_size == recipe.distill.batch_size
    assert recipe.distill.epochs == 3  # the recipe itself is left as it was
    with pytest.raises(TypeError, match="'lr'"):
        training_arguments(recipe, tmp_path / "x", recipe.distill, train_rows=64, lr=1.0)


# ---------------------------------------------------------------- what is refused where

SOURCE = "transfer.sources=[{name: src, task: {labels: [a, b]}, data: {source: 'synthetic:topic'}}]"
CONTEXTS = {  # how a recipe is put where REFUSALS' rows apply
    "transfer": [SOURCE],
    "multi_label": ["task.type=multi_label", "task.labels=[a, b, c]"],
    "regression": ["task.type=regression", "task.labels=[score]"],
    "token_classification": ["task.type=token_classification", "task.labels=[O, B-PER, I-PER]"],
}  # the token_student context (student.init static/cnn/bilstm): tests/stages/test_token_refusals.py
USING = {  # a recipe that uses each row's key; a new row without one fails the test below
    "transfer.sources": [SOURCE],
    "student.tokenizer own": [
        "student.init=pretrained",
        "student.model=org/student",
        "student.tokenizer=own",
    ],
    "distill.qat.epochs": ["distill.qat.epochs=0.5"],
    "distill.augment.factor": ["distill.augment.factor=1.0"],
    "distill.unlabelled": ["distill.unlabelled=./more.txt"],  # read at validate, not at load
    "distill.auto": ["distill.auto=true"],
    "distill.ablation": ["distill.ablation=true"],
    "distill.two_step": ["distill.two_step=0.5"],
    "distill.cache_speedup_steps": ["distill.cache_speedup_steps=5"],
    "search.enabled": ["search.enabled=true"],
    "distill.kd_loss": ["distill.kd_loss=mse"],
    "teacher.train_rows": ["teacher.train_rows=100"],
    "distill.matches": ["distill.matches=[hidden_mse]"],
    "student.init": ["student.init=static"],
    "student.init_weights prune": [
        "student.init=config",
        "student.init_weights=prune",
        "student.config.num_hidden_layers=2",
    ],
}


@pytest.mark.parametrize("key", list(REFUSALS))
def test_each_refusal_applies_exactly_where_its_row_says(key):
    assert key in USING, f"REFUSALS row {key!r}: add a recipe that uses it to USING"
    assert key.split()[0] in all_key_paths(Recipe)
    load_recipe(DEMO, USING[key])  # a plain single-label run takes it
    for context, overrides in CONTEXTS.items():
        if overrides == USING[key]:
            continue
        if context in REFUSALS[key].where:
            with pytest.raises(ConfigError, match=f": {re.escape(key)}: not supported with "):
                load_recipe(DEMO, overrides + USING[key])
        else:
            load_recipe(DEMO, overrides + USING[key])


def test_refusal_messages_name_the_context_and_the_fix():
    with pytest.raises(ConfigError) as transfer:
        load_recipe(DEMO, [SOURCE, "distill.two_step=0.5"])
    assert str(transfer.value).endswith(
        "distill.two_step: not supported with transfer.sources (a multi-task run); the source "
        "tasks are the extra data. Remove the key, or run the target task alone."
    )
    with pytest.raises(ConfigError) as typed:
        load_recipe(DEMO, [*CONTEXTS["regression"], "distill.ablation=true"])
    assert str(typed.value).endswith(
        "distill.ablation: not supported with task.type regression yet (single_label only). "
        "Remove the key, or use task.type: single_label."
    )
