"""Tang et al.'s word replacement (`replace`, `tang`): words drawn from the training text."""

from __future__ import annotations

from distill.augment import AugmentSpec, augment_rows, training_words

ROWS = ["a good movie with fine acting", "the plot is dull and slow", "great fun"]


def test_replace_draws_new_words_from_the_training_text_only():
    spec = AugmentSpec(factor=10, methods=("replace",), p_replace=0.3)
    rows = augment_rows(ROWS, spec, seed=3)
    words = set(training_words(ROWS))
    assert len(rows) == 30
    assert all(set(r.split()) <= words for r in rows)  # no word from outside the text
    sources = [ROWS[i // 10] for i in range(30)]
    assert all(r != s for r, s in zip(rows, sources, strict=True))  # each row changed
    assert any(set(r.split()) - set(s.split()) for r, s in zip(rows, sources, strict=True))
    assert augment_rows(ROWS, spec, seed=3) == rows  # seeded


def test_training_words_keep_repeats_so_frequent_words_come_up_more():
    words = training_words(["a a b", ("a c", "d")])
    assert words == ("a", "a", "b", "a", "c", "d")


def test_tang_masks_replaces_and_cuts_ngrams():
    spec = AugmentSpec(factor=20, methods=("tang",), p_mask=0.2, p_replace=0.2, p_ngram=0.5)
    rows = augment_rows(ROWS, spec, seed=0)
    words = set(training_words(ROWS)) | {"[MASK]"}
    assert all(set(r.split()) <= words for r in rows)
    assert any("[MASK]" in r for r in rows)
    assert any(len(r.split()) < len(ROWS[i // 20].split()) for i, r in enumerate(rows))
