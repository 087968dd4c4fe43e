"""The distill stage with TinyBERT's two steps, MiniLM relations, QAT and an ablation on the tiny
teacher, and the QAT artifact through the quantize stage. The QAT export: tests/lib/test_qat.py."""

from __future__ import annotations

import json

import pytest

from tests.conftest import seed_run, tiny_recipe, write_recipe

# two steps, relations, QAT, a 4-variant ablation, then export and quantize
pytestmark = pytest.mark.slow

ROWS_400 = {"source": "synthetic:sentiment", "synthetic_rows": 400, "max_length": 24}


@pytest.fixture(scope="module")
def methods_run(tmp_path_factory, teacher_for):
    """One tiny run through quantize with augmentation, MiniLM relations, two steps, QAT and the
    ablation: every #14 method wired into the stages."""
    pytest.importorskip("nncf", reason="QAT needs nncf: pip install 'distillery[openvino]'")
    from pipelines.core.config import load_recipe
    from pipelines.run.runner import run_pipeline

    tmp = tmp_path_factory.mktemp("methods")
    seed_run(tmp / "runs", teacher_for(data=ROWS_400), "teacher")  # trained once per session
    recipe = tiny_recipe(
        data=ROWS_400,
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
