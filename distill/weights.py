"""Default weights of the combined loss's terms: the one place they are defined.

Imports nothing heavy: the recipe schema reads DEFAULT_WEIGHTS for `distill.weights`' default.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

DEFAULT_WEIGHTS: dict[str, float] = {"task": 0.5, "kd": 0.5}  # Hinton et al.'s even split
MATCH_WEIGHT = 1.0  # each intermediate match, unless the recipe says otherwise


def full_weights(weights: Mapping[str, float], matches: Iterable[str]) -> dict[str, float]:
    """Every term's weight: the defaults for task and kd, MATCH_WEIGHT per match, then `weights`."""
    return {**DEFAULT_WEIGHTS, **{m: MATCH_WEIGHT for m in matches}, **weights}
