"""Which student layer learns from which teacher layer.

A layer map is a list of `(student_layer, teacher_layer)` pairs, 0-based transformer layer indices.
Named maps (one registry, like every kind of thing here) build it from the two depths.
"""

from __future__ import annotations

from collections.abc import Callable

from modelkit.errors import InputError

LayerMap = list[tuple[int, int]]


def uniform(n_student: int, n_teacher: int) -> LayerMap:
    """Spread evenly, ending on the teacher's last layer: 3 of 6 → (0,1), (1,3), (2,5) (TinyBERT)."""
    return [(i, round((i + 1) * n_teacher / n_student) - 1) for i in range(n_student)]


def last(n_student: int, n_teacher: int) -> LayerMap:
    """The teacher's last layers: 3 of 6 → (0,3), (1,4), (2,5)."""
    return [(i, n_teacher - n_student + i) for i in range(n_student)]


def skip(n_student: int, n_teacher: int) -> LayerMap:
    """Every k-th teacher layer from the first, k = n_teacher // n_student: 3 of 6 → (0,0), (1,2), (2,4)."""
    k = max(1, n_teacher // n_student)
    return [(i, i * k) for i in range(n_student)]


LAYER_MAPS: dict[str, Callable[[int, int], LayerMap]] = {
    "uniform": uniform,
    "last": last,
    "skip": skip,
}


def resolve(
    spec: str | list[list[int]] | list[tuple[int, int]],
    n_student: int,
    n_teacher: int,
    copied_layers: list[int] | None = None,
) -> LayerMap:
    """A validated layer map from a name, 'auto', or explicit pairs.

    'auto' pairs each copied layer with its own teacher position (teacher_layers students), else uniform.
    """
    if spec == "auto":
        pairs = list(enumerate(copied_layers)) if copied_layers else uniform(n_student, n_teacher)
    elif isinstance(spec, str):
        if spec not in LAYER_MAPS:
            raise InputError(
                f"distill.layer_map: unknown map {spec!r}; known: {sorted(LAYER_MAPS)}, 'auto', or a "
                "list of [student_layer, teacher_layer] pairs"
            )
        if n_student > n_teacher and spec != "uniform":
            raise InputError(
                f"distill.layer_map: '{spec}' needs a student no deeper than the teacher "
                f"({n_student} > {n_teacher} layers)"
            )
        pairs = LAYER_MAPS[spec](n_student, n_teacher)
    else:
        pairs = [tuple(p) for p in spec]
    for s, t in pairs:
        if not 0 <= s < n_student:
            raise InputError(
                f"distill.layer_map: student layer {s} is out of range; the student has {n_student} "
                f"layers, valid indices 0..{n_student - 1}"
            )
        if not 0 <= t < n_teacher:
            raise InputError(
                f"distill.layer_map: teacher layer {t} is out of range; the teacher has {n_teacher} "
                f"layers, valid indices 0..{n_teacher - 1}"
            )
    return [(int(s), int(t)) for s, t in pairs]
