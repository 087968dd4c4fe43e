"""When is a stage done? Its manifest's hash equals the hash of what decides its output.

The hash covers the stage's recipe sections (`Stage.sections`), the hashes of its inputs'
manifests and the data's content hash. Two policies keep it honest without making finished runs
stale for nothing, declared by each key where it is defined (`f(..., hash=...)`, see
`pipelines.core.schema.HASH_POLICIES`) and read off the schema here, so a new key is one edit:
- `hash="never"` keys change how a run is displayed, logged or scheduled, not what it computes;
- `hash="when_set"` keys (and sections) were added after runs existed: they enter the hash only
  when set away from the default, which is what runs made before the key did;
- `hash="whole"` sections are hashed as written, the policies of their own keys not applied
  (`transfer.sources[].task`, whose hash has always held `type`).
A key without a marker is hashed always; one added to a hashed section without `when_set` would
make every finished run stale, which `tests/test_recipe_keys.py` (hashes of recipes/demo.yaml
pinned) catches.

A stage that reads files named by the recipe (the teacher's checkpoint, a pretrained student,
the distill stage's unlabelled text) also hashes those files (`stage_sources`): new weights or
text at the same path make it stale, and with it every stage downstream; so does a new version
of what `distill.auto` chooses (its `POLICY`). Manifests written before sources were recorded carry no
`sources` key; `is_done` accepts them on their config hash alone (`legacy_hash`).
"""

from __future__ import annotations

from typing import Any, get_args, get_origin

from pydantic import BaseModel

from pipelines.core.config import Recipe, recipe_to_dict
from pipelines.core.runs import canonical_hash
from pipelines.core.schema import default_value, hash_policy
from pipelines.run.registry import Stage


def hashed_part(section: type[BaseModel], value: dict[str, Any]) -> dict[str, Any]:
    """The keys of `value` (a section as plain data) that enter a stage hash: `never` keys left
    out, `when_set` keys left out at their default, nested sections likewise unless `whole`."""
    kept = {}
    for name, item in value.items():
        info = section.model_fields[name]
        policy = hash_policy(info)
        if policy == "never" or (policy == "when_set" and item == default_value(info)):
            continue
        kept[name] = item if policy == "whole" else _hashed_value(info.annotation, item)
    return kept


def _hashed_value(annotation: Any, value: Any) -> Any:
    """`value` with `hashed_part` applied to every section in it (a section, or a list or
    mapping of sections, as `transfer.sources` and `distill.weight_schedules` are)."""
    for option in (annotation, *get_args(annotation)):  # T, or the members of T | None
        if isinstance(option, type) and issubclass(option, BaseModel) and isinstance(value, dict):
            return hashed_part(option, value)
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is list and args and isinstance(value, list):
        return [_hashed_value(args[0], item) for item in value]
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return {key: _hashed_value(args[1], item) for key, item in value.items()}
    return value


def stage_sources(recipe: Recipe, stage: str) -> dict[str, str]:
    """{recipe key: fingerprint} of the model files the stage reads (none for most stages)."""
    from pipelines.core.sources import fingerprint, model_source

    keys = []
    if stage == "teacher":
        if recipe.teacher.init == "pretrained" and recipe.teacher.model:
            keys.append(("teacher.model", recipe.teacher.model))
        if recipe.teacher.tokenizer:
            keys.append(("teacher.tokenizer", recipe.teacher.tokenizer))
    if stage == "distill" and recipe.student.init == "pretrained" and recipe.student.model:
        keys.append(("student.model", recipe.student.model))
    found = {key: fingerprint(model_source(value, key)) for key, value in keys}
    if stage == "distill" and recipe.distill.unlabelled:  # the text's content, not its path
        from pathlib import Path

        from pipelines.data.unlabelled import unlabelled_digest

        found["distill.unlabelled"] = unlabelled_digest(Path(recipe.distill.unlabelled))
    if stage == "distill" and recipe.distill.auto:  # what auto chooses is decided by the code
        from pipelines.distillation.auto_defaults import POLICY

        found["distill.auto"] = f"policy {POLICY}"
    return found


def is_done(manifest: dict | None, digest: str, legacy_hash: str) -> bool:
    """The manifest records this hash; or it predates recorded sources and matches on config."""
    if not manifest:
        return False
    if manifest.get("hash") == digest:
        return True
    return "sources" not in manifest and manifest.get("hash") == legacy_hash


def stage_hash(
    recipe: Recipe,
    stage: Stage,
    inputs: dict[str, str],
    data_hash: str,
    sources: dict[str, str] | None = None,
) -> str:
    config = recipe_to_dict(recipe)
    hashed = hashed_part(Recipe, {section: config.get(section) for section in stage.sections})
    payload = {"stage": stage.name, "config": hashed, "inputs": inputs, "data": data_hash}
    if sources:
        payload["sources"] = sources
    return canonical_hash(payload)
