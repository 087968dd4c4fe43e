"""Token classification (`task.type: token_classification`, NER-style BIO tags): entity spans and
scores against hand-computed values, word-piece alignment, row-named data errors and refusals, the
per-token KD mask, and end to end on BERT, DistilBERT and RoBERTa teachers up to an int8 bundle whose
predict.py tags words and names the entities."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from distill.combined import CombinedLoss, LossSpec
from export.parity import onnx_logits
from modelkit.batching import label_array, padded_batches
from modelkit.entities import entity_scores, spans
from modelkit.task_types import TASK_TYPES
from pipelines.bundle.verify import run_predict, verify_bundle
from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError, DataError
from pipelines.core.models import load_stage_model
from pipelines.data.entities import TAGS
from pipelines.data.loading import load_task_data, tokenize
from pipelines.data.words import align_tags
from pipelines.run.runner import run_pipeline
from pipelines.train.evaluation import predict_logits
from quantize.openvino import OVClassifier, openvino_logits
from tests.conftest import tiny_recipe, write_jsonl, write_recipe
from tests.families import build_family, corpus_words
from tests.test_bundle import SECTIONS
from tests.test_families import BENCHED

KIND = TASK_TYPES["token_classification"]
TASK = {
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
            source,
            TAGS,
            SecurityConfig(),
            finetuned=True,
            problem_type=None,
            head="TokenClassification",
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


# ---------------------------------------------------------------- end to end


@pytest.fixture(scope="module", params=["bert", "distilbert", "roberta"])
def token_run(request, tmp_path_factory):
    family = request.param
    tmp = tmp_path_factory.mktemp(f"ner-{family}")
    recipe = tiny_recipe(
        **{
            **SECTIONS,
            "name": f"ner-{family}",
            "task": TASK,
            "data": DATA,
            "distill": {**SECTIONS["distill"], "epochs": 1, "matches": ["hidden_mse"]},
            "quantize": {"methods": ["dynamic", "static", "openvino"], "teacher": False},
            "bundle": {**SECTIONS["bundle"], "artifact": "student-int8-dynamic"},
            "bench": {**SECTIONS["bench"], "artifacts": BENCHED},
        }
    )
    recipe["teacher"].update(epochs=4, learning_rate=3e-3)
    if family != "bert":
        build_family(family, tmp / "model", corpus_words("entities"), num_labels=len(TAGS))
        if family == "roberta":  # as roberta-base ships: no space marked before the first word,
            config = tmp / "model" / "tokenizer_config.json"  # which pre-split words need
            config.write_text(
                json.dumps({**json.loads(config.read_text()), "add_prefix_space": False})
            )
        recipe["teacher"].update(init="pretrained", model=str(tmp / "model"), learning_rate=1e-3)
    recipe = load_recipe(write_recipe(tmp / "recipe.yaml", recipe))
    manifests = run_pipeline(recipe, tmp / "runs", target="bundle", echo=lambda _: None)
    return recipe, tmp / "runs" / recipe.name, manifests


def test_entity_f1_is_recomputed_from_the_saved_models(token_run):
    recipe, run, manifests = token_run
    teacher = manifests["teacher"]["metrics"]
    assert teacher["accuracy"] == teacher["entity_f1"] >= 0.7, teacher
    student, tokenizer = load_stage_model(run / "distill", recipe.security)
    assert type(student).__name__.endswith("ForTokenClassification")
    if recipe.name == "ner-roberta":  # loaded with add_prefix_space for word lists
        assert tokenizer.add_prefix_space
    eval_set = tokenize(load_task_data(recipe).eval, tokenizer, recipe)
    labels = label_array(eval_set["labels"])
    logits = predict_logits(student, eval_set, tokenizer, progress=False)
    assert logits.shape == (*labels.shape, len(TAGS))
    recorded = manifests["distill"]["metrics"]["entity_f1"]
    assert recorded == pytest.approx(KIND.score(logits, labels, TAGS))
    int8 = onnx_logits(
        run / "quantize" / "student-int8-dynamic" / "model.onnx", eval_set, tokenizer
    )
    assert int8.shape == logits.shape  # one row of logits per token
    recorded = manifests["quantize"]["metrics"]["student-int8-dynamic_accuracy"]
    assert recorded == pytest.approx(KIND.score(int8, labels, TAGS))
    parity = manifests["export"]["exports"]["student-onnx"]["parity"]
    assert parity["agreement"] == 1.0 and 0 < parity["max_abs_diff"] < 1e-4
    skipped = manifests["quantize"].get("skipped") or {}
    if "student-int8-openvino" in skipped:  # RoBERTa's graph: OpenVINO 2026.4 refuses to compile it
        assert (
            recipe.name == "ner-roberta"
            and "OpenVINO could not" in skipped["student-int8-openvino"]
        )
        return
    batches = (b for _, b in padded_batches(eval_set, tokenizer.pad_token_id, 32))
    ov = openvino_logits(OVClassifier(run / "quantize" / "student-int8-openvino"), batches)
    assert ov.shape == logits.shape  # padded to multiples of 16 inside, cut back per batch
    recorded = manifests["quantize"]["metrics"]["student-int8-openvino_accuracy"]
    assert recorded == pytest.approx(KIND.score(ov, labels, TAGS))


def test_the_bundle_tags_words_and_names_entities(token_run, tmp_path):
    recipe, run, manifests = token_run
    bundle = run / "bundle"
    config = json.loads((bundle / "config.json").read_text())
    assert config["task_type"] == "token_classification"
    summary = verify_bundle(bundle, recipe=recipe, echo=lambda _: None)
    assert summary["same_rows"] and summary["accuracy"] == summary["recorded_accuracy"]
    results = run_predict(bundle, bundle / "eval.jsonl", order="input")
    rows = [json.loads(line) for line in (bundle / "eval.jsonl").read_text().splitlines()]
    right = words = 0
    for row, result in zip(rows, results, strict=True):
        assert result["words"] == row["tokens"] and len(result["tags"]) == len(row["tokens"])
        assert [(e["type"], e["start"], e["end"]) for e in result["entities"]] == spans(
            result["tags"]
        )
        assert all(
            e["text"] == " ".join(row["tokens"][e["start"] : e["end"]]) for e in result["entities"]
        )
        right += sum(p == g for p, g in zip(result["tags"], row["label"], strict=True))
        words += len(row["tokens"])
    assert right / words > 0.9
    # plain text is split on spaces; a sentence longer than max_length leaves words untagged
    long = " ".join(["alice", "flew", "to", "oslo"] * 12)
    plain = tmp_path / "plain.txt"
    zero_width = json.dumps({"tokens": ["alice", "\u200b", "flew", "to", "oslo"]})
    array = json.dumps(["alice", "flew", "to", "oslo"])
    plain.write_text("\n".join(["alice flew to oslo", long, zero_width, array]) + "\n")
    short, cut, gap, listed = run_predict(bundle, plain, order="input")
    assert short["words"] == ["alice", "flew", "to", "oslo"] and "untagged" not in short
    assert cut["untagged"] == 48 - len(cut["tags"]) > 0
    # a word with no pieces is tagged O and the others keep their tags and places
    assert gap["tags"] == [short["tags"][0], "O", *short["tags"][1:]]
    assert listed == {**short, "line": 4}
    report = (run / "report" / "README.md").read_text()
    assert "Scores are **entity F1**" in report
