"""Sentence pairs end to end: a generated pair task read from both sentences (synthetic:verdict),
on a family with segment embeddings (BERT: token_type_ids) and three without (RoBERTa: `</s></s>`
between the sentences; DistilBERT; DeBERTa-v3-style, whose tokenizer emits segment ids its model
ignores), through export, int8, bench and an int8 bundle fed pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from export.parity import onnx_logits
from pipelines.bundle.verify import run_predict, verify_bundle
from pipelines.core.config import load_recipe
from pipelines.core.models import load_stage_model
from pipelines.data.loading import load_task_data, tokenize
from pipelines.run.runner import run_pipeline
from tests.conftest import SECTIONS, family_recipe, write_recipe
from tests.families import build_family, corpus_words

pytestmark = pytest.mark.slow  # a family × task-type matrix: a whole pipeline per case

PAIR_TASK = {"text_columns": ["text_a", "text_b"], "label_column": "label", "labels": ["no", "yes"]}


@pytest.fixture(scope="module", params=["bert", "roberta", "distilbert", "deberta-v2"])
def pair_run(request, tmp_path_factory):
    family = request.param
    tmp = tmp_path_factory.mktemp(f"pairs-{family}")
    build_family(family, tmp / "model", corpus_words("verdict"))
    recipe = family_recipe(
        family,
        tmp / "model",
        task=PAIR_TASK,
        data={"source": "synthetic:verdict", "synthetic_rows": 800, "max_length": 32},
        # nothing here reads the bench: one worker, not the teacher's and the peer's too
        bench={**SECTIONS["bench"], "artifacts": ["student-int8-dynamic"]},
    )
    path = write_recipe(tmp / "recipe.yaml", recipe)
    recipe = load_recipe(path)
    manifests = run_pipeline(recipe, tmp / "runs", target="bundle", echo=lambda _: None)
    return family, recipe, tmp / "runs" / family, manifests


def test_the_int8_pair_model_reads_the_second_sentence(pair_run):
    family, recipe, run, manifests = pair_run
    assert manifests["teacher"]["metrics"]["accuracy"] >= 0.75, family
    assert manifests["distill"]["metrics"]["accuracy"] >= 0.65, family
    _, tokenizer = load_stage_model(run / "distill", recipe.security)
    eval_rows = load_task_data(recipe).eval
    pairs = tokenize(eval_rows, tokenizer, recipe)
    onnx = run / "quantize" / "student-int8-dynamic" / "model.onnx"
    labels = np.asarray(eval_rows["labels"])
    both = (onnx_logits(onnx, pairs, tokenizer).argmax(-1) == labels).mean()
    first_only = tokenize(eval_rows.map(lambda row: {"text_b": ""}), tokenizer, recipe)
    one = (onnx_logits(onnx, first_only, tokenizer).argmax(-1) == labels).mean()
    assert both == pytest.approx(manifests["quantize"]["metrics"]["student-int8-dynamic_accuracy"])
    assert both - one >= 0.15, f"{family}: text_a alone scores {one}, the pair {both}"


def test_pairs_keep_parity_and_reach_the_bundle(pair_run):
    family, recipe, run, manifests = pair_run
    export = manifests["export"]["metrics"]
    assert export["agreement"] == 1.0 and export["fused_agreement"] >= 0.999
    config = json.loads((run / "bundle" / "distillery.json").read_text())
    assert config["text_columns"] == ["text_a", "text_b"]
    summary = verify_bundle(run / "bundle", recipe=recipe, echo=lambda _: None)
    assert summary["same_rows"] and summary["accuracy"] == summary["recorded_accuracy"]
    swapped = run.parent / "swapped.jsonl"
    rows = [json.loads(line) for line in (run / "bundle" / "eval.jsonl").read_text().splitlines()]
    swapped.write_text(
        "".join(
            json.dumps({**r, "text_a": r["text_b"], "text_b": r["text_a"]}) + "\n" for r in rows
        )
    )
    straight = [r["label"] for r in run_predict(run / "bundle", run / "bundle" / "eval.jsonl")]
    crossed = [r["label"] for r in run_predict(run / "bundle", swapped)]
    assert straight != crossed, f"{family}: predict.py ignores which sentence comes first"
