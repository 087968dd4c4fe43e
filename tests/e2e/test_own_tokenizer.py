"""A student from another checkpoint with its own tokenizer, through every stage (issue #28).

Tiny models: an MPNet teacher (tests/families.py, its WordPiece vocabulary under RoBERTa's special
tokens) fine-tuned by the teacher stage, and as the student checkpoint the session's tiny BERT
teacher (tests/conftest.py `tiny_teacher`: a word vocabulary built from the data, other ids for
nearly every word). The student keeps one of its two layers (`student.model_layers`), trains on
cached teacher logits plus word-level augmented rows, and ships its own tokenizer in the bundle.
The real pair (all-mpnet-base-v2, all-MiniLM-L6-v2) is checked under the `real` marker.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.bundle.verify import verify_bundle
from pipelines.core.config import load_recipe
from pipelines.run.runner import run_pipeline
from tests.conftest import ROOT, SHARED, family_recipe, write_recipe
from tests.families import build_family, corpus_words

MPNET_CACHE = Path.home() / ".cache" / "distillery-models" / "all-mpnet-base-v2"
MINILM = SHARED / "models" / "all-minilm-l6-v2"
FETCH = "bash ../shared/models/fetch-all-mpnet-base-v2.sh"
QUIET = {"echo": lambda _: None}


def own_recipe(tmp: Path, checkpoint: Path) -> dict:
    student = {
        "init": "pretrained",
        "model": str(checkpoint),
        "tokenizer": "own",
        "model_layers": [1],
    }
    distill = {
        "epochs": 1,
        "learning_rate": 1e-3,
        "batch_size": 16,
        "weights": {"task": 0.5, "kd": 0.5},
        "augment": {"factor": 0.25, "methods": ["ngram", "shuffle"], "chunk_rows": 100},
    }
    return family_recipe(
        "mpnet",
        tmp / "teacher-model",
        name="own",
        student=student,
        distill=distill,
        export={"teacher": True},
        quantize={"methods": ["dynamic"], "teacher": True},
    )


@pytest.fixture(scope="module")
def own_run(tmp_path_factory, tiny_teacher):
    tmp = tmp_path_factory.mktemp("own")
    build_family("mpnet", tmp / "teacher-model", corpus_words())
    checkpoint = tiny_teacher[0] / "runs" / "tiny" / "teacher"  # a fine-tuned tiny BERT
    recipe = load_recipe(write_recipe(tmp / "recipe.yaml", own_recipe(tmp, checkpoint)))
    manifests = run_pipeline(recipe, tmp / "runs", target="bundle", **QUIET)
    return tmp, recipe, manifests, checkpoint


def _tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


@pytest.mark.slow  # a whole pipeline
def test_the_student_is_the_checkpoint_s_layer_with_its_own_tokenizer(own_run):
    from transformers import AutoConfig

    tmp, _, manifests, checkpoint = own_run
    run = tmp / "runs" / "own"
    teacher_vocab = _tokenizer(run / "teacher").get_vocab()
    student_vocab = _tokenizer(checkpoint).get_vocab()
    assert set(teacher_vocab) != set(student_vocab)  # other special tokens
    shared = set(teacher_vocab) & set(student_vocab)
    assert sum(teacher_vocab[w] != student_vocab[w] for w in shared) > 0.9 * len(shared)
    assert _tokenizer(run / "distill").get_vocab() == student_vocab  # saved with the student
    config = AutoConfig.from_pretrained(run / "distill")
    assert (config.model_type, config.num_hidden_layers) == ("bert", 1)
    facts = manifests["distill"]["student"]
    assert (facts["tokenizer"], facts["model_layers"]) == ("own", [1])
    assert facts["vocab_size"] == len(student_vocab)
    assert manifests["teacher"]["metrics"]["accuracy"] >= 0.7
    assert manifests["distill"]["metrics"]["accuracy"] >= 0.6


@pytest.mark.slow
def test_teacher_logits_come_from_the_teacher_s_tokenization_of_each_row(own_run):
    from transformers import AutoModelForSequenceClassification

    from distill.api import teacher_logits
    from pipelines.data.loading import load_task_data, tokenize

    tmp, recipe, manifests, checkpoint = own_run
    run = tmp / "runs" / "own"
    training = manifests["distill"]["training"]
    assert training["cached_teacher_logits"] and not training["cache"]["reused"]
    cached = np.load(training["cache"]["path"], allow_pickle=False)
    teacher = AutoModelForSequenceClassification.from_pretrained(run / "teacher").eval()
    train = load_task_data(recipe).train
    as_teacher = tokenize(train, _tokenizer(run / "teacher"), recipe)
    as_student = tokenize(train, _tokenizer(checkpoint), recipe)
    assert as_teacher["input_ids"][0] != as_student["input_ids"][0]
    np.testing.assert_allclose(
        cached, teacher_logits(teacher, as_teacher, _tokenizer(run / "teacher")), atol=1e-4
    )
    # the ids of the student's tokenizer would have given the teacher other logits
    other = teacher_logits(
        teacher, as_student.remove_columns(["token_type_ids"]), _tokenizer(run / "teacher")
    )
    assert np.abs(other - cached).max() > 0.1
    # the augmented rows: text on disk, labelled by the teacher through its own tokenizer
    augment = manifests["distill"]["augment"]
    folder = Path(augment["path"])
    rows = [json.loads(x) for x in (folder / "rows-00000.jsonl").read_text().splitlines()]
    chunk = tokenize(_as_rows(rows), _tokenizer(run / "teacher"), recipe)
    labelled = np.load(folder / "logits-00000.npy", allow_pickle=False)
    np.testing.assert_allclose(
        labelled, teacher_logits(teacher, chunk, _tokenizer(run / "teacher")), atol=1e-4
    )
    assert training["train_rows"] == len(train) + augment["rows"] and augment["rows"] > 0


def _as_rows(texts: list[str]):
    import datasets

    return datasets.Dataset.from_dict({"text": texts})


@pytest.mark.slow
def test_the_teacher_is_exported_and_quantized_on_its_own_tokenization(own_run):
    _, _, manifests, _ = own_run
    teacher_accuracy = manifests["teacher"]["metrics"]["accuracy"]
    exports = manifests["export"]["exports"]
    assert exports["teacher-onnx"]["parity"]["accuracy_candidate"] == pytest.approx(
        teacher_accuracy
    )
    quantized = manifests["quantize"]["quantized"]
    assert abs(quantized["teacher-int8-dynamic"]["accuracy"] - teacher_accuracy) <= 0.05
    assert abs(quantized["teacher-int8-peer"]["accuracy"] - teacher_accuracy) <= 0.05


@pytest.mark.slow
def test_the_bundle_ships_the_student_s_tokenizer_and_verifies(own_run):
    from tokenizers import Tokenizer

    tmp, recipe, manifests, checkpoint = own_run
    bundle = tmp / "runs" / "own" / "bundle"
    assert manifests["bundle"]["metrics"]["artifact"] == "student-int8-dynamic"
    shipped = Tokenizer.from_file(str(bundle / "tokenizer.json")).get_vocab()
    assert shipped == _tokenizer(checkpoint).get_vocab()
    assert "<mask>" not in shipped  # none of the teacher's special tokens
    summary = verify_bundle(bundle, recipe=recipe, **QUIET)
    assert summary["same_rows"] and summary["accuracy"] == summary["recorded_accuracy"]
    assert summary["accuracy"] >= 0.6


@pytest.mark.slow
def test_the_logit_cache_is_shared_with_a_student_of_the_teacher_s_tokenizer(own_run):
    """The cache key holds what decides the teacher's logits, not the student's tokenizer: a
    copied-layer student of the same teacher and data reuses them (this test goes last: it
    replaces the run's distill stage)."""
    tmp, _, manifests, checkpoint = own_run
    raw = own_recipe(tmp, checkpoint)
    raw["student"] = {"init": "teacher_layers", "layers": [1]}
    recipe = load_recipe(write_recipe(tmp / "shared.yaml", raw))
    again = run_pipeline(recipe, tmp / "runs", target="distill", **QUIET)
    assert again["teacher"]["hash"] == manifests["teacher"]["hash"]
    cache = again["distill"]["training"]["cache"]
    assert cache["reused"] and cache["path"] == manifests["distill"]["training"]["cache"]["path"]


# ---------------------------------------------------------------- the real pair


@pytest.mark.real
@pytest.mark.skipif(
    not (MPNET_CACHE / "model.safetensors").is_file() or not MINILM.is_dir(),
    reason=f"needs all-mpnet-base-v2 at {MPNET_CACHE} (fetch it, 30 s, offline: {FETCH}) and "
    f"all-MiniLM-L6-v2 at {MINILM}",
)
def test_the_real_minilm_student_of_the_mpnet_recipe_is_built_with_its_own_tokenizer():
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from pipelines.core.models import load_tokenizer, resolve_model
    from pipelines.distillation.student_choice import build_student, student_tokenizer
    from pipelines.run.preflight import preflight_models

    recipe = load_recipe(
        ROOT / "recipes" / "sst2-mpnet-minilm.yaml",
        [
            f"teacher.model={MPNET_CACHE}",
            f"student.model={MINILM}",
            f"data.source={SHARED}/data/sst2",
            "student.model_layers=[0, 2, 4]",  # the recipe's commented-out option
        ],
    )
    preflight_models(recipe)  # what `distillery validate` checks of the two checkpoints
    source = resolve_model(str(MPNET_CACHE), recipe.security, "teacher.model")
    tokenizer_t = load_tokenizer(source, recipe.security)
    # only the teacher's labels enter the student: a 1-layer MPNet of the fetched config stands
    # in for the 110M-parameter teacher, which would take minutes to load on 2 busy cores
    config = AutoConfig.from_pretrained(source.value, num_hidden_layers=1, num_labels=2)
    teacher = AutoModelForSequenceClassification.from_config(config)
    assert teacher.config.model_type == "mpnet"
    tokenizer_s = student_tokenizer(recipe, tokenizer_t)
    assert (len(tokenizer_t), len(tokenizer_s)) == (30527, 30522)
    text = "a gripping , funny and touching film ."
    assert tokenizer_t(text)["input_ids"] != tokenizer_s(text)["input_ids"]
    student, copied = build_student(recipe, teacher, tokenizer_t)
    assert copied is None and student.config.num_hidden_layers == len(recipe.student.model_layers)
    from safetensors.torch import load_file

    weights = load_file(str(MINILM / "model.safetensors"))
    for i, layer in enumerate(recipe.student.model_layers):
        key = f"encoder.layer.{layer}.attention.self.query.weight"
        got = student.bert.encoder.layer[i].attention.self.query.weight
        assert torch.equal(got, weights[key]), (i, layer)
