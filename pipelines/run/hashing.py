"""When is a stage done? Its manifest's hash equals the hash of what decides its output.

The hash covers the stage's recipe sections (`Stage.sections`), the hashes of its inputs'
manifests and the data's content hash. Two policies keep it honest without making finished runs
stale for nothing:
- COSMETIC keys change how a run is displayed, logged or scheduled, not what it computes;
- HASHED_WHEN_SET keys were added after runs existed: they enter the hash only when set away from
  the default, which is what runs made before the key did.

A stage that reads model files named by the recipe (the teacher's checkpoint, a pretrained
student) also hashes those files (`stage_sources`): new weights at the same path make it stale,
and with it every stage downstream. Manifests written before sources were recorded carry no
`sources` key; `is_done` accepts them on their config hash alone (`legacy_hash`).
"""

from __future__ import annotations

from pipelines.core.config import (
    DEFAULT_ABLATION_VARIANTS,
    AugmentConfig,
    QATConfig,
    Recipe,
    TransferConfig,
    recipe_to_dict,
)
from pipelines.core.runs import canonical_hash
from pipelines.run.registry import Stage

COSMETIC = {
    "train": ("logging_steps", "report_to", "dataloader_num_workers", "ddp_find_unused_parameters")
}
HASHED_WHEN_SET = {
    "distill": {
        "teacher_dtype": "fp32",
        "augment": AugmentConfig().model_dump(),
        "two_step": 0.0,
        "qat": QATConfig().model_dump(),
        "ablation_variants": list(DEFAULT_ABLATION_VARIANTS),
    },
    "train": {"optim": "adamw_torch"},
    "bench": {"withhold_noisy": True},
    "student": {"init_weights": "random", "prune_rows": 512},
    "task": {"type": "single_label"},
    "teacher": {"train_rows": None},
}
# Sections added after runs existed: hashed only when set away from their default.
SECTIONS_HASHED_WHEN_SET = {"transfer": TransferConfig().model_dump()}


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
    return {key: fingerprint(model_source(value, key)) for key, value in keys}


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
    hashed = {}
    for section in stage.sections:
        value = config.get(section)
        if section in SECTIONS_HASHED_WHEN_SET and value == SECTIONS_HASHED_WHEN_SET[section]:
            continue
        if isinstance(value, dict):
            late = HASHED_WHEN_SET.get(section, {})
            value = {
                k: v
                for k, v in value.items()
                if k not in COSMETIC.get(section, ()) and not (k in late and v == late[k])
            }
        hashed[section] = value
    payload = {"stage": stage.name, "config": hashed, "inputs": inputs, "data": data_hash}
    if sources:
        payload["sources"] = sources
    return canonical_hash(payload)
