"""The recipe's `distill` section → the library's `LossSpec`."""

from __future__ import annotations

from distill.combined import LossSpec, Schedule
from distill.layer_map import resolve as resolve_layer_map
from distill.weights import full_weights
from pipelines.core.config import DistillConfig


def loss_spec(
    d: DistillConfig,
    n_student: int,
    n_teacher: int,
    copied: list[int] | None,
    task_type: str = "single_label",
) -> LossSpec:
    """The combined loss the recipe's `distill` section describes, for these two depths."""

    def schedule(name: str, start: float) -> Schedule:
        cfg = d.weight_schedules.get(name)
        return Schedule(start, cfg.kind, cfg.end) if cfg else Schedule(start)

    weights = full_weights(d.weights, d.matches)
    layer_map = resolve_layer_map(d.layer_map, n_student, n_teacher, copied) if d.matches else []
    return LossSpec(
        kd_loss=d.kd_loss,
        temperature=Schedule(
            d.temperature, d.temperature_schedule.kind, d.temperature_schedule.end
        ),
        weights={k: schedule(k, v) for k, v in weights.items()},
        matches=list(d.matches),
        layer_map=layer_map,
        label_smoothing=d.label_smoothing,
        task_type=task_type,
    )
