"""Token classification (`task.type: token_classification`, NER-style BIO tags), part by part:
entity spans and scores against hand-computed values, word-piece alignment, row-named data errors
and refusals, the per-token KD mask, token students and heads. The runs end to end on BERT,
DistilBERT and RoBERTa teachers are in tests/e2e/test_token_classification.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from distill.combined import CombinedLoss, LossSpec
from modelkit.batching import label_array
from modelkit.entities import entity_scores, spans
from modelkit.task_types import TASK_TYPES
from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError, DataError
from pipelines.data.entity_sentences import TAGS
from pipelines.data.loading import load_task_data
from pipelines.data.words import align_tags
from tests.conftest import tiny_recipe, write_jsonl, write_recipe

KIND = TASK_TYPES["token_classification"]
TASK = {  # the task of tests/e2e/test_token_classification.py
    "type": "token_classification",
    "text_columns": ["tokens"],
    "label_column": "tags",
    "labels": TAGS,
}
DATA = {"source": "synthetic:entities", "synthetic_rows": 800, "max_length": 32}


# ---------------------------------------------------------------- spans and scores


def test_spans_read_bio_as_seqeval_does():
    tags = ["B-PER", "I-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-ORG", "B-ORG"]
    # I-LOC after O starts a span; B-LOC ends one; I-ORG after LOC starts its own
    assert spans(tags) == [
        ("PER", 0, 2),
        ("LOC", 3, 5),
        ("LOC", 5, 6),
        ("ORG", 6, 7),
        ("ORG", 7, 8),
    ]
    assert spans(["O", "O"]) == [] and spans(["I-PER"]) == [("PER", 0, 1)]


def test_entity_scores_count_exact_spans_only():
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold = [[1, 2, 0, 3], [0, 3, 4]]  # PER 0-2, LOC 3-4 | LOC 1-3
    pred = [[1, 0, 0, 3], [0, 3, 4]]  # PER 0-1 (wrong end), LOC 3-4 | LOC 1-3
    scores = entity_scores(pred, gold, names)
    assert scores["entity_precision"] == pytest.approx(2 / 3)
    assert scores["entity_recall"] == pytest.approx(2 / 3)
    assert scores["entity_f1"] == pytest.approx(2 / 3)
    assert scores["tag_accuracy"] == pytest.approx(6 / 7)
    assert entity_scores([[0, 0]], [[0, 0]], names)["entity_f1"] == 0.0  # nothing to find


def test_the_task_type_reads_words_where_labels_are_not_ignored():
    names = ["O", "B-PER", "I-PER"]
    labels = np.array([[-100, 1, -100, 2, -100], [-100, 0, 1, -100, -100]])
    logits = np.zeros((2, 5, 3))
    logits[0, 1, 1] = logits[0, 3, 2] = 5.0  # row 0: B-PER I-PER, right
    logits[1, 1, 1] = logits[1, 2, 1] = 5.0  # row 1: B-PER where O is gold, then B-PER
    logits[1, 4, 2] = 9.0  # padding: never read
    assert KIND.values(logits, labels) == [[1, 2], [1, 1]]
    metrics = KIND.metrics(logits, labels, names)
    # gold spans: PER 0-2 | PER 1-2; predicted: PER 0-2 | PER 0-1, PER 1-2
    assert metrics["entity_precision"] == pytest.approx(2 / 3)
    assert metrics["entity_recall"] == 1.0 and metrics["accuracy"] == metrics["entity_f1"]
    other = logits.copy()
    other[1, 1] = [5.0, 0, 0]  # one word changes; padding changes too, unread
    other[1, 4] = [0, 0, 0]
    assert KIND.agreement(logits, other, labels) == pytest.approx(3 / 4)
    with pytest.raises(ValueError, match="label"):
        KIND.metrics(logits, labels)  # the names are needed
    # score_values cuts gold rows to the words predicted (truncation)
    assert KIND.score_values([[1, 2]], [[1, 2, 0, 1]], 3, names) == 1.0


def test_word_pieces_get_the_tag_of_the_word_they_start():
    assert align_tags([None, 0, 0, 1, 2, 2, None], [3, 0, 5]) == [-100, 3, -100, 0, 5, -100, -100]
    padded = label_array([[1, 2], [3], [0, 0, 0]])
    assert padded.tolist() == [[1, 2, -100], [3, -100, -100], [0, 0, 0]]
    assert label_array([1, 0, 1]).tolist() == [1, 0, 1]  # row labels unchanged


# ---------------------------------------------------------------- data and recipes


def _recipe(tmp_path, rows, **task):
    write_jsonl(tmp_path / "data" / "train.jsonl", rows)
    write_jsonl(tmp_path / "data" / "validation.jsonl", rows[:4])
    return load_recipe(
        write_recipe(
            tmp_path / "r.yaml",
            tiny_recipe(
                task={**TASK, **task},
                data={"source": str(tmp_path / "data"), "max_length": 16},
            ),
        )
    )


def test_bad_rows_are_named_with_the_fix(tmp_path):
    good = {"tokens": ["alice", "flew", "to", "oslo"], "tags": ["B-PER", "O", "O", "B-LOC"]}
    rows = [good] * 8 + [{"tokens": ["bob", "ran"], "tags": ["B-PER"]}]
    with pytest.raises(DataError, match=r"train.jsonl line 9: 1 tags for 2 words"):
        load_task_data(_recipe(tmp_path, rows))
    rows = [good] * 8 + [{"tokens": "bob ran", "tags": ["B-PER", "O"]}]
    with pytest.raises(DataError, match=r"line 9: text column 'tokens'.*list of\s+words"):
        load_task_data(_recipe(tmp_path, rows))
    rows = [good] * 8 + [{"tokens": ["bob", "ran"], "tags": ["B-PERSON", "O"]}]
    with pytest.raises(DataError, match=r"line 9: tags .*B-PERSON.*one per word"):
        load_task_data(_recipe(tmp_path, rows))
    loaded = load_task_data(_recipe(tmp_path, [good] * 8))
    assert loaded.train[0]["labels"] == [1, 0, 0, 3]


def test_recipes_refuse_what_token_tasks_do_not_do(tmp_path):
    base = tiny_recipe(task=TASK, data=DATA)

    def refused(match, **sections):
        recipe = {**base, **sections}
        with pytest.raises(ConfigError, match=match):
            load_recipe(write_recipe(tmp_path / "r.yaml", recipe))

    refused(r"\['PER'\] are not BIO tags", task={**TASK, "labels": ["O", "PER"]})
    refused(r"one column of word lists", task={**TASK, "text_columns": ["a", "b"]})
    refused(r"distill.augment.factor", distill={**base["distill"], "augment": {"factor": 1}})
    refused(
        r"student.init_weights prune",
        student={
            "init": "config",
            "init_weights": "prune",
            "layers": [0],
            "config": {
                "num_hidden_layers": 1,
                "hidden_size": 32,
                "num_attention_heads": 2,
                "intermediate_size": 64,
            },
        },
    )


def test_kd_is_over_real_tokens_and_ce_over_tagged_pieces():
    torch.manual_seed(0)
    loss = CombinedLoss(LossSpec(task_type="token_classification"), 8, 8)
    logits_s = torch.randn(2, 4, 3)
    logits_t = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    labels = torch.tensor([[-100, 1, 2, -100], [-100, 0, -100, -100]])

    class Out:
        logits = logits_s

    _, terms, _ = loss(Out, logits_t, labels, mask)
    changed = logits_t.clone()
    changed[0, 3] = changed[1, 2:] = 50.0  # padding only
    _, same, _ = loss(Out, changed, labels, mask)
    assert same["kd"] == pytest.approx(terms["kd"].item())
    changed[0, 0] = 50.0  # a real token ([CLS]): untagged, but the teacher's output counts
    _, moved, _ = loss(Out, changed, labels, mask)
    assert moved["kd"].item() != pytest.approx(terms["kd"].item())
    tagged = logits_s[labels != -100]
    expected = torch.nn.functional.cross_entropy(tagged, labels[labels != -100])
    assert terms["task"].item() == pytest.approx(expected.item())


def _tiny_token_teacher(tmp_path):
    """An in-memory BertForTokenClassification (config.architectures unset, as before saving)
    with a word tokenizer, and a tokenized eval split of generated entities."""
    import datasets
    from transformers import BertConfig, BertForTokenClassification

    from pipelines.core.models import build_word_vocab
    from pipelines.data.synthetic import generate
    from pipelines.data.words import tokenize_words

    rows = generate("entities", 32, seed=3)
    tokenizer = build_word_vocab([" ".join(r["tokens"]) for r in rows], tmp_path)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=len(TAGS),
        id2label=dict(enumerate(TAGS)),
        label2id={t: i for i, t in enumerate(TAGS)},
    )
    torch.manual_seed(0)
    teacher = BertForTokenClassification(config)
    split = datasets.Dataset.from_list(
        [{"tokens": r["tokens"], "labels": [TAGS.index(t) for t in r["tags"]]} for r in rows]
    )
    return teacher, tokenizer, tokenize_words(split, tokenizer, "tokens", 32)


def test_config_students_of_token_teachers_are_token_classifiers(tmp_path):
    from distill.student import from_config
    from pipelines.train.evaluation import evaluate_model

    teacher, tokenizer, eval_set = _tiny_token_teacher(tmp_path)
    assert not getattr(teacher.config, "architectures", None)  # set only by save_pretrained
    student = from_config(teacher, 1, 32, 2, 64)
    assert type(student).__name__ == "BertForTokenClassification"
    metrics, logits = evaluate_model(student, eval_set, tokenizer)
    assert logits.ndim == 3 and metrics["accuracy"] == metrics["entity_f1"]
    assert 0.0 <= metrics["tag_accuracy"] <= 1.0


def test_a_fine_tuned_checkpoint_with_another_head_is_refused(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    from pipelines.core.config import SecurityConfig
    from pipelines.core.errors import DistilleryError
    from pipelines.core.models import load_classifier
    from pipelines.core.sources import model_source

    config = BertConfig(
        vocab_size=30,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=len(TAGS),
    )
    BertForSequenceClassification(config).save_pretrained(tmp_path / "seq")
    source = model_source(str(tmp_path / "seq"), "teacher.model")
    with pytest.raises(
        DistilleryError, match=r"BertForSequenceClassification, not a …ForTokenClassification"
    ):
        load_classifier(
            source, TAGS, SecurityConfig(), finetuned=True, kind=TASK_TYPES["token_classification"]
        )


def test_a_word_without_pieces_is_refused_with_its_row(tmp_path):
    import datasets

    from pipelines.data.words import tokenize_words

    _, tokenizer, _ = _tiny_token_teacher(tmp_path)
    split = datasets.Dataset.from_list(
        [
            {"tokens": ["alice", "flew"], "labels": [1, 0]},
            {"tokens": ["alice", "\u200b", "flew"], "labels": [1, 0, 0]},
        ]
    )
    with pytest.raises(DataError, match=r"row 2 .*word 2 \('\\u200b'\) gives no word pieces"):
        tokenize_words(split, tokenizer, "tokens", 32)
