"""The accuracy gate: keep quantized models within `max_drop_points` of the reference accuracy.

    result = gate({"dynamic": 0.912, "static_minmax": 0.874}, reference_accuracy=0.915)
    result.best       # "dynamic": the most accurate method that passed
    result.rejected   # ["static_minmax"]: 4.1 points below the reference

Accuracies are fractions in [0, 1]; drops are reported in percentage points
(0.915 → 0.874 is a 4.1-point drop). When no method passes, `QuantizationGateError` says each
method's drop and which candidate is best anyway; it carries the `GateResult` so a caller can
still keep that candidate (e.g. for a report) while failing the stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class GateResult:
    """Which methods passed the accuracy gate and by how much each dropped."""

    reference_accuracy: float
    max_drop_points: float
    accuracies: dict[str, float]  # method → accuracy (fraction)
    drops: dict[str, float]  # method → drop in points (negative: better than the reference)
    accepted: list[str] = field(default_factory=list)  # passed, most accurate first
    rejected: list[str] = field(default_factory=list)  # over the allowed drop
    best: str = ""  # most accurate passing method, or most accurate overall if none passed

    @property
    def passed(self) -> bool:
        """True when at least one method is within the allowed drop."""
        return bool(self.accepted)

    def to_dict(self) -> dict:
        """Plain dict for JSON reports."""
        return {
            "reference_accuracy": self.reference_accuracy,
            "max_drop_points": self.max_drop_points,
            "accuracies": self.accuracies,
            "drops_points": self.drops,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "best": self.best,
            "passed": self.passed,
        }


class QuantizationGateError(ValueError):
    """No quantized model is within the allowed accuracy drop; `.result` holds the details."""

    def __init__(self, message: str, result: GateResult) -> None:
        super().__init__(message)
        self.result = result


def _check_accuracy(name: str, value: float) -> float:
    """A finite score in [-1, 1]: a fraction (accuracy, F1) or a correlation (Pearson r, which a
    collapsed regression model can take below 0); percentages are the usual mistake, so the
    message says so."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"accuracy for {name!r} must be a finite number, got {value!r}")
    if not -1.0 <= value <= 1.0:
        raise ValueError(
            f"accuracy for {name!r} must be a fraction in [0, 1] (a correlation in [-1, 1]), "
            f"got {value}; divide percentages by 100"
        )
    return float(value)


def gate(
    results: dict[str, float], reference_accuracy: float, max_drop_points: float = 1.0
) -> GateResult:
    """Accept methods whose accuracy is at most `max_drop_points` below the reference.

    Raises `QuantizationGateError` (a ValueError) only when no method passes; its message lists
    every method's drop in points and names the best candidate, which is kept in `.result.best`.
    """
    if not results:
        raise ValueError("gate needs at least one method → accuracy result, got none")
    if not math.isfinite(max_drop_points) or max_drop_points < 0:
        raise ValueError(f"max_drop_points must be a number >= 0, got {max_drop_points!r}")
    reference = _check_accuracy("reference", reference_accuracy)
    accuracies = {name: _check_accuracy(name, acc) for name, acc in results.items()}
    # Round to 1e-9 points so 0.9 - 0.89 counts as 1.0 points, not 1.0000000000000009.
    drops = {name: round((reference - acc) * 100.0, 9) for name, acc in accuracies.items()}
    ranked = sorted(accuracies, key=lambda name: -accuracies[name])  # stable: ties keep order
    accepted = [name for name in ranked if drops[name] <= max_drop_points]
    rejected = [name for name in ranked if drops[name] > max_drop_points]
    best = accepted[0] if accepted else ranked[0]
    result = GateResult(
        reference_accuracy=reference,
        max_drop_points=float(max_drop_points),
        accuracies=accuracies,
        drops=drops,
        accepted=accepted,
        rejected=rejected,
        best=best,
    )
    if not accepted:
        listing = ", ".join(
            f"{name} {accuracies[name]:.4f} (drop {drops[name]:.2f} points)" for name in ranked
        )
        raise QuantizationGateError(
            f"no quantized model is within {max_drop_points:g} points of the reference accuracy "
            f"{reference:.4f}: {listing}. "
            f"Best candidate kept: {best} ({accuracies[best]:.4f}). Raise max_drop_points, "
            "try another preset or method, or calibrate on more samples.",
            result,
        )
    return result
