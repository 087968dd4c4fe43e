"""The `transfer` section: source tasks trained with the recipe's own (target) task."""

import re
from typing import Literal

from pipelines.core.config.distill_keys import ScheduleConfig
from pipelines.core.config.run_keys import DataConfig, TaskConfig
from pipelines.core.errors import ConfigError
from pipelines.core.schema import Float, Section, Str, checks, f, names

TASK_NAME = r"[a-z][a-z0-9_]{0,31}"  # becomes an ONNX output name (logits_<name>) and a CLI value
SAMPLING_RULES = ("proportional", "temperature", "round_robin")  # distill/multitask.py


class SourceTaskConfig(Section):
    """One source task of a transfer recipe: its own data, columns, labels, metric and λ."""

    name: Str = f(help="task name: head name, ONNX output logits_<name>, predict.py --task")
    # hashed whole: source tasks came after task.type, so their hash has always held the type,
    # its default included (the top-level task.type is hashed only when set). A key added to
    # TaskConfig therefore changes transfer recipes' hashes (tests/test_recipe_keys.py pins them)
    task: TaskConfig = f(help="columns and labels of this task", hash="whole")
    data: DataConfig = f(help="where this task's data comes from")
    weight: Float = f(1.0, min=0.0, max=100.0, help="λ: this task's loss weight (joint mode)")
    weight_schedule: ScheduleConfig = f(ScheduleConfig, help="λ over training")
    metric: Literal["accuracy", "f1"] = f("accuracy", help="headline metric of this task")


class TransferConfig(Section):
    """Transfer across tasks: the recipe's own task/data is the target (the artifact's default
    head); `sources` are the other tasks. L = Σ_t λ_t·L_t over the tasks (joint), or source
    tasks first and then the target (sequential)."""

    target: Str = f("target", help="name of the recipe's own task (its head, its report column)")
    target_weight: Float = f(1.0, min=0.0, max=100.0, help="λ of the target task (joint mode)")
    target_weight_schedule: ScheduleConfig = f(ScheduleConfig, help="λ of the target over training")
    target_metric: Literal["accuracy", "f1"] = f("accuracy", help="headline metric of the target")
    sources: list[SourceTaskConfig] = f([], help="source tasks; empty = a single-task recipe")
    mode: Literal["joint", "sequential"] = f(
        "joint", help="joint: one λ-weighted multi-task run; sequential: sources, then target"
    )
    sampling: names(*SAMPLING_RULES) = f(
        "proportional", help="which task each batch comes from (joint mode)"
    )
    sampling_temperature: Float = f(
        2.0, min=1.0, max=100.0, help="sampling: temperature, p_t ∝ rows_t^(1/T)"
    )
    source_epochs: Float = f(
        1.0, min=0.01, max=100, help="sequential: teacher epochs over each source task"
    )

    @checks
    def check(self) -> None:
        names_ = [self.target] + [s.name for s in self.sources]
        for name in names_:
            if not re.fullmatch(TASK_NAME, name):
                raise ConfigError(
                    f"transfer: task name {name!r} is not allowed; use lower-case letters, digits "
                    "and '_', starting with a letter (it names an ONNX output and a --task value)."
                )
        if len(set(names_)) != len(names_):
            raise ConfigError(
                f"transfer: task names {names_} repeat; give each task (target and sources) its "
                "own name."
            )
        for i, source in enumerate(self.sources):
            if source.metric == "f1" and len(source.task.labels) != 2:
                raise ConfigError(
                    f"transfer.sources[{i}].metric: f1 is the binary F1 and needs two labels; "
                    f"{source.name} has {len(source.task.labels)}. Use metric: accuracy."
                )

    @property
    def enabled(self) -> bool:
        return bool(self.sources)
