"""How far an accuracy measured on a few rows can be trusted: the 95% Wilson interval (a
closed form, so no scipy/statsmodels import for three lines), and the note that names an eval
split too small to tell artifacts apart."""

from __future__ import annotations

import math


def interval_halfwidth(accuracy: float, rows: int) -> float:
    """Half the width of the 95% Wilson interval of an accuracy measured on `rows` rows."""
    if rows <= 0:
        return 1.0
    z = 1.96
    spread = z * math.sqrt(accuracy * (1 - accuracy) / rows + z * z / (4 * rows * rows))
    return spread / (1 + z * z / rows)


def lower_bound(accuracy: float, rows: int) -> float:
    """The 95% Wilson lower bound of an accuracy measured on `rows` rows."""
    z = 1.96
    centre = (accuracy + z * z / (2 * rows)) / (1 + z * z / rows)
    return centre - interval_halfwidth(accuracy, rows)


def interval(accuracy: float, rows: int) -> tuple[float, float]:
    """The 95% Wilson interval (low, high) of an accuracy measured on `rows` rows."""
    if rows <= 0:
        return 0.0, 1.0
    low = lower_bound(accuracy, rows)
    return max(0.0, low), min(1.0, low + 2 * interval_halfwidth(accuracy, rows))


def eval_size_note(rows: int, accuracy: float = 0.9) -> str | None:
    """A warning when an eval split of `rows` rows cannot tell artifacts a few points apart."""
    half = interval_halfwidth(accuracy, rows)
    if half <= 0.03:
        return None
    return (
        f"the eval split has {rows} rows: an accuracy of {accuracy:.2f} on it reads "
        f"{accuracy:.2f} ± {half:.3f} (95% interval), so artifacts closer than ~{half:.2f} "
        "cannot be told apart; give more eval rows (data.eval_fraction, or a larger eval file)."
    )
