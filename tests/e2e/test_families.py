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

from modelkit.families import family_of, takes_token_type_ids
from pipelines.bundle.verify import verify_bundle
from pipelines.core.config import load_recipe
from pipelines.run.runner import run_pipeline
from tests.conftest import FAMILY_MATCHES, family_recipe, write_recipe
from tests.families import FAMILY_NAMES, build_family, corpus_words

pytestmark = pytest.mark.slow  # a family × task-type matrix: a whole pipeline per case


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
    for match in FAMILY_MATCHES:  # each match computed on this family's tensors, logged by name
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
    assert {"student-int8-dynamic", "student-int8-peer"} <= set(measured)
    assert manifests["bench"]["metrics"]["errors"] == 0


def test_the_int8_bundle_predicts_like_the_pipeline(family_run):
    family, recipe, run, manifests = family_run
    assert manifests["bundle"]["metrics"]["artifact"] == "student-int8-dynamic"
    summary = verify_bundle(run / "bundle", recipe=recipe, echo=lambda _: None)
    assert summary["same_rows"], family
    assert summary["accuracy"] == summary["recorded_accuracy"]
    assert summary["accuracy"] >= 0.6
