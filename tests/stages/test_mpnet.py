"""MPNet (issue #28's base-size teacher family) beyond the family matrix of tests/test_families.py,
and `teacher.train_rows`, the seeded train subset a base-size teacher is fine-tuned on.

tests/test_families.py runs the tiny MPNet through teacher, distill (hidden, attention and
value-relation matches), export + parity, ORT dynamic/static, bench and bundle; here: OpenVINO
and QAT int8 of its student, the refusals that apply to it, and the real all-mpnet-base-v2
folder (marker `real`, skipped with the fetch command when it is not fetched).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError
from pipelines.run.hashing import stage_hash
from pipelines.run.registry import STAGES
from pipelines.run.runner import run_pipeline
from quantize.openvino import available as openvino_missing
from tests.conftest import SHARED, tiny_recipe, write_recipe
from tests.families import build_family, corpus_words

MPNET_CACHE = Path.home() / ".cache" / "distillery-models" / "all-mpnet-base-v2"
FETCH = "bash ../shared/models/fetch-all-mpnet-base-v2.sh"
# the teacher stage hash of tiny_recipe() before teacher.train_rows existed (commit e47015e)
TINY_TEACHER_HASH = "2ae95bc42ec375a1ea51bb86c4c418010cd2106fae06f8ad3dcb1fbe1e9e6660"


def mpnet_recipe(model_dir: Path, **sections) -> dict:
    return tiny_recipe(
        name="mpnet",
        teacher={"init": "pretrained", "model": str(model_dir), "learning_rate": 1e-3},
        **sections,
    )


# ---------------------------------------------------------------- teacher.train_rows


def test_train_rows_unset_keeps_the_teacher_hash_of_existing_runs(tmp_path):
    plain = load_recipe(write_recipe(tmp_path / "a.yaml", tiny_recipe()))
    stage = STAGES["teacher"]
    assert stage_hash(plain, stage, {}, "d") == TINY_TEACHER_HASH
    spelled = load_recipe(
        write_recipe(tmp_path / "b.yaml", tiny_recipe(teacher={"train_rows": None}))
    )
    assert stage_hash(spelled, stage, {}, "d") == TINY_TEACHER_HASH
    subset = load_recipe(
        write_recipe(tmp_path / "c.yaml", tiny_recipe(teacher={"train_rows": 300}))
    )
    assert stage_hash(subset, stage, {}, "d") != TINY_TEACHER_HASH
    # the distill stage reads the teacher's manifest, not its section: only its input hash moves
    assert stage_hash(subset, STAGES["distill"], {}, "d") == stage_hash(
        plain, STAGES["distill"], {}, "d"
    )


def test_train_rows_below_one_or_with_transfer_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="teacher.train_rows"):
        load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(teacher={"train_rows": 0})))
    source = {  # one source task: a multi-task (transfer) recipe
        "name": "polarity",
        "task": {"text_columns": ["text"], "label_column": "label", "labels": ["neg", "pos"]},
        "data": {"source": "synthetic:sentiment_hard", "synthetic_rows": 320, "max_length": 24},
    }
    raw = tiny_recipe(teacher={"train_rows": 100})
    raw["transfer"] = {"target": "sentiment", "sources": [source]}
    with pytest.raises(ConfigError, match="teacher.train_rows: not supported with transfer"):
        load_recipe(write_recipe(tmp_path / "t.yaml", raw))
    del raw["teacher"]["train_rows"]
    assert load_recipe(write_recipe(tmp_path / "t.yaml", raw)).transfer.enabled


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
def test_the_teacher_trains_on_a_seeded_sample_of_the_train_split_only(tmp_path):
    from pipelines.data.loading import load_task_data, seeded_rows

    raw = tiny_recipe(teacher={"train_rows": 200, "epochs": 1, "batch_size": 16})
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", raw))
    manifest = run_pipeline(recipe, tmp_path / "runs", target="teacher", echo=lambda _: None)
    training = manifest["teacher"]["training"]
    assert training["train_rows"] == 200
    assert training["global_step"] == math.ceil(200 / 16)
    data = load_task_data(recipe)
    assert manifest["teacher"]["metrics"]["eval_rows"] == len(data.eval)  # eval split untouched
    first, again = seeded_rows(data.train, 200, 0), seeded_rows(data.train, 200, 0)
    assert first["text"] == again["text"] and len(set(first["text"])) > 1
    assert set(first["text"]) <= set(data.train["text"])
    assert first["text"] != seeded_rows(data.train, 200, 1)["text"]
    assert seeded_rows(data.train, None, 0)["text"] == data.train["text"]
    assert seeded_rows(data.train, 10**6, 0)["text"] == data.train["text"]


# ---------------------------------------------------------------- tiny MPNet


def test_mpnet_is_a_family_without_token_types_or_fused_attention(tmp_path):
    from distill.student import from_teacher_layers
    from modelkit.families import encoder_layers, family_of, takes_token_type_ids

    teacher, _ = build_family("mpnet", tmp_path, corpus_words())
    family = family_of(teacher.config, "test")
    assert family.model_type == "mpnet" and not takes_token_type_ids(teacher.config)
    assert not family.fused_attention and not family.prunable
    student = from_teacher_layers(teacher, [1])
    # the relative-position bias lives outside the blocks and is shared: the student keeps it
    bias_t = teacher.base_model.encoder.relative_attention_bias.weight
    bias_s = student.base_model.encoder.relative_attention_bias.weight
    assert len(encoder_layers(student)) == 1 and bias_s.data_ptr() != bias_t.data_ptr()
    assert (bias_s == bias_t).all()


def test_prune_init_of_an_mpnet_teacher_is_refused_with_the_prunable_types(tmp_path):
    build_family("mpnet", tmp_path / "model", corpus_words())
    shape = {"num_hidden_layers": 1, "hidden_size": 16, "num_attention_heads": 1}
    raw = mpnet_recipe(
        tmp_path / "model",
        student={"init": "config", "init_weights": "prune", "layers": [1], "config": shape},
    )
    with pytest.raises(
        ConfigError, match=r"this teacher is 'mpnet' \(prunable model types: bert\)"
    ):
        run_pipeline(
            load_recipe(write_recipe(tmp_path / "r.yaml", raw)),
            tmp_path / "runs",
            target="distill",
            echo=lambda _: None,
        )


@pytest.mark.slow  # over ~10 s on 2 cores: make test-fast leaves it out
@pytest.mark.skipif(openvino_missing() is not None, reason=str(openvino_missing()))
def test_openvino_and_qat_int8_of_an_mpnet_student_keep_its_accuracy(tmp_path):
    build_family("mpnet", tmp_path / "model", corpus_words())
    raw = mpnet_recipe(
        tmp_path / "model",
        distill={"qat": {"epochs": 0.5, "calibration_samples": 32}},
        quantize={"methods": ["openvino"], "teacher": False, "calibration": {"samples": 64}},
    )
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", raw))
    manifests = run_pipeline(recipe, tmp_path / "runs", target="quantize", echo=lambda _: None)
    assert manifests["teacher"]["metrics"]["accuracy"] >= 0.7
    assert manifests["distill"]["metrics"]["qat_fake_quant_accuracy"] >= 0.6
    quantize = manifests["quantize"]
    # the QAT graph runs under ORT and, converted, under OpenVINO
    methods = ["student-int8-openvino", "student-int8-qat", "student-int8-qat-openvino"]
    assert sorted(quantize["gate"]["accepted"]) == methods
    for name in methods:
        result = quantize["quantized"][name]
        assert result["rejected"] is False and result["drop_points"] <= recipe.quantize.max_drop
    assert quantize["quantized"]["student-int8-openvino"]["quantized_ops"] > 0


# ---------------------------------------------------------------- the real all-mpnet-base-v2


@pytest.mark.real
@pytest.mark.skipif(
    not (MPNET_CACHE / "model.safetensors").is_file(),
    reason=f"needs all-mpnet-base-v2 at {MPNET_CACHE}; fetch it (30 s, offline): {FETCH}",
)
def test_the_fetched_mpnet_loads_safely_as_a_new_classifier():
    import torch

    from distill.student import from_teacher_layers
    from modelkit.families import family_of, takes_token_type_ids
    from pipelines.core.config import SecurityConfig
    from pipelines.core.models import load_classifier, load_tokenizer, resolve_model

    security = SecurityConfig()
    source = resolve_model(str(MPNET_CACHE), security, "teacher.model")
    tokenizer = load_tokenizer(source, security)
    model = load_classifier(source, ["negative", "positive"], security, finetuned=False).eval()
    config = model.config
    assert family_of(config, "test").model_type == "mpnet" and not takes_token_type_ids(config)
    assert (config.num_hidden_layers, config.hidden_size, len(tokenizer)) == (12, 768, 30527)
    lines = (SHARED / "data" / "sst2" / "validation.jsonl").read_text().splitlines()[:4]
    batch = tokenizer([json.loads(x)["text"] for x in lines], padding=True, return_tensors="pt")
    assert "token_type_ids" not in batch
    student = from_teacher_layers(model, [0, 2, 4, 6, 8, 10]).eval()
    with torch.no_grad():
        logits, student_logits = model(**batch).logits, student(**batch).logits
    assert logits.shape == student_logits.shape == (4, 2)
    assert np.isfinite(logits.numpy()).all() and np.isfinite(student_logits.numpy()).all()
    # the pretrained encoder loaded (not a random init): its mean-pooled sentence embeddings,
    # as sentence-transformers pools them, put a paraphrase nearer than an unrelated sentence
    texts = [
        "A man is playing a guitar.",
        "Someone plays the guitar.",
        "Stocks fell sharply today.",
    ]
    pairs = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model.base_model(**pairs).last_hidden_state
    mask = pairs["attention_mask"].unsqueeze(-1).float()
    pooled = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    similar, unrelated = float(pooled[0] @ pooled[1]), float(pooled[0] @ pooled[2])
    assert similar > 0.5 > unrelated, (similar, unrelated)
