"""Task types (`task.type`): what a model's outputs mean, how labels are encoded, and how one
score per artifact (the `accuracy` of manifests, reports and gates) is computed from them.

- single_label: one label of `task.labels` per row; softmax outputs; score = accuracy.
- multi_label: any subset of `task.labels` per row (a list of names or indices, or, in a column of
  them only, a 0/1 list as long as the labels); one sigmoid per label, > 0.5 means present; score = micro-F1.
- regression: one number per row; `task.labels` names the single output; score = Pearson r.
- token_classification: one BIO tag of `task.labels` per word (the text column holds the words);
  logits `[rows, tokens, labels]`, labels `[rows, tokens]` with -100 wherever no word starts
  (special tokens, a word's later pieces, padding); score = entity F1 (`modelkit.entities`), which
  needs the label names (`names=`).

Every score is higher-is-better, so the quantize gate (drop in points), the report's
recommendation (within a drop of the teacher) and the student search treat them alike; the
manifests hold the score as `accuracy` and again under the metric's own name.
Written with numpy because `evaluate` fetches its metric scripts from the Hub at run time and
scipy is not a dependency; Spearman is Pearson on average ranks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from modelkit.entities import entity_scores
from modelkit.errors import InputError


@dataclass(frozen=True)
class TaskType:
    name: str
    problem_type: str | None  # transformers' config.problem_type: picks the model's own loss
    metric: str  # the score's name
    head: str = "SequenceClassification"  # transformers' AutoModelFor<head> / BertFor<head>
    export_task: str = "text-classification"  # optimum's exporter task
    token_level: bool = False  # one prediction per word, not per row

    def predictions(self, logits: np.ndarray) -> np.ndarray:
        return PREDICTIONS[self.name](np.asarray(logits, dtype=np.float64))

    def metrics(
        self, logits: np.ndarray, labels: np.ndarray, names: Sequence[str] | None = None
    ) -> dict[str, float]:
        """Every metric of this type, the score also under `accuracy` (see the module doc)."""
        if self.token_level:
            gold = np.asarray(labels)
            out = entity_scores(
                word_rows(np.asarray(logits).argmax(-1), gold), word_rows(gold, gold), _names(names)
            )
        else:
            out = METRICS[self.name](np.asarray(logits, dtype=np.float64), np.asarray(labels))
        return {"accuracy": out[self.metric], **out}

    def score(
        self, logits: np.ndarray, labels: np.ndarray, names: Sequence[str] | None = None
    ) -> float:
        return self.metrics(logits, labels, names)["accuracy"]

    def values(self, logits: np.ndarray, labels: np.ndarray | None = None) -> list:
        """Per-row predictions as JSON values, as a bundle's predict.py reports them: a label
        index, the sorted indices of the labels present, the value rounded to 6 decimals, or
        (token_classification) the tag index of each word, read where `labels` is not -100."""
        preds = self.predictions(logits)
        if self.token_level:
            return word_rows(preds, np.asarray(_required(labels, "values")))
        if self.name == "multi_label":
            return [[int(j) for j in np.flatnonzero(row)] for row in preds]
        if self.name == "regression":
            return [round(float(v), 6) for v in preds]
        return [int(v) for v in preds]

    def score_values(
        self, predicted: list, gold: list, n_labels: int, names: Sequence[str] | None = None
    ) -> float:
        """The score of `values()`-style predictions against labels of the same form (token
        classification: each gold row cut to the words predicted, as truncation cuts them)."""
        if self.token_level:
            cut = [g[: len(p)] for p, g in zip(predicted, gold, strict=True)]
            return entity_scores(predicted, cut, _names(names))[self.metric]
        return self.score(self._as_logits(predicted, n_labels), self._as_labels(gold, n_labels))

    def agreement_values(self, reference: list, candidate: list, n_labels: int) -> float:
        """`agreement` of two `values()`-style prediction lists."""
        if self.token_level:  # per word
            pairs = [
                a == b
                for r, c in zip(reference, candidate, strict=True)
                for a, b in zip(r, c, strict=True)
            ]
            return float(np.mean(pairs)) if pairs else 1.0
        return self.agreement(
            self._as_logits(reference, n_labels), self._as_logits(candidate, n_labels)
        )

    def _as_logits(self, values: list, n_labels: int) -> np.ndarray:
        if self.name == "regression":
            return np.asarray(values, dtype=np.float64).reshape(-1, 1)
        if self.name == "multi_label":
            return self._as_labels(values, n_labels) - 0.5  # > 0 where present
        out = np.zeros((len(values), n_labels))
        out[np.arange(len(values)), np.asarray(values, dtype=np.int64)] = 1.0
        return out

    def _as_labels(self, values: list, n_labels: int) -> np.ndarray:
        if self.name == "multi_label":
            hot = np.zeros((len(values), n_labels))
            for row, present in enumerate(values):
                hot[row, list(present)] = 1.0
            return hot
        return np.asarray(values, dtype=np.float64 if self.name == "regression" else np.int64)

    def agreement(
        self, reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None = None
    ) -> float:
        """Share of rows whose prediction is the same in both (regression: within 1% of the
        reference's range; token_classification: share of words, where `labels` is not -100)."""
        ref, cand = self.predictions(reference), self.predictions(candidate)
        if self.token_level:
            words = np.asarray(_required(labels, "agreement")) != -100
            return float((ref == cand)[words].mean()) if words.any() else 1.0
        if self.name == "regression":
            spread = float(np.ptp(ref)) if len(ref) else 0.0
            return float((np.abs(ref - cand) <= 0.01 * max(spread, 1e-6)).mean())
        same = ref == cand
        return float(same.all(-1).mean() if same.ndim > 1 else same.mean())


TASK_TYPES: dict[str, TaskType] = {
    t.name: t
    for t in (
        TaskType("single_label", "single_label_classification", "accuracy"),
        TaskType("multi_label", "multi_label_classification", "micro_f1"),
        TaskType("regression", "regression", "pearson"),
        TaskType(
            "token_classification",
            None,  # transformers' token heads have one loss (CE over labels != -100)
            "entity_f1",
            head="TokenClassification",
            export_task="token-classification",
            token_level=True,
        ),
    )
}


def task_type(name: str) -> TaskType:
    if name not in TASK_TYPES:
        raise InputError(f"task.type: unknown {name!r}; allowed values: {', '.join(TASK_TYPES)}")
    return TASK_TYPES[name]


def task_type_of(config) -> TaskType:
    """The task type of a saved model's config (a token head by its architecture, which
    save_pretrained records, else its problem_type; unset = single label)."""
    if is_token_head(getattr(config, "architectures", None) or []):
        return TASK_TYPES["token_classification"]
    return _by_problem_type(config)


def is_token_head(architectures: Sequence[str]) -> bool:
    """Whether a config's `architectures` name a token-classification head."""
    return any(a.endswith("ForTokenClassification") for a in architectures)


def task_type_of_model(model) -> TaskType:
    """The task type of a model in memory: by its class (config.architectures is only set when
    it is saved, and a checkpoint's may name another head), else its config's problem_type."""
    if type(model).__name__.endswith("ForTokenClassification"):
        return TASK_TYPES["token_classification"]
    return _by_problem_type(model.config)


def _by_problem_type(config) -> TaskType:
    problem = getattr(config, "problem_type", None) or "single_label_classification"
    for t in TASK_TYPES.values():
        if t.problem_type == problem:
            return t
    raise InputError(f"model config problem_type {problem!r} is not one of ours")


# ---------------------------------------------------------------- predictions


METRIC_LABELS = {
    "accuracy": "accuracy",
    "micro_f1": "micro-F1",
    "pearson": "Pearson r",
    "entity_f1": "entity F1",
}

PREDICTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "single_label": lambda logits: logits.argmax(-1),
    "token_classification": lambda logits: logits.argmax(-1),
    "multi_label": lambda logits: (logits > 0).astype(np.int64),  # sigmoid > 0.5
    "regression": lambda logits: logits[:, 0],
}


def word_rows(values: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    """Per row, `values` `[rows, tokens]` read where `labels` is not -100 (one per word)."""
    return [[int(v) for v in row[gold != -100]] for row, gold in zip(values, labels, strict=True)]


def _required(labels, what: str):
    if labels is None:
        raise ValueError(f"token_classification {what} needs the labels (where the words start)")
    return labels


def _names(names: Sequence[str] | None) -> list[str]:
    if names is None:
        raise ValueError("token_classification metrics need the label (tag) names: names=...")
    return list(names)


# ---------------------------------------------------------------- metrics


def _single_label(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    preds = logits.argmax(-1)
    out = {"accuracy": float((preds == labels).mean()) if len(labels) else 0.0}
    if logits.shape[-1] == 2:
        out["f1"] = _f1(preds == 1, labels == 1)
    return out


def _f1(pred: np.ndarray, gold: np.ndarray) -> float:
    tp = float((pred & gold).sum())
    fp, fn = float((pred & ~gold).sum()), float((~pred & gold).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def _multi_label(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred, gold = logits > 0, labels > 0.5
    per_label = [_f1(pred[:, j], gold[:, j]) for j in range(gold.shape[1])]
    return {
        "micro_f1": _f1(pred, gold),
        "macro_f1": float(np.mean(per_label)) if per_label else 0.0,
        "exact_match": float((pred == gold).all(-1).mean()) if len(gold) else 0.0,
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    denominator = float(np.sqrt((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / denominator) if denominator > 0 else 0.0


def _ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), as Spearman's rho needs."""
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = np.arange(len(values), dtype=np.float64)
    _, groups = np.unique(values, return_inverse=True)
    sums = np.bincount(groups, weights=ranks)
    return (sums / np.bincount(groups))[groups]


def _regression(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred, gold = logits[:, 0], labels.astype(np.float64).reshape(-1)
    return {
        "pearson": _pearson(pred, gold),
        "spearman": _pearson(_ranks(pred), _ranks(gold)),
        "mse": float(((pred - gold) ** 2).mean()) if len(gold) else 0.0,
    }


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], dict[str, float]]] = {
    "single_label": _single_label,
    "multi_label": _multi_label,
    "regression": _regression,
}
