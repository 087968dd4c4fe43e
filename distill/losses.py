"""Loss registries: logit KD, intermediate matches, the task loss.

One registry per kind (TextBrewer's KD_LOSS_MAP / MATCH_LOSS_MAP):
  KD_LOSSES[name](logits_s, logits_t, temperature) -> scalar
  MATCH_LOSSES[name].fn(feat_s, feat_t, mask=None) -> scalar
Suffix `_s` is the student, `_t` the teacher. Shapes:
  logits: [batch, labels]; hidden: [batch, seq, width]; attention: [batch, heads, seq, seq];
  mask: [batch, seq] with 1 for real tokens and 0 for padding.

torch is imported inside the functions: recipe validation reads these registries' names (to
reject `kd_loss: kll` before anything trains) without loading torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    import torch

# ---------------------------------------------------------------- logit KD


def kd_kl(logits_s: torch.Tensor, logits_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · KL(softmax(t/T) ‖ softmax(s/T)), batch mean (Hinton et al.); T² keeps gradients comparable."""
    import torch.nn.functional as F

    log_p_s = F.log_softmax(logits_s / temperature, dim=-1)
    log_p_t = F.log_softmax(logits_t / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, log_target=True, reduction="batchmean") * temperature**2


def kd_mse(logits_s: torch.Tensor, logits_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean squared error between raw logits (Ba & Caruana); temperature is not used."""
    import torch.nn.functional as F

    return F.mse_loss(logits_s, logits_t)


def kd_soft_ce(logits_s: torch.Tensor, logits_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """T² · cross-entropy of the student's softened distribution against the teacher's soft targets."""
    import torch.nn.functional as F

    p_t = F.softmax(logits_t / temperature, dim=-1)
    return -(p_t * F.log_softmax(logits_s / temperature, dim=-1)).sum(-1).mean() * temperature**2


KD_LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "kl": kd_kl,
    "mse": kd_mse,
    "soft_ce": kd_soft_ce,
}

# ---------------------------------------------------------------- intermediate matches


def _token_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of per-token values [batch, seq] over real tokens only."""
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def hidden_mse(
    feat_s: torch.Tensor, feat_t: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """MSE between hidden states [batch, seq, width] (student already projected), padding masked out."""
    return _token_mean(((feat_s - feat_t) ** 2).mean(-1), mask)


def hidden_cosine(
    feat_s: torch.Tensor, feat_t: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """1 − cosine similarity per token [batch, seq, width], averaged over real tokens."""
    import torch.nn.functional as F

    return _token_mean(1.0 - F.cosine_similarity(feat_s, feat_t, dim=-1), mask)


def _head_align(att_s: torch.Tensor, att_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average over heads when head counts differ: [batch, heads, seq, seq] → [batch, 1, seq, seq]."""
    if att_s.shape[1] != att_t.shape[1]:
        return att_s.mean(1, keepdim=True), att_t.mean(1, keepdim=True)
    return att_s, att_t


def attention_kl(
    feat_s: torch.Tensor, feat_t: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """KL(teacher ‖ student) of attention rows [batch, heads, seq, seq] for real query tokens (MiniLM)."""
    import torch

    att_s, att_t = _head_align(feat_s, feat_t)
    eps = 1e-12
    kl = (att_t * (torch.log(att_t + eps) - torch.log(att_s + eps))).sum(-1)  # [batch, heads, seq]
    return _token_mean(kl.mean(1), mask)


def attention_mse(
    feat_s: torch.Tensor, feat_t: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """MSE of attention probabilities [batch, heads, seq, seq] for real query tokens (TinyBERT)."""
    att_s, att_t = _head_align(feat_s, feat_t)
    return _token_mean(((att_s - att_t) ** 2).mean(-1).mean(1), mask)


def relation_kl(
    feat_s: torch.Tensor, feat_t: torch.Tensor, mask: torch.Tensor | None = None, heads: int = 1
) -> torch.Tensor:
    """KL(teacher ‖ student) of self-relations of one projection (MiniLM's value relation, MiniLMv2's
    query/key/value relations). Each of `feat_s` [batch, seq, width_s] and `feat_t` [batch, seq,
    width_t] is split into `heads` relation heads; relation = softmax(x·xᵀ / √d) over real key
    tokens; the KL is averaged over heads and real query tokens. Widths may differ."""
    import math

    import torch.nn.functional as F

    def log_relation(x: torch.Tensor) -> torch.Tensor:
        batch, seq, width = x.shape
        d = width // heads
        x = x.view(batch, seq, heads, d).transpose(1, 2)  # [batch, heads, seq, d]
        scores = x @ x.transpose(-1, -2) / math.sqrt(d)
        if mask is not None:  # a large finite fill: -inf would make 0·(−inf) NaNs in the KL
            scores = scores.masked_fill(mask[:, None, None, :] == 0, -1e9)
        return F.log_softmax(scores, dim=-1)

    log_t, log_s = log_relation(feat_t), log_relation(feat_s)
    kl = (log_t.exp() * (log_t - log_s)).sum(-1)  # [batch, heads, seq]
    return _token_mean(kl.mean(1), mask)


Feature = Literal["hidden", "attention", "embedding", "query", "key", "value"]
RELATION_FEATURES = ("query", "key", "value")


@dataclass(frozen=True)
class MatchLoss:
    feature: Feature  # which outputs it compares
    fn: Callable[..., torch.Tensor]
    projected: bool  # widths may differ → a learned projection maps student to teacher width


MATCH_LOSSES: dict[str, MatchLoss] = {
    "hidden_mse": MatchLoss("hidden", hidden_mse, projected=True),
    "hidden_cosine": MatchLoss("hidden", hidden_cosine, projected=True),
    "attention_kl": MatchLoss("attention", attention_kl, projected=False),
    "attention_mse": MatchLoss("attention", attention_mse, projected=False),
    "embedding_mse": MatchLoss("embedding", hidden_mse, projected=True),
    "query_relation": MatchLoss("query", relation_kl, projected=False),
    "key_relation": MatchLoss("key", relation_kl, projected=False),
    "value_relation": MatchLoss("value", relation_kl, projected=False),
}

# ---------------------------------------------------------------- projections


def linear_projection(width_s: int, width_t: int) -> torch.nn.Module:
    """Student width → teacher width; training-only (TinyBERT's W_h), never exported."""
    import torch

    return torch.nn.Linear(width_s, width_t)


PROJECTIONS: dict[str, Callable[[int, int], torch.nn.Module]] = {"linear": linear_projection}

# ---------------------------------------------------------------- task


def task_ce(
    logits_s: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy against the gold labels [batch] (token classification: [batch, tokens]),
    over labelled rows (tokens) only.

    Rows labelled -100 (augmented rows, which only the teacher labels) are left out; a batch with
    no labelled row gives 0 (cross_entropy alone would give NaN: a mean over no rows)."""
    import torch.nn.functional as F

    labelled = labels != -100
    if not bool(labelled.any()):
        return logits_s.sum() * 0.0  # zero that keeps the graph (and the device, dtype)
    return F.cross_entropy(logits_s[labelled], labels[labelled], label_smoothing=label_smoothing)


def task_bce(
    logits_s: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Multi-label: binary cross-entropy of one sigmoid per label against 0/1 targets [batch,
    labels] (label smoothing pulls the targets toward 0.5 by that share)."""
    import torch.nn.functional as F

    targets = labels.float() * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return F.binary_cross_entropy_with_logits(logits_s, targets)


def task_mse(
    logits_s: torch.Tensor, labels: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Regression: mean squared error of the one output [batch, 1] against the targets [batch]."""
    del label_smoothing  # no classes to smooth
    return ((logits_s[:, 0] - labels.float()) ** 2).mean()


def kd_sigmoid(logits_s: torch.Tensor, logits_t: torch.Tensor, temperature: float) -> torch.Tensor:
    """Multi-label KD: T² · binary cross-entropy of each student sigmoid at temperature T against
    the teacher's (per label, averaged); its gradient vanishes where the two agree."""
    import torch

    targets = torch.sigmoid(logits_t / temperature)
    return (
        torch.nn.functional.binary_cross_entropy_with_logits(logits_s / temperature, targets)
        * temperature**2
    )


def kd_regression(
    logits_s: torch.Tensor, logits_t: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Regression KD: mean squared error against the teacher's output (no temperature: there is
    no distribution to soften)."""
    del temperature
    return ((logits_s - logits_t) ** 2).mean()


# Per task type (`modelkit.task_types`): the gold-label term, and the KD term where the recipe's
# `distill.kd_loss` (softmax KD) does not apply.
TASK_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "single_label": task_ce,
    "multi_label": task_bce,
    "regression": task_mse,
    "token_classification": task_ce,  # [batch, tokens, labels]: the -100 pieces are left out
}
TYPED_KD: dict[str, Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]] = {
    "multi_label": kd_sigmoid,
    "regression": kd_regression,
}
