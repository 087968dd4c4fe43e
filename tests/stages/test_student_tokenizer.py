"""A student from another pretrained checkpoint that reads its own tokenizer (issue #28):
`student.init: pretrained`, `student.model`, `student.tokenizer: own`, `student.model_layers`.

The teacher's logits come from its own tokenization of each row of text (cached under a key
that the student's tokenizer does not enter), the student trains on its own tokenization, and
its tokenizer is the one its artifacts, the quantize stage and the bundle carry. What needs one
tokenizer for both is refused at `distillery validate`. Here: the recipe and the checks before
any work; tests/e2e/test_own_tokenizer.py runs the pipeline with such a student.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from pipelines.core.config import load_recipe
from pipelines.core.config.recipe import NEEDS_ONE_TOKENIZER
from pipelines.core.errors import ConfigError
from tests.conftest import ROOT, tiny_bert, tiny_recipe, write_recipe

OWN = {"init": "pretrained", "model": "org/student", "tokenizer": "own"}

# a recipe that uses each row of NEEDS_ONE_TOKENIZER (a new row without one fails below)
USING = {
    "distill.matches": {"distill": {"matches": ["hidden_mse"]}},
    "distill.cache_teacher_logits": {"distill": {"cache_teacher_logits": False}},
    "distill.augment.methods": {"distill": {"augment": {"factor": 1.0}}},  # the default: mask too
    "distill.ablation": {"distill": {"ablation": True}},
    "distill.cache_speedup_steps": {"distill": {"cache_speedup_steps": 5}},
    "search.enabled": {"search": {"enabled": True}},
}


def _load(tmp_path: Path, **sections):
    return load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(**sections)))


# ---------------------------------------------------------------- the recipe


@pytest.mark.parametrize("key", list(NEEDS_ONE_TOKENIZER))
def test_what_needs_one_tokenizer_is_refused_for_a_student_with_its_own(tmp_path, key):
    assert key in USING, f"NEEDS_ONE_TOKENIZER row {key!r}: add a recipe that uses it to USING"
    sections = USING[key]
    _load(tmp_path, **sections)  # with the teacher's tokenizer it is fine
    _load(tmp_path, **sections, student={**OWN, "tokenizer": "teacher"})
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, **sections, student=OWN)
    message = str(refused.value)
    assert f"{key}: needs one tokenizer for teacher and student" in message
    assert NEEDS_ONE_TOKENIZER[key].why in message
    assert message.endswith(
        "Remove the key, or use student.tokenizer: teacher with a student of the teacher's "
        "vocabulary."
    )


def test_word_level_augmentations_and_qat_are_taken_with_its_own_tokenizer(tmp_path):
    methods = ["ngram", "dropout", "shuffle", "mlm"]
    augment = {"factor": 1.0, "methods": methods, "mlm_model": "org/mlm"}
    recipe = _load(tmp_path, student=OWN, distill={"augment": augment, "qat": {"epochs": 0.5}})
    assert recipe.student.tokenizer == "own" and recipe.distill.augment.methods == methods


def test_token_tags_and_multi_task_runs_refuse_a_student_with_its_own_tokenizer(tmp_path):
    raw = tiny_recipe(student=OWN)
    raw["task"] = {**raw["task"], "type": "token_classification", "labels": ["O", "B-X", "I-X"]}
    with pytest.raises(ConfigError, match="student.tokenizer own: not supported with task.type "):
        load_recipe(write_recipe(tmp_path / "r.yaml", raw))


def test_its_own_tokenizer_and_checkpoint_layers_belong_to_a_checkpoint_student(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"student\.tokenizer: 'own' applies to init: pretrained students .* this one is "
        r"init: teacher_layers\. Remove the key, or set student\.init: pretrained\.",
    ):
        _load(tmp_path, student={"tokenizer": "own"})
    with pytest.raises(ConfigError, match=r"student\.model_layers: \[0\] applies to init: pre"):
        _load(tmp_path, student={"init": "config", "model_layers": [0]})
    for bad in ([], [2, 1], [1, 1]):
        with pytest.raises(ConfigError, match=r"student\.model_layers: .* must be distinct and"):
            _load(tmp_path, student={**OWN, "model_layers": bad})


def test_validate_names_the_checkpoint_s_depth_and_a_missing_tokenizer(tmp_path):
    model, _ = tiny_bert(tmp_path / "ckpt", ["good", "bad"])  # 2 layers, 64 positions
    model.save_pretrained(tmp_path / "ckpt")
    student = {**OWN, "model": str(tmp_path / "ckpt")}
    path = write_recipe(tmp_path / "r.yaml", tiny_recipe(student={**student, "model_layers": [2]}))
    result = subprocess.run(
        [sys.executable, "-m", "pipelines", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert "student.model_layers: [2] reaches past the checkpoint's 2 layers; use indices 0..1" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    from pipelines.run.preflight import preflight_models

    preflight_models(_load(tmp_path, student={**student, "model_layers": [1]}))  # in range
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / "ckpt" / name).unlink(missing_ok=True)
    with pytest.raises(ConfigError, match=r"holds no tokenizer .* for student\.tokenizer: own"):
        preflight_models(_load(tmp_path, student=student))
    with pytest.raises(ConfigError, match=r"data\.max_length: 100 tokens, but the student"):
        preflight_models(_load(tmp_path, student=student, data={"max_length": 100}))


def test_a_checkpoint_student_keeps_the_layers_it_names():
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    from distill.student import keep_checkpoint_layers

    torch.manual_seed(0)
    shape = {"hidden_size": 16, "num_attention_heads": 2, "intermediate_size": 32}
    model = BertForSequenceClassification(BertConfig(vocab_size=20, num_hidden_layers=3, **shape))
    kept = keep_checkpoint_layers(model, [0, 2])
    assert kept.config.num_hidden_layers == 2 and model.config.num_hidden_layers == 3
    for i, source in enumerate([0, 2]):
        got, want = kept.bert.encoder.layer[i].state_dict(), model.bert.encoder.layer[source]
        for name, value in want.state_dict().items():
            assert torch.equal(got[name], value), (i, name)
    with pytest.raises(ValueError, match=r"student\.model_layers: \[3\] out of range; the "):
        keep_checkpoint_layers(model, [0, 3])


# ---------------------------------------------------------------- the stages, quickly


def test_distill_export_and_quantize_give_each_model_its_own_tokenization(tmp_path):
    """An untrained tiny MPNet teacher (evaluated, not fine-tuned) and a BERT checkpoint whose
    vocabulary lists the same words in reverse order: the cached logits and the augmented rows'
    are the teacher's on its own tokenization, the student and its exports carry the student's
    tokenizer, the teacher's exports and int8 copies are scored on the teacher's."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distill.api import teacher_logits
    from pipelines.data.loading import load_task_data, tokenize
    from pipelines.run.runner import run_pipeline
    from tests.families import build_family, corpus_words

    words = corpus_words()
    build_family("mpnet", tmp_path / "teacher-model", words)
    build_family("bert", tmp_path / "student", list(reversed(words)), seed=1)
    raw = tiny_recipe(
        name="own",
        teacher={"init": "pretrained", "model": str(tmp_path / "teacher-model"), "finetune": False},
        student={**OWN, "model": str(tmp_path / "student"), "model_layers": [1]},
        distill={
            "epochs": 0.2,
            "augment": {"factor": 0.1, "methods": ["ngram", "shuffle"], "chunk_rows": 100},
        },
        export={"teacher": True, "optimize": "none"},
        quantize={"methods": ["dynamic"], "teacher": True},
    )
    raw["teacher"].pop("config")
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", raw))
    manifests = run_pipeline(recipe, tmp_path / "runs", target="quantize", echo=lambda _: None)
    run = tmp_path / "runs" / "own"
    tok_t, tok_s = (
        AutoTokenizer.from_pretrained(run / "teacher"),
        AutoTokenizer.from_pretrained(tmp_path / "student"),
    )
    assert AutoTokenizer.from_pretrained(run / "distill").get_vocab() == tok_s.get_vocab()
    assert AutoTokenizer.from_pretrained(run / "export" / "student-onnx").get_vocab() == (
        tok_s.get_vocab()
    )
    facts = manifests["distill"]["student"]
    assert (facts["tokenizer"], facts["model_layers"], facts["num_hidden_layers"]) == (
        "own",
        [1],
        1,
    )
    # the cache: the teacher's logits on its own tokenization of each row, not on the student's
    teacher = AutoModelForSequenceClassification.from_pretrained(run / "teacher").eval()
    train = load_task_data(recipe).train
    as_teacher, as_student = tokenize(train, tok_t, recipe), tokenize(train, tok_s, recipe)
    assert as_teacher["input_ids"][0] != as_student["input_ids"][0]
    cached = np.load(manifests["distill"]["training"]["cache"]["path"], allow_pickle=False)
    np.testing.assert_allclose(cached, teacher_logits(teacher, as_teacher, tok_t), atol=1e-4)
    student_ids = as_student.remove_columns(["token_type_ids"])  # MPNet takes none
    assert np.abs(teacher_logits(teacher, student_ids, tok_t) - cached).max() > 1e-3
    # the augmented rows: text on disk, labelled through the teacher's tokenizer
    augment = manifests["distill"]["augment"]
    folder = Path(augment["path"])
    texts = [json.loads(x) for x in (folder / "rows-00000.jsonl").read_text().splitlines()]
    chunk = tokenize(Dataset.from_dict({"text": texts}), tok_t, recipe)
    labelled = np.load(folder / "logits-00000.npy", allow_pickle=False)
    np.testing.assert_allclose(labelled, teacher_logits(teacher, chunk, tok_t), atol=1e-4)
    assert (
        manifests["distill"]["training"]["train_rows"] == len(train) + augment["rows"] > len(train)
    )
    # the teacher's export and int8 copies are scored on the eval split as the teacher reads it
    teacher_accuracy = manifests["teacher"]["metrics"]["accuracy"]
    parity = manifests["export"]["exports"]["teacher-onnx"]["parity"]
    assert parity["accuracy_candidate"] == pytest.approx(teacher_accuracy)
    assert parity["agreement"] == 1.0
    quantized = manifests["quantize"]["quantized"]
    for name in ("teacher-int8-dynamic", "teacher-int8-peer"):  # their fp32 reference
        assert quantized[name]["parity"]["accuracy_reference"] == pytest.approx(teacher_accuracy)
