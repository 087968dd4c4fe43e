"""When is a stage done? Its manifest's hash equals the hash of what decides its output.

The hash covers the stage's recipe sections (`Stage.sections`), the hashes of its inputs'
manifests and the data's content hash. Two policies keep it honest without making finished runs
stale for nothing:
- COSMETIC keys change how a run is displayed, logged or scheduled, not what it computes;
- HASHED_WHEN_SET keys were added after runs existed: they enter the hash only when set away from
  the default, which is what runs made before the key did.
"""

from __future__ import annotations

from pipelines.core.config import Recipe, recipe_to_dict
from pipelines.core.runs import canonical_hash
from pipelines.stages.registry import Stage

COSMETIC = {
    "train": ("logging_steps", "report_to", "dataloader_num_workers", "ddp_find_unused_parameters")
}
HASHED_WHEN_SET = {
    "distill": {"teacher_dtype": "fp32"},
    "train": {"optim": "adamw_torch"},
    "student": {"init_weights": "random", "prune_rows": 512},
}


def stage_hash(recipe: Recipe, stage: Stage, inputs: dict[str, str], data_hash: str) -> str:
    config = recipe_to_dict(recipe)
    hashed = {}
    for section in stage.sections:
        value = config.get(section)
        if isinstance(value, dict):
            late = HASHED_WHEN_SET.get(section, {})
            value = {
                k: v
                for k, v in value.items()
                if k not in COSMETIC.get(section, ()) and not (k in late and v == late[k])
            }
        hashed[section] = value
    return canonical_hash(
        {"stage": stage.name, "config": hashed, "inputs": inputs, "data": data_hash}
    )
