"""Pruned config students (`student.init_weights: prune`, distill/prune.py)."""

from __future__ import annotations

import pytest
import torch

from distill.prune import check_prunable, prune_teacher
from pipelines.core.config import ModelShape
from tests.conftest import tiny_bert

WORDS = [f"w{i}" for i in range(40)]


def _teacher(tmp_path, **config):
    shape = dict(num_hidden_layers=3, hidden_size=32, num_attention_heads=4, intermediate_size=64)
    model, tokenizer = tiny_bert(tmp_path / "t", WORDS, seed=1, **{**shape, **config})
    return model, tokenizer


def _batches(tokenizer, n_batches=3, seed=0):
    """Random sentences of varied length, padded per batch (so the masks matter)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        texts = [
            " ".join(WORDS[int(j)] for j in torch.randint(0, 40, (int(n),), generator=g))
            for n in torch.randint(2, 12, (8,), generator=g)
        ]
        out.append(dict(tokenizer(texts, padding=True, return_tensors="pt")))
    return out


def test_cutting_nothing_reproduces_the_teacher(tmp_path):
    teacher, tokenizer = _teacher(tmp_path)
    shape = ModelShape(
        num_hidden_layers=3, hidden_size=32, num_attention_heads=4, intermediate_size=64
    )
    student, kept = prune_teacher(teacher, shape, [0, 1, 2], _batches(tokenizer))
    student.eval()
    batch = _batches(tokenizer, 1, seed=5)[0]
    with torch.no_grad():
        expected, got = teacher(**batch).logits, student(**batch).logits
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    assert kept["channels"] == list(range(32))


def test_a_narrower_student_keeps_the_most_active_parts(tmp_path):
    teacher, tokenizer = _teacher(tmp_path)
    bert = teacher.bert
    with torch.no_grad():  # channel 7: loud in every LayerNorm; channel 3: silent everywhere
        norms = [bert.embeddings.LayerNorm] + [
            m
            for layer in bert.encoder.layer
            for m in (layer.attention.output.LayerNorm, layer.output.LayerNorm)
        ]
        for norm in norms:
            norm.weight[7], norm.bias[7] = 20.0, 5.0
            norm.weight[3], norm.bias[3] = 0.0, 0.0
        layer2 = bert.encoder.layer[2]
        layer2.attention.self.value.weight[8:16] *= 50  # head 1 (of 8 dims) of layer 2: loudest
        layer2.attention.self.value.bias[8:16] += 3
        layer2.intermediate.dense.bias[11] = 40.0  # neuron 11 of layer 2 always on
    shape = ModelShape(
        num_hidden_layers=2, hidden_size=16, num_attention_heads=2, intermediate_size=24
    )
    student, kept = prune_teacher(teacher, shape, [0, 2], _batches(tokenizer))
    channels = torch.tensor(kept["channels"])
    assert 7 in kept["channels"] and 3 not in kept["channels"]
    assert kept["channels"] == sorted(kept["channels"]) and len(kept["channels"]) == 16
    assert 1 in kept["heads"][1]  # student layer 1 is teacher layer 2
    # every weight is a slice of the teacher's: check one of each kind
    t, s = teacher.state_dict(), student.state_dict()
    heads = kept["heads"][1]
    rows = torch.cat([torch.arange(h * 8, h * 8 + 8) for h in heads])
    torch.testing.assert_close(
        s["bert.encoder.layer.1.attention.self.value.weight"],
        t["bert.encoder.layer.2.attention.self.value.weight"][rows][:, channels],
    )
    torch.testing.assert_close(
        s["bert.embeddings.word_embeddings.weight"],
        t["bert.embeddings.word_embeddings.weight"][:, channels],
    )
    torch.testing.assert_close(s["classifier.weight"], t["classifier.weight"][:, channels])
    ffn_in = s["bert.encoder.layer.1.intermediate.dense.bias"]
    assert 40.0 in ffn_in.tolist()  # neuron 11 kept
    assert student.config.num_attention_heads == 2 and student.config.hidden_size == 16
    # a plain HF classifier that runs and reloads
    student.save_pretrained(tmp_path / "s")
    from transformers import AutoModelForSequenceClassification

    again = AutoModelForSequenceClassification.from_pretrained(tmp_path / "s")
    assert set(again.state_dict()) == set(s)
    again(**_batches(tokenizer, 1)[0])


@pytest.mark.parametrize(
    "shape, layers, message",
    [
        (
            (2, 16, 4, 24),
            [0, 1],
            "whole teacher heads of 8 dimensions, so hidden_size 16 needs 2 heads",
        ),
        ((2, 64, 8, 24), [0, 1], "hidden_size: 64 is larger than the teacher's 32"),
        ((2, 16, 2, 24), [0], "[0] lists 1 teacher layers for a 2-layer student"),
        ((2, 16, 2, 24), [0, 3], "[3] out of range; the teacher has 3 layers, valid indices 0..2"),
    ],
)
def test_impossible_cuts_say_what_to_change(tmp_path, shape, layers, message):
    teacher, _ = _teacher(tmp_path)
    keys = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")
    with pytest.raises(ValueError) as error:
        check_prunable(teacher.config, ModelShape(**dict(zip(keys, shape, strict=False))), layers)
    assert message in str(error.value)
