"""Augmented transfer set (distill/augment.py): deterministic rows, each method, the MLM replacement.
The stage that labels, caches and resumes them: tests/stages/test_distill_augment.py."""

from __future__ import annotations

import pytest

from distill.augment import AugmentSpec, MLMReplacer, augment_rows, planned
from modelkit.errors import InputError
from tests.conftest import tiny_bert

ROWS = [
    "the film is a quiet and moving portrait of grief",
    "a dull script and flat acting sink it",
    "funny",
    "one of the best pictures of the year , and the most generous",
]


def test_rows_depend_on_seed_and_index_only():
    spec = AugmentSpec(factor=3)
    first = augment_rows(ROWS, spec, seed=7)
    assert len(first) == 12 and first == augment_rows(ROWS, spec, seed=7)
    assert first != augment_rows(ROWS, spec, seed=8)
    # any chunking (what a resumed run makes) gives the same rows as one pass
    chunks = [augment_rows(ROWS, spec, 7, indices=range(a, b)) for a, b in [(0, 5), (5, 12)]]
    assert chunks[0] + chunks[1] == first
    # every new row differs from its source row (a copy would only repeat a training row)
    sources = planned(len(ROWS), spec, 7)
    assert all(new != ROWS[src] for new, src in zip(first, sources, strict=True))


@pytest.mark.parametrize("method", ["mask", "ngram", "dropout", "shuffle"])
def test_each_method_does_what_it_says(method):
    spec = AugmentSpec(factor=5, methods=(method,), p_mask=0.5, p_drop=0.5, max_ngram=3)
    sources = planned(len(ROWS), spec, 0)
    for new, src in zip(augment_rows(ROWS, spec, 0), sources, strict=True):
        old, words = ROWS[src].split(), new.split()
        if len(old) == 1:  # one word: masked whatever the method, else it would be a copy
            assert words == ["[MASK]"]
            continue
        if method == "mask":
            assert len(words) == len(old)
            assert all(w in ("[MASK]", o) for w, o in zip(words, old, strict=True))
        elif method == "ngram":
            assert 1 <= len(words) <= 3 and " ".join(words) in ROWS[src]
        elif method == "dropout":
            assert 1 <= len(words) <= len(old) and set(words) <= set(old)
        else:  # shuffle within windows of 3: the same words, each window a permutation of its own
            assert sorted(words) == sorted(old)
            for start in range(0, len(old), 3):
                assert sorted(words[start : start + 3]) == sorted(old[start : start + 3])


def test_planned_counts_factor_fractions_and_cap():
    assert len(planned(10, AugmentSpec(factor=2), 0)) == 20
    half = planned(10, AugmentSpec(factor=1.5), 0)
    assert len(half) == 15 and half == sorted(half)
    assert len(planned(10, AugmentSpec(factor=2, max_rows=7), 0)) == 7


def test_sentence_pairs_are_augmented_side_by_side():
    pairs = [("a man plays a guitar on stage", "someone performs music")] * 3
    out = augment_rows(pairs, AugmentSpec(factor=2, methods=("dropout",), p_drop=0.5), 1)
    assert len(out) == 6 and all(isinstance(r, tuple) and len(r) == 2 for r in out)
    for first, second in out:
        assert set(first.split()) <= set(pairs[0][0].split())
        assert set(second.split()) <= set(pairs[0][1].split())


def test_bad_specs_name_the_problem():
    with pytest.raises(InputError, match=r"augment method 'swap': allowed values \["):
        AugmentSpec(methods=("swap",))
    with pytest.raises(InputError, match="needs a masked language model"):
        augment_rows(ROWS, AugmentSpec(methods=("mlm",)), 0)


WORDS = [
    "the",
    "a",
    "film",
    "movie",
    "good",
    "bad",
    "great",
    "awful",
    "plot",
    "acting",
    "script",
    "fun",
    "dull",
    "is",
    "was",
    "and",
]


@pytest.fixture(scope="module")
def masked_lm(tmp_path_factory):
    """A tiny BertForMaskedLM on a word-level vocabulary, saved as safetensors."""
    from transformers import BertConfig, BertForMaskedLM

    folder = tmp_path_factory.mktemp("mlm")
    _, tokenizer = tiny_bert(folder, WORDS)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        architectures=["BertForMaskedLM"],
    )
    BertForMaskedLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def test_mlm_replaces_chosen_words_with_vocabulary_guesses(masked_lm):
    replacer = MLMReplacer.load(str(masked_lm), batch_size=2)
    rows = ["the film is good and the plot is fun", "a bad movie", "great acting"]
    spec = AugmentSpec(factor=4, methods=("mlm",), p_mlm=0.5, top_k=5)
    out = augment_rows(rows, spec, 3, mlm=replacer)
    assert out == augment_rows(rows, spec, 3, mlm=MLMReplacer.load(str(masked_lm), batch_size=3))
    sources = planned(len(rows), spec, 3)
    replaced = 0
    for new, src in zip(out, sources, strict=True):
        old, words = rows[src].split(), new.split()
        assert len(words) == len(old)  # word for word: replaced, never inserted or dropped
        assert set(words) <= set(WORDS)  # guesses are whole words of the vocabulary
        replaced += sum(w != o for w, o in zip(words, old, strict=True))
    assert replaced >= 5
