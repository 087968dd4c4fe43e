"""ONNX export, ORT optimisation, parity and [CLS] features on a 2-layer BERT built from a config."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from export.features import cls_vector_onnx, cls_vector_torch
from export.onnx_export import export_classifier
from export.optimize import FUSED_OP_TYPES, LEVELS, optimize_onnx
from export.parity import (
    ParityError,
    ParityReport,
    check,
    compare,
    onnx_logits,
    torch_logits,
)
from modelkit.batching import padded_batches
from modelkit.onnx_graph import op_counts as count_ops
from tests.conftest import tiny_bert

# optimum's TorchScript export traces BERT's constant 1.0 in the mask code; harmless, and noisy.
pytestmark = pytest.mark.filterwarnings("ignore:torch.tensor results are registered as constants")

WORDS = [f"w{i}" for i in range(60)]
LABELS = {0: "negative", 1: "positive"}


def _texts(rng: np.random.Generator, rows: int, max_words: int = 36) -> list[str]:
    return [" ".join(rng.choice(WORDS, size=rng.integers(1, max_words))) for _ in range(rows)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    """A 2-layer BERT classifier (hidden 32) and a word-level tokenizer, saved like a checkpoint."""
    import torch

    path = tmp_path_factory.mktemp("tiny-bert")
    model, _ = tiny_bert(path, WORDS, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    with torch.no_grad():  # a larger spread than the 0.02 init, so logits differ between rows
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.2)
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_dir)


@pytest.fixture(scope="module")
def torch_model(tiny_dir):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(tiny_dir).eval()


@pytest.fixture(scope="module")
def exported(tiny_dir, tmp_path_factory) -> dict:
    return export_classifier(
        tiny_dir, tmp_path_factory.mktemp("onnx") / "model", feature_extraction=True
    )


@pytest.fixture(scope="module")
def optimized(exported, tmp_path_factory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("optimized")
    return {
        level: optimize_onnx(exported["out_dir"], root / level, level) for level in ("O1", "O2")
    }


def _dataset(tokenizer, rows: int, pairs: bool, seed: int = 0):
    """Tokenized, unpadded rows of 1–38 tokens (mixed lengths in every batch), random labels."""
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    first = _texts(rng, rows, 18 if pairs else 36)
    second = _texts(rng, rows, 18) if pairs else None
    encoded = tokenizer(first, second, truncation=True, max_length=40)
    return Dataset.from_dict({**encoded, "labels": rng.integers(0, 2, rows).tolist()})


@pytest.fixture(scope="module")
def single(tokenizer):
    return _dataset(tokenizer, 45, pairs=False)


@pytest.fixture(scope="module")
def pairs(tokenizer):
    return _dataset(tokenizer, 30, pairs=True, seed=1)


def test_export_writes_a_loadable_folder(exported):
    out = Path(exported["out_dir"])
    assert exported["opset"] == 18  # optimum-onnx 0.1's default for BERT
    assert exported["input_names"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert exported["output_names"] == ["logits"]
    assert exported["size_bytes"] == (out / "model.onnx").stat().st_size > 0
    assert exported["labels"] == ["negative", "positive"]
    for name in ("config.json", "tokenizer.json", "vocab.txt"):
        assert (out / name).is_file(), name
    assert json.loads((out / "export_info.json").read_text()) == exported
    features = exported["features"]
    assert Path(features["onnx_path"]) == out / "features" / "model.onnx"
    assert features["output_names"] == ["last_hidden_state"]


def test_parity_with_pytorch_in_row_order(exported, torch_model, tokenizer, single):
    reference = torch_logits(torch_model, single, tokenizer, batch_size=8)
    candidate = onnx_logits(exported["onnx_path"], single, tokenizer, batch_size=8, threads=1)
    assert candidate.shape == (len(single), 2)
    report = compare(reference, candidate, np.array(single["labels"]), atol=1e-4, min_agreement=1.0)
    check(report, "student-onnx")
    assert report.passed and report.agreement == 1.0 and report.max_abs_diff <= 1e-4
    assert np.ptp(reference[:, 0]) > 0.1  # the rows really differ: row order is tested
    # batch size changes the padding, not the logits: rows come back in the dataset's order
    one_by_one = onnx_logits(Path(exported["out_dir"]), single, tokenizer, batch_size=1)
    np.testing.assert_allclose(one_by_one, candidate, atol=1e-5)


def test_batches_are_right_padded_with_true_masks(tokenizer, single):
    _, batch = next(padded_batches(single, tokenizer.pad_token_id, batch_size=8))
    lengths = [len(ids) for ids in single[:8]["input_ids"]]
    assert batch["input_ids"].shape == (8, max(lengths)) and len(set(lengths)) > 1
    assert batch["attention_mask"].sum(1).tolist() == lengths
    for row, n in enumerate(lengths):
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("seq", [5, 40])
def test_dynamic_batch_and_sequence(exported, torch_model, batch, seq):
    import onnxruntime as ort
    import torch

    rng = np.random.default_rng(batch * 100 + seq)
    inputs = {
        "input_ids": rng.integers(5, 5 + len(WORDS), (batch, seq)),
        "attention_mask": np.ones((batch, seq), dtype=np.int64),
        "token_type_ids": np.zeros((batch, seq), dtype=np.int64),
    }
    inputs["attention_mask"][0, seq // 2 :] = 0  # one right-padded row
    session = ort.InferenceSession(exported["onnx_path"], providers=["CPUExecutionProvider"])
    (logits,) = session.run(["logits"], inputs)
    with torch.inference_mode():
        expected = torch_model(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits
    assert logits.shape == (batch, 2)
    np.testing.assert_allclose(logits, expected.numpy(), atol=1e-4)


def test_sentence_pairs_use_token_type_ids(exported, torch_model, tokenizer, pairs):
    assert any(1 in row for row in pairs["token_type_ids"])
    labels = np.array(pairs["labels"])
    reference = torch_logits(torch_model, pairs, tokenizer, batch_size=7)
    candidate = onnx_logits(exported["onnx_path"], pairs, tokenizer, batch_size=7)
    check(compare(reference, candidate, labels, atol=1e-4, min_agreement=1.0), "pair-onnx")
    # without the column, segment B is fed as segment A: the check must notice
    dropped = onnx_logits(exported["onnx_path"], pairs.remove_columns("token_type_ids"), tokenizer)
    report = compare(reference, dropped, labels, atol=1e-4, min_agreement=1.0)
    assert not report.passed and report.max_abs_diff > 1e-3


def test_o2_fuses_attention_and_o1_does_not(optimized):
    o1, o2 = optimized["O1"], optimized["O2"]
    assert o2["fused_ops"]["Attention"] == 2  # one per layer
    assert o2["fused_ops"]["SkipLayerNormalization"] >= 2
    assert o2["nodes_after"] < o2["nodes_before"]
    assert set(o2["fused_ops"]) == set(FUSED_OP_TYPES)
    assert count_ops(o1["onnx_path"]).get("Attention", 0) == 0
    assert o1["fused_ops"]["Attention"] == 0
    # the unfused export stays beside the optimised ones
    assert Path(o1["source"]).is_file() and Path(o1["source"]) != Path(o2["onnx_path"])
    assert json.loads((Path(o2["out_dir"]) / "ort_config.json").read_text())["optimization"]


@pytest.mark.parametrize("level", ["O1", "O2"])
def test_optimized_models_keep_parity(optimized, torch_model, tokenizer, single, level):
    reference = torch_logits(torch_model, single, tokenizer)
    candidate = onnx_logits(optimized[level]["out_dir"], single, tokenizer)
    check(
        compare(reference, candidate, np.array(single["labels"]), atol=1e-4, min_agreement=1.0),
        level,
    )


def test_o4_on_cpu_and_unknown_levels_raise(exported, tmp_path):
    with pytest.raises(ValueError, match="O4 converts the model to fp16.*use O3 for CPU"):
        optimize_onnx(exported["out_dir"], tmp_path / "o4", "O4")
    with pytest.raises(ValueError, match=r"unknown level 'O5'; known: \['O1', 'O2', 'O3', 'O4'\]"):
        optimize_onnx(exported["out_dir"], tmp_path / "o5", "O5")
    with pytest.raises(ValueError, match="its own folder"):
        optimize_onnx(exported["out_dir"], exported["out_dir"], "O1")
    assert sorted(LEVELS) == ["O1", "O2", "O3", "O4"]


def test_corrupted_initializer_fails_the_check(exported, tokenizer, single, tmp_path):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(exported["onnx_path"])
    biggest = max(proto.graph.initializer, key=lambda t: np.prod(t.dims))
    weights = numpy_helper.to_array(biggest)
    noisy = weights + np.random.default_rng(0).normal(0, 0.5, weights.shape).astype(weights.dtype)
    biggest.CopyFrom(numpy_helper.from_array(noisy, biggest.name))
    onnx.save(proto, tmp_path / "model.onnx")

    labels = np.array(single["labels"])
    reference = onnx_logits(exported["onnx_path"], single, tokenizer)
    corrupted = onnx_logits(tmp_path, single, tokenizer)
    report = compare(reference, corrupted, labels, atol=1e-4, min_agreement=0.999)
    assert not report.passed
    with pytest.raises(
        ParityError,
        match=r"parity failed for student-onnx: max \|Δlogit\| [0-9.e+-]+ > atol 0\.0001.*\(45 rows\)",
    ):
        check(report, "student-onnx")


def test_report_numbers_and_tolerances():
    reference = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 3.0]])
    candidate = np.array([[2.0, 0.1], [0.0, 1.0], [0.0, 1.0], [0.0, 3.0]])  # row 2 flips
    labels = np.array([0, 1, 0, 1])
    report = compare(reference, candidate, labels, atol=None, min_agreement=0.5)
    assert isinstance(report, ParityReport) and report.passed  # atol None: not checked
    assert report.rows == 4 and report.agreement == 0.75 and report.max_abs_diff == 1.0
    assert report.accuracy_reference == 1.0 and report.accuracy_candidate == 0.75
    assert report.accuracy_delta == -0.25
    assert report.to_dict()["mean_abs_diff"] == pytest.approx(2.1 / 8)
    strict = compare(
        reference, candidate, labels, atol=0.5, min_agreement=0.9, max_accuracy_drop=0.1
    )
    with pytest.raises(ParityError) as error:
        check(strict, "student-int8")
    message = str(error.value)
    assert "max |Δlogit| 1 > atol 0.5" in message
    assert "prediction agreement 0.750 < min_agreement 0.9" in message
    assert "accuracy drop 0.2500 > max_accuracy_drop 0.1 (4 rows)" in message
    with pytest.raises(ValueError, match="expected reference and candidate logits"):
        compare(reference, candidate[:3], labels, atol=1e-4, min_agreement=1.0)


def test_pipeline_returns_label_names(exported, tokenizer, torch_model):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoConfig, AutoTokenizer, pipeline

    model = ORTModelForSequenceClassification.from_pretrained(exported["out_dir"])
    # the folder also holds features/model.onnx: the classifier at the root must be the one loaded
    assert [o.name for o in model.session.get_outputs()] == ["logits"]
    texts = ["w1 w2 w3", "w7 w8", "w40 w41 w42 w43 w44"]
    saved = AutoTokenizer.from_pretrained(exported["out_dir"])  # the tokenizer the export wrote
    assert saved(texts)["input_ids"] == tokenizer(texts)["input_ids"]
    assert AutoConfig.from_pretrained(exported["out_dir"]).id2label == LABELS
    predictions = pipeline("text-classification", model=model, tokenizer=saved)(texts)
    with torch.no_grad():
        probs = torch.softmax(
            torch_model(**tokenizer(texts, padding=True, return_tensors="pt")).logits, -1
        )
    assert [p["label"] for p in predictions] == [LABELS[int(i)] for i in probs.argmax(-1)]
    assert [p["score"] for p in predictions] == pytest.approx(
        probs.max(-1).values.tolist(), abs=1e-4
    )


def test_cls_vectors_agree(tiny_dir, exported):
    texts = _texts(np.random.default_rng(3), 9)
    torch_vectors = cls_vector_torch(tiny_dir, texts, max_length=24)
    onnx_vectors = cls_vector_onnx(exported["features"]["out_dir"], texts, max_length=24)
    assert torch_vectors.shape == onnx_vectors.shape == (9, 32)
    cosine = (torch_vectors * onnx_vectors).sum(1) / (
        np.linalg.norm(torch_vectors, axis=1) * np.linalg.norm(onnx_vectors, axis=1)
    )
    assert cosine.min() >= 0.9999


def test_explicit_opset(tiny_dir, tmp_path):
    assert export_classifier(tiny_dir, tmp_path / "onnx", opset=17)["opset"] == 17


def test_unsupported_architecture_raises(tmp_path):
    from transformers import GPT2Config

    GPT2Config(
        n_layer=1, n_embd=8, n_head=2, architectures=["GPT2ForSequenceClassification"]
    ).save_pretrained(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"architecture GPT2ForSequenceClassification \(model_type 'gpt2'\) .* not supported; "
        r"supported BERT-family model types: bert, roberta, xlm-roberta, camembert, electra",
    ):
        export_classifier(tmp_path, tmp_path / "onnx")


def test_bare_encoder_raises(tiny_dir, tmp_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_dir)
    config.architectures = ["BertModel"]
    config.save_pretrained(tmp_path)
    with pytest.raises(
        ValueError, match="not a …ForSequenceClassification or …ForTokenClassification model"
    ):
        export_classifier(tmp_path, tmp_path / "onnx")


def test_cuda_without_cuda_raises(tiny_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(
        RuntimeError, match=r"device='cuda' but torch.cuda.is_available\(\) is False"
    ):
        export_classifier(tiny_dir, tmp_path / "onnx", device="cuda")
    with pytest.raises(ValueError, match=r"unknown device 'tpu'; known: \['cpu', 'cuda'\]"):
        export_classifier(tiny_dir, tmp_path / "onnx", device="tpu")
