"""Token-vector students (static, cnn, bilstm): built from a tiny teacher, padding-exact,
saved as safetensors + config.json and loaded back by the Auto classes, exported to ONNX with
parity, and int8 with ORT dynamic quantization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from distill.token_students import TOKEN_KINDS, register, teacher_token_vectors, token_student
from tests.conftest import tiny_bert

WORDS = ["good", "bad", "movie", "fun", "dull", "very", "plot", "acting"]
WORDS += [f"w{i}" for i in range(120)]  # a table large enough for PCA and int8 to matter
TEXTS = ["good movie very fun", "bad", "dull plot and bad acting", "very very good"]
SHAPE = {"width": 16, "filters": 6, "lstm_hidden": 5, "kernel_sizes": [2, 3]}


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return tiny_bert(tmp_path_factory.mktemp("teacher"), WORDS, seed=1)


def _logits(model, tokenizer, texts):
    import torch

    enc = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits


@pytest.mark.parametrize("kind", TOKEN_KINDS)
def test_a_row_gives_the_same_logits_alone_and_padded(teacher, kind):
    model, tokenizer = teacher
    student = token_student(model, tokenizer, kind, **SHAPE).eval()
    batch = _logits(student, tokenizer, TEXTS)
    for i, text in enumerate(TEXTS):
        alone = _logits(student, tokenizer, [text])
        np.testing.assert_allclose(batch[i].numpy(), alone[0].numpy(), atol=1e-6)
    assert batch.shape == (len(TEXTS), model.config.num_labels)
    assert student.config.hidden_size == {"static": 16, "cnn": 12, "bilstm": 10}[kind]


def test_forward_vectors_are_the_teachers_output_for_each_token_alone(teacher):
    import torch

    model, tokenizer = teacher
    table = teacher_token_vectors(model, tokenizer, "forward")
    token = tokenizer.convert_tokens_to_ids("movie")
    ids = torch.tensor([[tokenizer.cls_token_id, token, tokenizer.sep_token_id]])
    with torch.no_grad():
        expected = model.base_model(input_ids=ids)[0][0, 1]
    np.testing.assert_allclose(table[token].numpy(), expected.numpy(), atol=1e-5)
    assert table.shape == (model.config.vocab_size, model.config.hidden_size)
    assert float(table[tokenizer.pad_token_id].abs().sum()) == 0.0
    embeddings = teacher_token_vectors(model, tokenizer, "embeddings")
    np.testing.assert_allclose(
        embeddings[token].numpy(), model.get_input_embeddings().weight[token].detach().numpy()
    )


def test_the_width_is_capped_at_the_teachers_and_the_pca_keeps_the_vocabulary(teacher):
    model, tokenizer = teacher
    student = token_student(model, tokenizer, "static", width=512)
    assert student.config.width == model.config.hidden_size  # 32: PCA cannot widen
    assert student.embeddings.weight.shape[0] == model.config.vocab_size


@pytest.mark.parametrize("kind", TOKEN_KINDS)
def test_saved_as_safetensors_and_loaded_back_by_the_auto_class(teacher, kind, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model, tokenizer = teacher
    student = token_student(model, tokenizer, kind, **SHAPE).eval()
    student.save_pretrained(tmp_path, safe_serialization=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    from distill.token_models import MODEL_TYPE
    from distill.token_students import MODEL_TYPE as NAMED
    from distill.token_students import is_token_student

    assert MODEL_TYPE == NAMED and is_token_student(student.config)
    register()
    back = AutoModelForSequenceClassification.from_pretrained(tmp_path, use_safetensors=True)
    assert type(back).__name__ == "TokenStudentForSequenceClassification"
    np.testing.assert_array_equal(
        _logits(back.eval(), tokenizer, TEXTS).numpy(), _logits(student, tokenizer, TEXTS).numpy()
    )


def test_matches_are_refused_with_the_reason(teacher):
    import torch

    model, tokenizer = teacher
    student = token_student(model, tokenizer, "cnn", **SHAPE)
    with pytest.raises(ValueError, match="no hidden states or attentions"):
        student(input_ids=torch.tensor([[2, 5, 3]]), output_hidden_states=True)


@pytest.mark.parametrize("kind", TOKEN_KINDS)
def test_onnx_export_matches_pytorch_and_int8_shrinks_the_table(teacher, kind, tmp_path):
    import onnxruntime as ort
    from onnxruntime.quantization import quantize_dynamic

    from export.module_export import export_module

    model, tokenizer = teacher
    student = token_student(model, tokenizer, kind, **{**SHAPE, "width": 32}).eval()
    info = export_module(student, tmp_path / "onnx")
    assert info["input_names"] == ["input_ids", "attention_mask"]
    assert info["output_names"] == ["logits"]
    assert (tmp_path / "onnx" / "config.json").is_file()
    enc = tokenizer(TEXTS, padding=True, return_tensors="np")
    feed = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
    onnx = ort.InferenceSession(info["onnx_path"]).run(None, feed)[0]
    reference = _logits(student, tokenizer, TEXTS).numpy()
    np.testing.assert_allclose(onnx, reference, atol=1e-5)
    int8 = tmp_path / "int8.onnx"
    quantize_dynamic(info["onnx_path"], str(int8))
    quantized = ort.InferenceSession(str(int8)).run(None, feed)[0]
    assert np.abs(quantized - reference).max() < 0.05
    # the embedding table is a Gather ORT dynamic quantization stores in int8
    assert int8.stat().st_size < Path(info["onnx_path"]).stat().st_size
