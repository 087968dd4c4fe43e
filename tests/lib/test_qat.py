"""Quantization-aware distillation (NNCF), TinyBERT's two steps and MiniLM relations, on tiny BERTs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.conftest import tiny_bert, tiny_recipe, write_recipe

WORDS = [
    "good",
    "bad",
    "great",
    "awful",
    "fine",
    "dull",
    "fun",
    "boring",
    "nice",
    "poor",
    "film",
    "plot",
    "cast",
    "the",
    "a",
]


def _batches(tokenizer, n=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        texts = [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(8)]
        out.append(dict(tokenizer(texts, padding=True, return_tensors="pt")))
    return out


def test_qat_export_is_a_qdq_graph_that_matches_the_fake_quant_model(tmp_path):
    pytest.importorskip("nncf", reason="QAT needs nncf: pip install 'distillery[openvino]'")
    import onnxruntime as ort

    from modelkit.onnx_graph import op_counts
    from quantize.qat import export_qat_onnx, prepare_qat

    model, tokenizer = tiny_bert(tmp_path / "src", WORDS, hidden_size=64, num_attention_heads=4)
    model.save_pretrained(tmp_path / "src", safe_serialization=True)
    batches = _batches(tokenizer)
    qmodel = prepare_qat(model, batches[:3])
    # a few training steps move the weights and the learned ranges, as QAT does
    qmodel.train()
    optimizer = torch.optim.AdamW(qmodel.parameters(), lr=1e-3)
    for batch in batches:
        loss = qmodel(**batch, labels=torch.zeros(len(batch["input_ids"]), dtype=torch.long)).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    qmodel.eval()
    with torch.no_grad():
        fake_quant = torch.cat([qmodel(**b).logits for b in batches[3:]]).numpy()
        fp32 = torch.cat([model(**b).logits for b in batches[3:]]).numpy()

    path = export_qat_onnx(qmodel, tmp_path / "qat", batches[0], source_dir=tmp_path / "src")
    counts = op_counts(path)
    assert counts.get("QuantizeLinear", 0) >= 12 and counts.get("DequantizeLinear", 0) >= 12
    assert (tmp_path / "qat" / "config.json").is_file()  # deployable beside its tokenizer files
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    onnx = np.concatenate(
        [
            session.run(None, {k: v.numpy() for k, v in b.items() if k in names})[0]
            for b in batches[3:]
        ]
    )
    # ORT runs what the fake-quant model computed (up to rounding at quantization boundaries) ...
    np.testing.assert_allclose(onnx, fake_quant, atol=2e-2, rtol=0)
    assert np.abs(onnx - fake_quant).mean() < 2e-3
    # ... and that is not the fp32 model: the graph is quantized, not a float copy
    assert np.abs(fake_quant - fp32).max() > 1e-3


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory):
    """One tiny run through quantize with augmentation, MiniLM relations, two steps, QAT and the
    ablation: every #14 method wired into the stages."""
    pytest.importorskip("nncf", reason="QAT needs nncf: pip install 'distillery[openvino]'")
    from pipelines.core.config import load_recipe
    from pipelines.run.runner import run_pipeline

    tmp = tmp_path_factory.mktemp("methods")
    recipe = tiny_recipe(
        data={"source": "synthetic:sentiment", "synthetic_rows": 400, "max_length": 24},
        student={"init": "teacher_layers", "layers": [1]},
        distill={
            "epochs": 0.5,
            "batch_size": 16,
            "matches": ["attention_kl", "value_relation"],
            "two_step": 0.5,
            "augment": {"factor": 0.5, "chunk_rows": 100},
            "qat": {"epochs": 0.5, "calibration_samples": 32},
            "ablation": True,
            "ablation_variants": ["labels_only", "kd_augment", "two_step", "minilm"],
        },
        export={"optimize": "none"},
        quantize={"methods": ["dynamic", "openvino"], "teacher": False, "peer": False},
    )
    recipe = load_recipe(write_recipe(tmp / "recipe.yaml", recipe))
    manifests = run_pipeline(recipe, tmp / "runs", "quantize", echo=lambda _: None)
    return manifests, tmp / "runs" / "tiny"


def test_two_step_relation_run_logs_every_term_of_each_step(methods_run):
    manifests, run = methods_run
    distill = manifests["distill"]
    assert distill["loss"]["matches"] == ["attention_kl", "value_relation"]
    assert distill["training"]["two_step"] == 0.5
    log = (run / "distill" / "log.txt").read_text()
    # step 1 trains the matches alone (task and kd weighted 0), step 2 the logits alone
    assert "'loss_value_relation'" in log and "'weight_task': 0.0" in log
    assert "'loss_kd'" in log
    assert 0.0 <= distill["metrics"]["accuracy"] <= 1.0


def test_qat_artifact_goes_through_the_quantize_stage(methods_run):
    manifests, run = methods_run
    qat = manifests["distill"]["qat"]
    assert qat["library"] == "nncf" and qat["global_step"] > 0
    artifact = manifests["quantize"]["quantized"]["student-int8-qat"]
    assert artifact["method"] == "qat" and artifact["quantized_ops"] > 0
    # the quantize stage measured the same graph the distill stage exported
    assert artifact["accuracy"] == pytest.approx(qat["int8_accuracy"])
    assert (run / "quantize" / "student-int8-qat" / "model.onnx").is_file()
    gate = manifests["quantize"]["gate"]
    assert "student-int8-qat" in gate["accepted"] + gate["rejected"]  # gated like the others
    # the same QDQ graph as an OpenVINO IR: FakeQuantize ops, logits close to ORT's on that graph
    ov = manifests["quantize"]["quantized"]["student-int8-qat-openvino"]
    assert ov["engine"] == "openvino" and ov["quantized_ops"] > 0
    assert (run / "quantize" / "student-int8-qat-openvino" / "model.xml").is_file()
    assert abs(ov["accuracy"] - artifact["accuracy"]) <= 0.05
    assert "student-int8-qat-openvino" in gate["accepted"] + gate["rejected"]


def test_ablation_rows_cover_the_requested_variants(methods_run):
    manifests, run = methods_run
    rows = json.loads((run / "distill" / "ablation.json").read_text())
    names = [r["variant"] for r in rows]
    assert names == [
        "labels_only",
        "kd_augment",
        "kd_augment_two_step",
        "kd_augment_minilm",
        "+qat",
    ]
    by_name = {r["variant"]: r for r in rows}
    # the recipe's own run is two-step with [attention_kl, value_relation] on the augmented set:
    # the two_step row (recipe matches) and the minilm row (same matches, one step) differ from it
    assert by_name["kd_augment_two_step"].get("reused_main_run") is True
    assert by_name["kd_augment_minilm"]["matches"] == ["attention_kl", "value_relation"]
    assert by_name["kd_augment_minilm"].get("two_step") == 0.0
    assert by_name["labels_only"]["train_rows"] < by_name["kd_augment"]["train_rows"]
    for row in rows:
        assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["int8_accuracy"] <= 1.0
    table = (run / "distill" / "ablation.md").read_text()
    assert "two steps, 0.5 epochs of matches first" in table
