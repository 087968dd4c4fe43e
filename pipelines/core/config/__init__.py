"""The recipe: typed config sections, validated on load and on every `--set` override.

Key paths are a public interface (README "Recipe keys"); rename none without a deprecation.
Names that come from a registry (losses, matches, layer maps, presets, INC configs, ONNX
optimisation levels) are validated against that registry, so `distill.kd_loss: kll` fails at
`distillery validate`, not after the teacher has trained.

One module per part of the recipe, in the order a recipe file lists them:
- `run_keys`: task, data, the training knobs `teacher` and `distill` share (`TrainingKnobs`),
  train, security;
- `model_keys`: teacher, student, the shape of a BERT built from scratch;
- `distill_keys`: the distill section (loss, schedules, augmentation, two-step, QAT, ablation);
- `deploy_keys`: export, quantize, bench, bundle;
- `search_keys`, `transfer_keys`: the optional search stage, the source tasks;
- `recipe`: `Recipe`, the rules across sections and the one table of refusals;
- `recipe_file`: YAML, overrides, paths, `load_recipe`.

A key is one edit: its line in its section, with its type, default, bounds, help line and, for a
key added after runs existed, `hash="when_set"` (see `pipelines.core.schema.HASH_POLICIES`), which
the stage hash reads. Everything is importable from here, `from pipelines.core.config import X`.

(No `from __future__ import annotations` in these modules: pydantic reads the annotations at run
time.)
"""

from pipelines.core.config.deploy_keys import (
    BenchConfig,
    BundleConfig,
    CalibrationConfig,
    ExportConfig,
    IncConfig,
    OpenVINOConfig,
    QuantizeConfig,
)
from pipelines.core.config.distill_keys import (
    ABLATION_VARIANTS,
    DEFAULT_ABLATION_VARIANTS,
    TORCH_DTYPES,
    AugmentConfig,
    DistillConfig,
    QATConfig,
    ScheduleConfig,
)
from pipelines.core.config.model_keys import ModelShape, StudentConfig, TeacherConfig
from pipelines.core.config.recipe import REFUSALS, Recipe, recipe_to_dict
from pipelines.core.config.recipe_file import (
    PATH_KEYS,
    UniqueKeyLoader,
    apply_overrides,
    load_recipe,
    parse_override,
)
from pipelines.core.config.run_keys import (
    DataConfig,
    SecurityConfig,
    TaskConfig,
    TrainConfig,
    TrainingKnobs,
)
from pipelines.core.config.search_keys import LAYER_CHOICES, SearchConfig, SearchSpaceConfig
from pipelines.core.config.transfer_keys import (
    SAMPLING_RULES,
    TASK_NAME,
    SourceTaskConfig,
    TransferConfig,
)

__all__ = [
    "ABLATION_VARIANTS",
    "DEFAULT_ABLATION_VARIANTS",
    "LAYER_CHOICES",
    "PATH_KEYS",
    "REFUSALS",
    "SAMPLING_RULES",
    "TASK_NAME",
    "TORCH_DTYPES",
    "AugmentConfig",
    "BenchConfig",
    "BundleConfig",
    "CalibrationConfig",
    "DataConfig",
    "DistillConfig",
    "ExportConfig",
    "IncConfig",
    "ModelShape",
    "OpenVINOConfig",
    "QATConfig",
    "QuantizeConfig",
    "Recipe",
    "ScheduleConfig",
    "SearchConfig",
    "SearchSpaceConfig",
    "SecurityConfig",
    "SourceTaskConfig",
    "StudentConfig",
    "TaskConfig",
    "TeacherConfig",
    "TrainConfig",
    "TrainingKnobs",
    "TransferConfig",
    "UniqueKeyLoader",
    "apply_overrides",
    "load_recipe",
    "parse_override",
    "recipe_to_dict",
]
