"""The guard between the teacher and distill stages: a teacher not clearly above the
majority-class baseline on the eval split stops the run before the student is trained.

Why in the distill stage and not the teacher's: the teacher's manifest records what was trained
and measured, so after `--set teacher.min_lift=null` (a key no stage hash reads) the rerun
starts distilling at once instead of training the teacher again.
"""

from __future__ import annotations

from collections import Counter

from pipelines.core.errors import DistilleryError
from pipelines.data.confidence import interval_halfwidth, lower_bound


def check_teacher_lift(recipe, teacher_accuracy: float, eval_labels: list[int]) -> None:
    """Raise when the teacher's accuracy, less its 95% interval, does not clear the share of
    the eval split's most common label by `teacher.min_lift` (single_label tasks only)."""
    lift = recipe.teacher.min_lift
    if lift is None or recipe.task.type != "single_label" or not eval_labels:
        return
    rows = len(eval_labels)
    label, count = Counter(eval_labels).most_common(1)[0]
    majority = count / rows
    low = lower_bound(teacher_accuracy, rows)
    if low > majority + lift:
        return
    raise DistilleryError(
        f"the teacher is not clearly better than always answering "
        f"'{recipe.task.labels[label]}': its eval accuracy is {teacher_accuracy:.4f} ± "
        f"{interval_halfwidth(teacher_accuracy, rows):.4f} (95% interval on {rows} rows, lower "
        f"bound {low:.4f}), the majority class is {majority:.4f} of the eval split"
        f"{f' and teacher.min_lift asks {lift:.2f} above it' if lift else ''}. Distilling it "
        "would copy a model that has not learnt the task. Try more teacher epochs "
        "(teacher.epochs) or another learning rate, more training rows, a larger eval split, "
        "or check the labels match the texts; to distill it anyway, set teacher.min_lift=null."
    )
