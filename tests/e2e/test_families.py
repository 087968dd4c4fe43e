"""Every encoder family in `modelkit.families` through every stage, on a tiny config of its own
class with a tokenizer of its own kind (tests/families.py): a fine-tuned teacher loaded from a
local folder as from the hub, a student of copied layers distilled with hidden, attention and
MiniLM value-relation matches, ONNX export plain and fused (parity), ORT int8 dynamic and static,
the peer baseline, the interleaved bench, the report, and an int8 bundle whose predict.py must
give the pipeline's predictions."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from modelkit.families import FAMILIES, encoder_layers, family_of, takes_token_type_ids
from pipelines.bundle.verify import verify_bundle
from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError
from pipelines.run.runner import run_pipeline
from tests.conftest import tiny_recipe, write_recipe
from tests.families import FAMILY_NAMES, build_family, corpus_words
from tests.test_bundle import SECTIONS

MATCHES = ["hidden_mse", "attention_kl", "value_relation"]
BENCHED = ["teacher", "student-onnx-O2", "student-int8-dynamic", "student-int8-peer"]


def test_every_registered_family_has_a_tiny_builder():
    assert set(FAMILY_NAMES) == set(FAMILIES)


def family_recipe(family: str, model_dir: Path, **overrides) -> dict:
    sections = {
        **SECTIONS,
        "name": family,
        "teacher": {
            "init": "pretrained",
            "model": str(model_dir),
            "epochs": 4,
            "learning_rate": 1e-3,  # 3e-3 leaves the tiny RoBERTa at chance
            "batch_size": 16,
        },
        "distill": {
            **SECTIONS["distill"],
            "epochs": 1,  # half an epoch leaves the 1-layer ELECTRA student at chance
            "matches": MATCHES,
            "weights": {"task": 0.5, "kd": 0.5, **dict.fromkeys(MATCHES, 0.5)},
        },
        "quantize": {"methods": ["dynamic", "static"], "teacher": False},
        "bundle": {**SECTIONS["bundle"], "artifact": "student-int8-dynamic"},
        # each benched artifact is a worker process of its own: time the ones asserted on
        "bench": {**SECTIONS["bench"], "artifacts": BENCHED},
        **overrides,
    }
    return tiny_recipe(**sections)


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def family_run(request, tmp_path_factory):
    family = request.param
    tmp = tmp_path_factory.mktemp(family)
    build_family(family, tmp / "model", corpus_words())
    path = write_recipe(tmp / "recipe.yaml", family_recipe(family, tmp / "model"))
    recipe = load_recipe(path)
    manifests = run_pipeline(recipe, tmp / "runs", target="bundle", echo=lambda _: None)
    return family, recipe, tmp / "runs" / family, manifests


def graph(path: Path):
    import onnx

    return onnx.load(str(path / "model.onnx"), load_external_data=False).graph


def test_teacher_and_student_learn_and_the_student_is_cut_from_the_teacher(family_run):
    family, _, run, manifests = family_run
    from transformers import AutoConfig

    teacher = manifests["teacher"]["metrics"]["accuracy"]
    student = manifests["distill"]["metrics"]["accuracy"]
    assert teacher >= 0.7, f"{family} teacher at {teacher}: the tiny task was not learnt"
    assert student >= 0.6, f"{family} student at {student}"
    config = AutoConfig.from_pretrained(run / "distill")
    assert config.model_type == family and config.num_hidden_layers == 1
    logged = [  # the stage log's per-step entries (the manifest keeps the summary only)
        ast.literal_eval(line[line.index("{") :])
        for line in (run / "distill" / "log.txt").read_text().splitlines()
        if "'loss_task'" in line
    ]
    final = logged[-1]
    for match in MATCHES:  # each match computed on this family's tensors, logged by name
        assert np.isfinite(final[f"loss_{match}"]) and final[f"loss_{match}"] > 0, (family, match)


def test_export_keeps_parity_and_fuses_what_ort_can(family_run):
    family, _, run, manifests = family_run
    metrics = manifests["export"]["metrics"]
    assert metrics["agreement"] == 1.0 and metrics["max_abs_diff"] <= 1e-4
    assert metrics["fused_agreement"] >= 0.999 and metrics["fused_max_abs_diff"] <= 1e-3
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(run / "distill")
    for artifact in ("student-onnx", "student-onnx-O2"):
        inputs = [i.name for i in graph(run / "export" / artifact).input]
        assert ("token_type_ids" in inputs) == takes_token_type_ids(config), (family, inputs)
    fused = Counter(n.op_type for n in graph(run / "export" / "student-onnx-O2").node)
    assert fused["SkipLayerNormalization"] >= 1, (family, fused)
    assert (fused["Attention"] == 1) == family_of(config, "test").fused_attention, (family, fused)


def test_int8_is_quantized_gated_and_benched_beside_the_peer(family_run):
    family, recipe, run, manifests = family_run
    quantize = manifests["quantize"]["metrics"]
    reference = quantize["reference_accuracy"]
    for name in ("student-int8-dynamic", "student-int8-static"):
        assert reference - quantize[f"{name}_accuracy"] <= recipe.quantize.max_drop / 100 + 1e-9
    ops = Counter(n.op_type for n in graph(run / "quantize" / "student-int8-dynamic").node)
    assert ops["DynamicQuantizeLinear"] >= 1 and ops["MatMulInteger"] >= 1, (family, ops)
    measured = {a["name"]: a for a in manifests["bench"]["measured"]}
    assert {"teacher", "student-int8-dynamic", "student-int8-peer"} <= set(measured)
    assert manifests["bench"]["metrics"]["errors"] == 0


def test_the_int8_bundle_predicts_like_the_pipeline(family_run):
    family, recipe, run, manifests = family_run
    assert manifests["bundle"]["metrics"]["artifact"] == "student-int8-dynamic"
    summary = verify_bundle(run / "bundle", recipe=recipe, echo=lambda _: None)
    assert summary["same_rows"], family
    assert summary["accuracy"] == summary["recorded_accuracy"]
    assert summary["accuracy"] >= 0.6


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


@pytest.mark.parametrize("family", ["roberta", "distilbert", "deberta-v2"])
def test_prune_init_is_refused_before_training_for_non_bert_teachers(family, tmp_path):
    build_family(family, tmp_path / "model", corpus_words())
    recipe = family_recipe(family, tmp_path / "model")
    recipe["student"] = {
        "init": "config",
        "init_weights": "prune",
        "layers": [1],
        "config": {
            "num_hidden_layers": 1,
            "hidden_size": 16,
            "num_attention_heads": 1,
            "intermediate_size": 32,
        },
    }
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    with pytest.raises(
        ConfigError, match=rf"this teacher is '{family}' \(prunable model types: bert\)"
    ):
        run_pipeline(load_recipe(path), tmp_path / "runs", target="distill", echo=lambda _: None)
    assert not (tmp_path / "runs" / family / "teacher" / "manifest.json").exists()


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


@pytest.mark.parametrize("family", ["distilbert", "deberta-v2"])
def test_a_config_student_of_pairs_is_refused_when_the_teacher_has_no_segments(family, tmp_path):
    build_family(family, tmp_path / "model", corpus_words("verdict"))
    recipe = family_recipe(
        family,
        tmp_path / "model",
        task={"text_columns": ["text_a", "text_b"], "labels": ["no", "yes"]},
        data={"source": "synthetic:verdict", "synthetic_rows": 200, "max_length": 32},
    )
    recipe["student"] = {"init": "config", "config": {"num_hidden_layers": 1, "hidden_size": 32}}
    path = write_recipe(tmp_path / "recipe.yaml", recipe)
    with pytest.raises(ConfigError, match=rf"this teacher \('{family}'\) takes none"):
        run_pipeline(load_recipe(path), tmp_path / "runs", target="distill", echo=lambda _: None)
    assert not (tmp_path / "runs" / family / "teacher").exists()
