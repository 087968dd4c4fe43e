"""Every encoder family in `modelkit.families` at the library level, on a tiny model of its own
class (tests/families.py): copied layers are the named blocks, relation matches hook each family's
projections, config students of teachers without segment or position tables. The families through
every stage: tests/e2e/test_families.py."""

from __future__ import annotations

import numpy as np
import pytest

from modelkit.families import FAMILIES, encoder_layers
from tests.families import FAMILY_NAMES, build_family, corpus_words


@pytest.mark.parametrize("family", FAMILY_NAMES)
def test_teacher_layers_copy_the_named_blocks_and_relations_hook_them(family, tmp_path):
    import torch

    from distill.relations import RelationCapture
    from distill.student import from_teacher_layers

    teacher, tokenizer = build_family(family, tmp_path, corpus_words(), seed=3)
    student = from_teacher_layers(teacher, [1])
    assert len(encoder_layers(student)) == 1 and student.config.num_hidden_layers == 1
    for (name, p_s), (_, p_t) in zip(
        encoder_layers(student)[0].state_dict().items(),
        encoder_layers(teacher)[1].state_dict().items(),
        strict=True,
    ):
        assert torch.equal(p_s, p_t), (family, name)
    batch = tokenizer(
        ["the film is good", "the plot was not dull at all"], padding=True, return_tensors="pt"
    )
    capture = RelationCapture(student, {"query", "key", "value"})
    with torch.no_grad():
        student(**batch)
    taken = capture.take()
    capture.remove()
    width = student.config.hidden_size
    for feature in ("query", "key", "value"):
        (tensor,) = taken[feature]
        assert tensor.shape == (*batch["input_ids"].shape, width), (family, feature)


def test_relation_capture_uses_each_familys_projection_names():
    """A family whose projection names are wrong is refused by name, before any training."""
    import dataclasses

    import transformers as tf

    from distill.relations import projection_modules

    model = tf.DistilBertForSequenceClassification(
        tf.DistilBertConfig(vocab_size=30, dim=16, n_heads=2, hidden_dim=32, n_layers=1)
    )
    assert len(projection_modules(model)) == 1
    original = FAMILIES["distilbert"]
    FAMILIES["distilbert"] = dataclasses.replace(
        original, projections=("attention.self.query",) * 3
    )
    try:
        with pytest.raises(Exception, match="has no attention.self.query"):
            projection_modules(model)
    finally:
        FAMILIES["distilbert"] = original


@pytest.mark.parametrize("family", ["distilbert", "deberta-v2"])
def test_config_students_of_teachers_without_segment_or_position_tables(family, tmp_path):
    """A fresh BERT student of a teacher lacking token-type (or absolute position) embeddings
    copies the tables the teacher has and still runs."""
    import torch

    from distill.student import from_config

    teacher, tokenizer = build_family(family, tmp_path, corpus_words())
    student = from_config(teacher, 1, 32, 2, 64, init_embeddings="truncate")
    source = teacher.base_model.embeddings.word_embeddings.weight
    assert torch.equal(student.bert.embeddings.word_embeddings.weight[:, :32], source[:, :32])
    batch = tokenizer(["the film is good"], return_tensors="pt")
    with torch.no_grad():
        logits = student(**batch).logits
    assert logits.shape == (1, 2) and np.isfinite(logits.numpy()).all()


def test_relations_read_the_tokens_projections_when_deberta_v3_reuses_them(tmp_path):
    """DeBERTa-v3 (share_att_key) also runs query_proj/key_proj on its relative-position
    embeddings inside each block; the capture keeps the tokens' [batch, seq, width] outputs."""
    import torch
    import transformers as tf

    from distill.relations import RelationCapture

    config = tf.DebertaV2Config(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        relative_attention=True,
        position_buckets=8,
        share_att_key=True,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        type_vocab_size=0,
    )
    model = tf.DebertaV2ForSequenceClassification(config).eval()
    capture = RelationCapture(model, {"query", "key", "value"})
    for seq in (5, 9):  # a second forward of another length: nothing stale survives
        ids = torch.randint(5, 40, (3, seq))
        with torch.no_grad():
            model(input_ids=ids)
        taken = capture.take()
        for feature in ("query", "key", "value"):
            assert [tuple(t.shape) for t in taken[feature]] == [(3, seq, 32)] * 2, feature
    capture.remove()


def test_every_registered_family_has_a_tiny_builder():
    assert set(FAMILY_NAMES) == set(FAMILIES)
