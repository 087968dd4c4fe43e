"""Checks that fail a run in seconds, before any stage trains: every model and dataset the planned
stages read can be reached, and a student that cannot be built from this teacher is refused from
the teacher's config alone (not an hour later, when the distill stage builds it)."""

from __future__ import annotations

from modelkit.errors import InputError
from pipelines.core.config import Recipe
from pipelines.core.errors import ConfigError


def preflight_sources(recipe: Recipe, names: list[str]) -> None:
    """Resolve every model and dataset the planned stages read; one error for all hub problems."""
    from pipelines.core.models import resolve_model, teacher_sources
    from pipelines.core.sources import dataset_source, preflight

    sources = [(dataset_source(recipe.data.source, recipe.data.subset), "dataset")]
    if "teacher" in names:
        sources.extend(teacher_sources(recipe))
    if "distill" in names and recipe.student.init == "pretrained" and recipe.student.model:
        sources.append(
            (resolve_model(recipe.student.model, recipe.security, "student.model"), "model")
        )
    preflight(sources)
    if "distill" in names and recipe.student.init == "pretrained":
        preflight_student_vocab(recipe)
    if "distill" in names and recipe.student.init_weights == "prune":
        preflight_prune(recipe)


def preflight_prune(recipe: Recipe) -> None:
    """A student that cannot be cut from the teacher (head width, sizes, layers) is refused before
    the teacher trains, from the teacher's config alone."""
    from distill.prune import check_prunable

    t = recipe.teacher
    if t.init == "config":
        from transformers import BertConfig

        config = BertConfig(**t.config.model_dump())
    else:
        from transformers import AutoConfig

        from pipelines.core.models import resolve_model

        source = resolve_model(t.model, recipe.security, "teacher.model")
        config = AutoConfig.from_pretrained(
            source.value, trust_remote_code=recipe.security.trust_remote_code
        )
    try:
        check_prunable(config, recipe.student.config, recipe.student.layers)
    except InputError as exc:
        raise ConfigError(str(exc)) from None


def preflight_student_vocab(recipe: Recipe) -> None:
    """Case: a `pretrained` student whose vocabulary differs from the teacher's is refused before
    the teacher trains (not an hour later, when the distill stage builds the student)."""
    from distill.student import check_same_vocab
    from pipelines.core.models import load_tokenizer, model_source, resolve_model

    t = recipe.teacher
    if t.tokenizer:
        teacher_source = model_source(t.tokenizer, "teacher.tokenizer")
    elif t.init == "pretrained" and t.model:
        teacher_source = resolve_model(t.model, recipe.security, "teacher.model")
    else:
        return  # a word vocabulary built from the data: checked when the student is built
    student_source = resolve_model(recipe.student.model, recipe.security, "student.model")
    try:
        check_same_vocab(
            load_tokenizer(teacher_source, recipe.security),
            load_tokenizer(student_source, recipe.security),
            "student.model",
        )
    except InputError as exc:
        raise ConfigError(str(exc)) from None
