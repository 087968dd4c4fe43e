"""How far the report's accuracies can be told apart: each one's 95% interval, and whether two
artifacts are within noise of each other.

    ev = Evidence.of(manifests, predictions)      # eval rows; stored per-row predictions, if any
    ev.text(0.91)                                 # '0.9100 (0.884–0.931)'
    ev.compare(row_a, row_b)                      # Verdict(within_noise=True, how='McNemar ...')

Intervals are Wilson's (pipelines.data.confidence): an accuracy is a proportion of eval rows,
and Wilson's interval keeps its coverage near 95% at the few hundred rows and the accuracies near
1 a distilled model lives at, where the normal approximation (± 1.96·√(p(1−p)/n)) is too narrow
and runs past 1; it needs no per-row data, so old runs get it too. Only `accuracy` is a
proportion: other task types' scores (F1, Pearson r) are shown without one.

Two artifacts scored on the same rows are compared by the exact McNemar test when the quantize
stage stored both artifacts' eval predictions (`eval_predictions.json`; an fp32 export whose
parity check agreed with its PyTorch model on every row takes that model's): a paired test counts
only the rows they disagree on, so it tells apart artifacts whose intervals overlap. Otherwise
(a run made before the file) by interval overlap, which is conservative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from pipelines.data.confidence import interval, interval_halfwidth

ALPHA = 0.05  # a paired p-value at or above this: within noise


@dataclass(frozen=True)
class Verdict:
    within_noise: bool
    how: str  # the test and its numbers, for the report's sentence


def mcnemar_p(correct_a: list[int], correct_b: list[int]) -> tuple[float, int]:
    """(two-sided exact McNemar p-value, rows the two disagree on) of two 0/1 per-row
    correctness lists. The exact test is a binomial test at ½ on the discordant rows, a closed
    form with math.comb (scipy, which has it, is not a dependency of this project)."""
    if len(correct_a) != len(correct_b):
        raise ValueError(
            f"mcnemar_p: {len(correct_a)} and {len(correct_b)} rows; the two artifacts must be "
            "scored on the same eval rows"
        )
    only_a = sum(1 for a, b in zip(correct_a, correct_b, strict=True) if a and not b)
    only_b = sum(1 for a, b in zip(correct_a, correct_b, strict=True) if b and not a)
    n = only_a + only_b
    if n == 0:
        return 1.0, 0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1))
    return min(1.0, 2 * tail / 2**n), n


@dataclass(frozen=True)
class Evidence:
    """The eval split's size, whether the score is a proportion, and the stored per-row
    correctness of each artifact (empty when the run stored no predictions)."""

    rows: int | None
    proportion: bool = True  # the score is an accuracy: Wilson intervals apply
    correct: dict[str, list[int]] = field(default_factory=dict)

    @classmethod
    def of(cls, manifests: dict[str, dict], predictions: dict[str, Any] | None = None) -> Evidence:
        from pipelines.report.selection import score_metric

        proportion = score_metric(manifests) == "accuracy"
        correct: dict[str, list[int]] = {}
        if proportion and predictions:
            labels = predictions["labels"]
            stored = dict(predictions["predictions"])
            exports = (manifests.get("export") or {}).get("exports") or {}
            for name, record in exports.items():  # an export agreeing on every row predicts
                source = name.split("-onnx", 1)[0]  # what its PyTorch model does
                parity = record.get("parity") or {}
                agreed = parity.get("agreement") == 1.0 and parity.get("rows") == len(labels)
                if agreed and source in stored:
                    stored.setdefault(name, stored[source])
            for name, predicted in stored.items():
                if len(predicted) == len(labels):
                    correct[name] = [int(p == y) for p, y in zip(predicted, labels, strict=True)]
        return cls(eval_rows(manifests, predictions), proportion, correct)

    def interval(self, accuracy: float | None) -> tuple[float, float] | None:
        if accuracy is None or not self.rows or not self.proportion:
            return None
        return interval(accuracy, self.rows)

    def text(self, accuracy: float | None, digits: int = 4) -> str:
        """'0.9100 (0.884–0.931)': the accuracy and its 95% interval, when one applies."""
        if accuracy is None:
            return "–"
        span = self.interval(accuracy)
        own = f"{accuracy:.{digits}f}"
        return own if span is None else f"{own} ({span[0]:.3f}–{span[1]:.3f})"

    def halfwidth(self, accuracy: float) -> float | None:
        if not self.rows or not self.proportion:
            return None
        return interval_halfwidth(accuracy, self.rows)

    def paired(self, row: dict[str, Any]) -> list[int] | None:
        """The artifact's stored per-row correctness, if it matches the row's accuracy (a stored
        file from another eval split is not used)."""
        correct = self.correct.get(row["artifact"])
        if not correct or row.get("accuracy") is None:
            return None
        if abs(sum(correct) / len(correct) - row["accuracy"]) > 0.5 / len(correct):
            return None
        return correct

    def compare(self, a: dict[str, Any], b: dict[str, Any]) -> Verdict | None:
        """Whether artifacts a and b (rows with `artifact` and `accuracy`) are within noise; None
        when there is nothing to judge by (no accuracy, no row count, not a proportion)."""
        ia, ib = self.interval(a.get("accuracy")), self.interval(b.get("accuracy"))
        if ia is None or ib is None:
            return None
        ca, cb = self.paired(a), self.paired(b)
        if ca is not None and cb is not None and len(ca) == len(cb):
            p, disagree = mcnemar_p(ca, cb)
            return Verdict(
                p >= ALPHA,
                f"exact McNemar test on the {len(ca)} eval rows' predictions: p = {p:.2g}, "
                f"{disagree} rows scored differently",
            )
        overlap = ia[0] <= ib[1] and ib[0] <= ia[1]
        return Verdict(
            overlap,
            f"their 95% Wilson intervals {'overlap' if overlap else 'do not overlap'}; judged by "
            "overlap, as the run stored no eval predictions of both for a paired test",
        )


def eval_rows(manifests: dict[str, dict], predictions: dict[str, Any] | None = None) -> int | None:
    """How many eval rows the accuracies were measured on: the stored predictions', the
    teacher's or student's evaluation, or a quantized artifact's parity check."""
    if predictions and predictions.get("labels"):
        return len(predictions["labels"])
    for stage in ("teacher", "distill"):
        rows = ((manifests.get(stage) or {}).get("metrics") or {}).get("eval_rows")
        if rows:
            return int(rows)
    for record in ((manifests.get("quantize") or {}).get("quantized") or {}).values():
        rows = (record.get("parity") or {}).get("rows")
        if rows:
            return int(rows)
    return None
