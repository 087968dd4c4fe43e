from types import SimpleNamespace

import pytest
import torch

from distill.combined import CombinedLoss, LossSpec, Schedule
from distill.losses import KD_LOSSES, MATCH_LOSSES, PROJECTIONS, task_ce
from modelkit.errors import lookup

KD_NAMES = ["kl", "mse", "soft_ce"]
MATCH_NAMES = [
    "hidden_mse",
    "hidden_cosine",
    "attention_kl",
    "attention_mse",
    "embedding_mse",
    "query_relation",
    "key_relation",
    "value_relation",
]


def test_every_registry_entry_is_covered_here():
    assert sorted(KD_LOSSES) == sorted(KD_NAMES)
    assert sorted(MATCH_LOSSES) == sorted(MATCH_NAMES)
    assert sorted(PROJECTIONS) == ["linear"]


@pytest.mark.parametrize("name", KD_NAMES)
def test_kd_loss_minimal_at_equality_positive_otherwise(name):
    torch.manual_seed(0)
    logits_t = torch.randn(8, 3)
    fn = KD_LOSSES[name]
    same = logits_t.clone().requires_grad_(True)
    at_equal = fn(same, logits_t, 2.0)
    at_equal.backward()
    assert same.grad.abs().max() < 1e-5  # a minimum: no gradient at equality
    other = torch.randn(8, 3, requires_grad=True)
    value = fn(other, logits_t, 2.0)
    value.backward()
    assert value > at_equal + 1e-4
    assert other.grad.abs().sum() > 0
    if name != "soft_ce":  # soft_ce equals the teacher's entropy at equality, not zero
        assert at_equal.abs() < 1e-6


def test_kl_scales_with_temperature_squared():
    s, t = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    # at T = 4 the two sides are [0.5, 0] and [0, 0.5]: KL = tanh(0.25) · 0.5, times T² = 16
    assert KD_LOSSES["kl"](s, t, 4.0).item() == pytest.approx(1.95935, rel=1e-5)
    # the T² factor: scaling logits and T together leaves the softmax alone and multiplies by T²
    assert KD_LOSSES["kl"](4 * s, 4 * t, 4.0).item() == pytest.approx(
        16 * KD_LOSSES["kl"](s, t, 1.0).item(), rel=1e-5
    )


def _features(name, batch=2, seq=5, width=6, heads=2):
    if MATCH_LOSSES[name].feature == "attention":
        return torch.softmax(torch.randn(batch, heads, seq, seq), -1)
    return torch.randn(batch, seq, width)


@pytest.mark.parametrize("name", MATCH_NAMES)
def test_match_zero_at_equality_positive_otherwise_and_differentiable(name):
    torch.manual_seed(0)
    fn = MATCH_LOSSES[name].fn
    feat_t = _features(name)
    assert fn(feat_t.clone(), feat_t).abs() < 1e-5
    feat_s = _features(name).requires_grad_(True)
    value = fn(feat_s, feat_t)
    value.backward()
    assert value > 1e-4 and feat_s.grad.abs().sum() > 0


@pytest.mark.parametrize("name", MATCH_NAMES)
def test_match_ignores_padding(name):
    torch.manual_seed(1)
    feat_t, feat_s = _features(name), _features(name)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    base = MATCH_LOSSES[name].fn(feat_s, feat_t, mask)
    changed = feat_s.clone()
    if MATCH_LOSSES[name].feature == "attention":
        changed[0, :, 3:, :] = torch.softmax(torch.randn(2, 2, 5), -1)  # rows of padded queries
    else:
        changed[0, 3:] = 100.0
    assert MATCH_LOSSES[name].fn(changed, feat_t, mask) == pytest.approx(base.item(), rel=1e-6)
    assert MATCH_LOSSES[name].fn(changed, feat_t) != pytest.approx(base.item(), rel=1e-3)


@pytest.mark.parametrize("name", ["attention_kl", "attention_mse"])
def test_attention_with_different_head_counts_averages_heads(name):
    att_s = torch.softmax(torch.randn(2, 2, 4, 4), -1)
    att_t = att_s.mean(1, keepdim=True).repeat(
        1, 6, 1, 1
    )  # 6 heads, all equal to the student's mean
    assert MATCH_LOSSES[name].fn(att_s, att_t).abs() < 1e-5


def test_relation_compares_relations_not_values_and_allows_other_widths():
    fn = MATCH_LOSSES["value_relation"].fn
    torch.manual_seed(2)
    feat_t = torch.randn(2, 5, 8)
    # an orthogonal change of basis keeps every x·xᵀ, so the relation (and the loss) is unchanged
    rotation, _ = torch.linalg.qr(torch.randn(4, 4))
    rotated = torch.cat([feat_t[..., :4] @ rotation, feat_t[..., 4:] @ rotation], -1)
    assert fn(rotated, feat_t, heads=2) < 1e-5
    assert fn(2 * feat_t, feat_t, heads=2) > 1e-4  # scaling is not: it sharpens the softmax
    # a 12-wide student against the 8-wide teacher: same relation shape [batch, heads, seq, seq]
    wide = torch.randn(2, 5, 12, requires_grad=True)
    value = fn(wide, feat_t, heads=4)
    value.backward()
    assert value > 0 and wide.grad.abs().sum() > 0


def test_relation_heads_divide_both_widths():
    from distill.relations import relation_heads

    assert relation_heads(384, 384) == 12
    assert relation_heads(256, 384) == 8  # gcd 128: 12 does not divide it, 8 does
    assert relation_heads(32, 64) == 8


def test_task_ce_leaves_out_rows_without_a_label():
    logits = torch.tensor([[2.0, -1.0], [0.0, 3.0], [5.0, 5.0]], requires_grad=True)
    labels = torch.tensor([0, -100, 1])
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([0, 1]))
    assert task_ce(logits, labels).item() == pytest.approx(expected.item())
    none = task_ce(logits, torch.tensor([-100, -100, -100]))  # an all-augmented batch
    none.backward()
    assert none.item() == 0.0 and logits.grad.abs().sum() == 0  # not NaN, no gradient


def test_task_ce_label_smoothing():
    logits = torch.tensor([[10.0, -10.0]])
    labels = torch.tensor([0])
    assert task_ce(logits, labels) < 1e-6
    assert task_ce(logits, labels, label_smoothing=0.2) > 0.5


def test_unknown_names_list_the_known_ones():
    with pytest.raises(
        ValueError, match=r"unknown KD loss 'kll'; known: \['kl', 'mse', 'soft_ce'\]"
    ):
        lookup(KD_LOSSES, "kll", "KD loss")
    with pytest.raises(ValueError, match=r"unknown match loss 'hidden'; known: \['attention_kl'"):
        LossSpec(matches=["hidden"], layer_map=[(0, 0)])


def _outputs(width, layers, heads=2, seq=4, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(
        logits=torch.randn(batch, 2, generator=g),
        hidden_states=[torch.randn(batch, seq, width, generator=g) for _ in range(layers + 1)],
        attentions=[
            torch.softmax(torch.randn(batch, heads, seq, seq, generator=g), -1)
            for _ in range(layers)
        ],
    )


def test_projection_only_when_widths_differ():
    spec = LossSpec(matches=["hidden_mse", "attention_kl", "embedding_mse"], layer_map=[(0, 1)])
    same = CombinedLoss(spec, 8, 8)
    assert len(same.projections) == 0
    wider = CombinedLoss(spec, 8, 16)
    assert sorted(wider.projections) == ["embedding_mse", "hidden_mse"]  # attention needs none
    assert wider.projections["hidden_mse"].weight.shape == (16, 8)


def test_combined_loss_is_the_weighted_sum_and_reports_every_term():
    spec = LossSpec(
        weights={"task": Schedule(0.3), "kd": Schedule(0.7), "hidden_mse": Schedule(2.0)},
        matches=["hidden_mse", "attention_mse"],
        layer_map=[(0, 1), (1, 3)],
    )
    loss = CombinedLoss(spec, 6, 6)
    out_s, out_t = _outputs(6, 2, seed=1), _outputs(6, 4, seed=2)
    labels = torch.tensor([0, 1])
    mask = torch.ones(2, 4, dtype=torch.long)
    total, terms, weights = loss(out_s, out_t.logits, labels, mask, out_t=out_t)
    assert set(terms) == {"task", "kd", "hidden_mse", "attention_mse"}
    assert weights["attention_mse"] == 1.0  # a listed match without a weight gets 1.0
    expected = (
        0.3 * terms["task"]
        + 0.7 * terms["kd"]
        + 2.0 * terms["hidden_mse"]
        + 1.0 * terms["attention_mse"]
    )
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    hidden = (
        MATCH_LOSSES["hidden_mse"].fn(out_s.hidden_states[1], out_t.hidden_states[2], mask)
        + MATCH_LOSSES["hidden_mse"].fn(out_s.hidden_states[2], out_t.hidden_states[4], mask)
    ) / 2
    assert terms["hidden_mse"].item() == pytest.approx(hidden.item(), rel=1e-6)
    import torch.nn.functional as F

    assert terms["task"].item() == pytest.approx(F.cross_entropy(out_s.logits, labels).item())
    p_t = torch.softmax(out_t.logits / 2.0, -1)  # LossSpec's default temperature is 2.0
    kl = (p_t * (p_t.log() - torch.log_softmax(out_s.logits / 2.0, -1))).sum(-1).mean() * 4.0
    assert terms["kd"].item() == pytest.approx(kl.item(), rel=1e-5)
    attention = (
        MATCH_LOSSES["attention_mse"].fn(out_s.attentions[0], out_t.attentions[1], mask)
        + MATCH_LOSSES["attention_mse"].fn(out_s.attentions[1], out_t.attentions[3], mask)
    ) / 2
    assert terms["attention_mse"].item() == pytest.approx(attention.item(), rel=1e-6)


def test_linear_schedules_move_weight_and_temperature():
    spec = LossSpec(
        temperature=Schedule(4.0, "linear", 1.0), weights={"task": Schedule(0.0, "linear", 1.0)}
    )
    loss = CombinedLoss(spec, 4, 4)
    out = _outputs(4, 1)
    _, _, start = loss(out, out.logits, torch.tensor([0, 1]), None, progress=0.0)
    _, _, end = loss(out, out.logits, torch.tensor([0, 1]), None, progress=1.0)
    _, _, mid = loss(out, out.logits, torch.tensor([0, 1]), None, progress=0.5)
    assert (start["temperature"], mid["temperature"], end["temperature"]) == (4.0, 2.5, 1.0)
    assert (start["task"], end["task"], end["kd"]) == (0.0, 1.0, 0.5)
