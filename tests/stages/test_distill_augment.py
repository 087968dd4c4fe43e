"""The distill stage with an augmented transfer set (`distill.augment`): new rows labelled by the
teacher, cached in chunks and resumed, the cache keyed by the augmentation config, the MLM method's
missing model named. The rows themselves (distill/augment.py): tests/lib/test_augment.py."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipelines.core.config import load_recipe
from pipelines.run.runner import run_pipeline
from tests.conftest import seed_run, tiny_recipe, write_recipe

ROWS_400 = {"source": "synthetic:sentiment", "synthetic_rows": 400, "max_length": 24}


def _augmented_recipe(tmp_path, **augment):
    config = {"factor": 1.5, "chunk_rows": 200, **augment}
    recipe = tiny_recipe(
        data=ROWS_400,
        distill={"epochs": 0.5, "batch_size": 16, "augment": config},
    )
    return load_recipe(write_recipe(tmp_path / "recipe.yaml", recipe))


@pytest.mark.slow  # a 400-row teacher, then three augmented distillations
def test_stage_labels_new_rows_with_the_teacher_caches_and_resumes(tmp_path, teacher_for):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    teacher = teacher_for(data=ROWS_400)  # the 400-row teacher, trained once per session
    runs = seed_run(tmp_path / "runs", teacher, "teacher")
    manifests = run_pipeline(_augmented_recipe(tmp_path), runs, "distill", echo=lambda _: None)
    record = manifests["distill"]["augment"]
    train_rows = manifests["distill"]["training"]["train_rows"]
    assert record["rows"] == record["made"] == manifests["distill"]["training"]["augmented_rows"]
    assert record["rows"] == round(1.5 * (train_rows - record["rows"])) and record["reused"] == 0
    folder = runs / "tiny" / record["path"].split("/tiny/")[-1]
    chunks = sorted(folder.glob("rows-*.jsonl"))
    assert len(chunks) == record["chunks"] == -(-record["rows"] // 200)

    # the cached logits are the teacher's on exactly those rows
    teacher_dir = runs / "tiny" / "teacher"
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    rows = [json.loads(line) for line in chunks[0].read_text().splitlines()[:6]]
    with torch.no_grad():
        enc = tokenizer(rows, truncation=True, max_length=24, padding=True, return_tensors="pt")
        expected = teacher(**enc).logits.numpy()
    cached = np.load(folder / "logits-00000.npy")
    np.testing.assert_allclose(cached[:6], expected, atol=1e-4)

    # a lost chunk is made again, the others reused; the same rows come back
    (folder / "logits-00001.npy").unlink()
    recipe = _augmented_recipe(tmp_path)
    again = run_pipeline(recipe, runs, "distill", force=True, echo=lambda _: None)
    redo = again["distill"]["augment"]
    assert redo["made"] == 200 and redo["reused"] == record["rows"] - 200
    assert redo["examples"] == record["examples"]

    # another augmentation config is another cache: nothing is reused
    other = run_pipeline(
        _augmented_recipe(tmp_path, methods=["ngram"]),
        runs,
        "distill",
        force=True,
        echo=lambda _: None,
    )["distill"]["augment"]
    assert other["path"] != record["path"] and other["reused"] == 0


def test_mlm_method_without_a_masked_lm_names_the_key(tmp_path):
    from pipelines.core.errors import ConfigError

    with pytest.raises(ConfigError, match="distill.augment.mlm_model"):
        run_pipeline(
            _augmented_recipe(tmp_path, methods=["mlm"]),
            tmp_path / "runs",
            "distill",
            echo=lambda _: None,
        )
