"""Bad input gets one clear message naming the problem and the fix (issue #7 cases)."""

import pytest

from pipelines.core.config import load_recipe
from pipelines.core.errors import DistilleryError, SourceError
from pipelines.run.runner import run_pipeline
from tests.conftest import tiny_recipe, write_jsonl, write_recipe


def _run(tmp_path, stage="teacher", **sections):
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", tiny_recipe(**sections)))
    return run_pipeline(recipe, tmp_path / "runs", target=stage, echo=lambda _: None)


def test_missing_data_path_names_path_and_expected_files(tmp_path):
    with pytest.raises(
        SourceError,
        match=r"data\.source: local path .*/nowhere does not exist\. Give a folder holding one file per split \(train\.jsonl, validation\.jsonl",
    ):
        _run(tmp_path, data={"source": "./nowhere"})


def test_empty_eval_split_names_split_and_size(tmp_path):
    folder = tmp_path / "data"
    write_jsonl(folder / "train.jsonl", [{"text": "a b", "label": 0}] * 40)
    (folder / "validation.jsonl").write_text("")
    with pytest.raises(
        DistilleryError, match=r"split 'validation' \(.*validation\.jsonl\) is empty: 0 rows"
    ):
        _run(tmp_path, data={"source": str(folder)})


def test_train_split_smaller_than_a_batch(tmp_path):
    folder = tmp_path / "data"
    write_jsonl(folder / "train.jsonl", [{"text": "a b", "label": i % 2} for i in range(5)])
    write_jsonl(folder / "validation.jsonl", [{"text": "a b", "label": 1}] * 5)
    with pytest.raises(
        DistilleryError,
        match=r"split 'train' has 5 rows, fewer than 16 \(teacher\.batch_size is 16\)",
    ):
        _run(tmp_path, data={"source": str(folder)})
    assert not (tmp_path / "runs" / "tiny" / "teacher" / "manifest.json").exists()


def test_truncated_weights_name_the_file(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification

    folder = tmp_path / "model"
    BertForSequenceClassification(
        BertConfig(
            vocab_size=60,
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        )
    ).save_pretrained(folder)
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    (folder / "vocab.txt").write_text(
        "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
    )
    with pytest.raises(
        DistilleryError,
        match=r"teacher\.model: cannot load weights from .*model.* truncated or corrupted; files there: .*model\.safetensors",
    ):
        _run(tmp_path, teacher={"init": "pretrained", "model": str(folder)})
