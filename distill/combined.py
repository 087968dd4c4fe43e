"""The combined loss: L = w_task·CE + w_kd·KD(T) + Σ_i w_i·match_i, every term reported on its own
(multi-label: BCE and sigmoid KD; regression: MSE to the labels and to the teacher; token
classification: CE over the tagged word pieces, KD over every real token of the attention mask).

This is the seed article's `L_total = L_source + λ·L_target` with the teacher as the source of
knowledge: CE on the labels is the target-task term, KD and the intermediate matches transfer the
teacher's knowledge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from distill.losses import (
    KD_LOSSES,
    MATCH_LOSSES,
    PROJECTIONS,
    RELATION_FEATURES,
    TASK_LOSSES,
    TYPED_KD,
)
from distill.relations import relation_heads
from distill.weights import full_weights
from modelkit.errors import InputError, lookup


@dataclass
class Schedule:
    """A value over training progress p in [0, 1]: constant, or linear from `start` to `end`."""

    start: float
    kind: str = "constant"
    end: float | None = None

    def at(self, progress: float) -> float:
        if self.kind == "constant" or self.end is None:
            return self.start
        if self.kind == "linear":
            return self.start + (self.end - self.start) * min(max(progress, 0.0), 1.0)
        raise InputError(f"unknown schedule kind {self.kind!r}; known: ['constant', 'linear']")


@dataclass
class LossSpec:
    """What the combined loss computes; the library-side twin of the recipe's `distill` section."""

    kd_loss: str = "kl"
    temperature: Schedule = field(default_factory=lambda: Schedule(2.0))
    weights: dict[str, Schedule] = field(default_factory=dict)  # missing terms: full_weights
    matches: list[str] = field(default_factory=list)
    layer_map: list[tuple[int, int]] = field(default_factory=list)
    label_smoothing: float = 0.0
    projection: str = "linear"
    # modelkit.task_types: single_label uses `kd_loss`; multi_label and regression their own KD
    task_type: str = "single_label"

    def __post_init__(self) -> None:
        lookup(KD_LOSSES, self.kd_loss, "KD loss")
        lookup(TASK_LOSSES, self.task_type, "task type")
        for name in self.matches:
            lookup(MATCH_LOSSES, name, "match loss")
        for name, value in full_weights({}, self.matches).items():
            self.weights.setdefault(name, Schedule(value))
        per_layer = [m for m in self.matches if MATCH_LOSSES[m].feature != "embedding"]
        if per_layer and not self.layer_map:
            raise InputError(
                f"matches {per_layer} need a layer map of (student, teacher) layer pairs"
            )

    @property
    def needs_hidden(self) -> bool:
        return any(MATCH_LOSSES[m].feature in ("hidden", "embedding") for m in self.matches)

    @property
    def needs_attention(self) -> bool:
        return any(MATCH_LOSSES[m].feature == "attention" for m in self.matches)

    @property
    def relation_features(self) -> set[str]:
        """Projections (query/key/value) whose self-relations a match compares (MiniLM)."""
        return {MATCH_LOSSES[m].feature for m in self.matches} & set(RELATION_FEATURES)

    @property
    def needs_teacher_features(self) -> bool:
        return bool(self.matches)


class CombinedLoss(torch.nn.Module):
    """Holds the training-only projections; `forward` returns (total, unweighted terms, weights)."""

    def __init__(self, spec: LossSpec, width_s: int, width_t: int):
        super().__init__()
        self.spec = spec
        self.kd = TYPED_KD.get(spec.task_type) or KD_LOSSES[spec.kd_loss]
        self.task_loss = TASK_LOSSES[spec.task_type]
        self.relation_heads = relation_heads(width_s, width_t)
        self.projections = torch.nn.ModuleDict()
        if width_s != width_t:  # created only when widths differ
            for name in spec.matches:
                if MATCH_LOSSES[name].projected:
                    self.projections[name] = PROJECTIONS[spec.projection](width_s, width_t)

    def _project(self, name: str, feat_s: torch.Tensor) -> torch.Tensor:
        return self.projections[name](feat_s) if name in self.projections else feat_s

    def match_term(
        self, name: str, out_s: Any, out_t: Any, mask: torch.Tensor, relations_s: dict
    ) -> torch.Tensor:
        match = MATCH_LOSSES[name]
        if match.feature in RELATION_FEATURES:
            feats_s, feats_t = relations_s[match.feature], out_t.relations[match.feature]
            return torch.stack(
                [
                    match.fn(feats_s[ls], feats_t[lt], mask, heads=self.relation_heads)
                    for ls, lt in self.spec.layer_map
                ]
            ).mean()
        if match.feature == "embedding":
            return match.fn(
                self._project(name, out_s.hidden_states[0]), out_t.hidden_states[0], mask
            )
        terms = []
        for layer_s, layer_t in self.spec.layer_map:
            if match.feature == "hidden":  # hidden_states[0] is the embeddings, [i + 1] layer i
                feat_s = self._project(name, out_s.hidden_states[layer_s + 1])
                terms.append(match.fn(feat_s, out_t.hidden_states[layer_t + 1], mask))
            else:
                terms.append(match.fn(out_s.attentions[layer_s], out_t.attentions[layer_t], mask))
        return torch.stack(terms).mean()

    def forward(
        self,
        out_s: Any,
        logits_t: torch.Tensor,
        labels: torch.Tensor,
        mask: torch.Tensor,
        out_t: Any = None,
        progress: float = 0.0,
        relations_s: dict | None = None,
    ):
        spec = self.spec
        temperature = spec.temperature.at(progress)
        w = {name: schedule.at(progress) for name, schedule in spec.weights.items()}
        logits_s = out_s.logits
        if logits_s.dim() == 3:  # token classification: KD per real token (mask), not padding
            real = mask.bool() if mask is not None else torch.ones_like(labels, dtype=torch.bool)
            kd_s, kd_t = logits_s[real], logits_t[real]
        else:
            kd_s, kd_t = logits_s, logits_t
        terms = {
            "task": self.task_loss(logits_s, labels, spec.label_smoothing),  # CE skips -100
            "kd": self.kd(kd_s, kd_t, temperature),
        }
        for name in spec.matches:
            terms[name] = self.match_term(name, out_s, out_t, mask, relations_s or {})
        total = (
            w["task"] * terms["task"]
            + w["kd"] * terms["kd"]
            + sum(w[m] * terms[m] for m in spec.matches)
        )
        return total, terms, {**w, "temperature": temperature}
