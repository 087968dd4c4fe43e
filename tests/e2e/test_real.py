"""Tests on the real SST-2 data and MiniLM under ../shared (marker `real`; skipped without it)."""

import os

import pytest

from pipelines.core.config import load_recipe
from pipelines.run.runner import run_pipeline
from tests.conftest import ROOT, SHARED

pytestmark = pytest.mark.real


@pytest.fixture
def every_core():
    """MiniLM's matrices are big enough to split: this worker's share of the cores for this test
    (conftest sets one thread for the tiny models), the setting put back after. Under xdist the
    other workers keep running: two OpenMP teams on the same cores slow each other many times."""
    import torch

    before = torch.get_num_threads()
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))
    yield
    torch.set_num_threads(before)


@pytest.mark.slow  # MiniLM fine-tuned for three epochs on 2,000 rows
def test_minilm_finetunes_on_2000_sst2_rows(tmp_path, every_core):
    recipe = load_recipe(
        ROOT / "recipes" / "sst2-minilm.yaml",
        [
            "name=sst2-real-test",
            "data.max_train_samples=2000",
            "teacher.epochs=3",
            "teacher.learning_rate=1e-4",
            "train.save_steps=1000",
            "train.device=cpu",
        ],
    )
    assert recipe.teacher.model == str((SHARED / "models" / "all-minilm-l6-v2").resolve())
    manifest = run_pipeline(recipe, tmp_path / "runs", target="teacher", echo=print)["teacher"]
    assert manifest["metrics"]["eval_rows"] == 872
    assert manifest["metrics"]["accuracy"] >= 0.80


def _sst2_batches(tokenizer, rows=64, batch=32):
    import json

    lines = (SHARED / "data" / "sst2" / "validation.jsonl").read_text().splitlines()[:rows]
    texts = [json.loads(line)["text"] for line in lines]
    return [
        dict(tokenizer(texts[i : i + batch], padding=True, return_tensors="pt"))
        for i in range(0, len(texts), batch)
    ]


def test_pruning_minilm_on_real_sentences(tmp_path):
    """Cutting nothing out of MiniLM gives MiniLM back on real SST-2 sentences (parity); the
    4-layer, 256-wide cut of recipes/sst2-minilm-config.yaml keeps the teacher's final features:
    on the kept channels its [CLS] vectors point the teacher's way (a random init does not)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from distill.prune import prune_teacher
    from pipelines.core.config import ModelShape

    folder = SHARED / "models" / "all-minilm-l6-v2"
    torch.manual_seed(0)
    teacher = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batches = _sst2_batches(tokenizer)
    c = teacher.config
    full = ModelShape(
        num_hidden_layers=c.num_hidden_layers,
        hidden_size=c.hidden_size,
        num_attention_heads=c.num_attention_heads,
        intermediate_size=c.intermediate_size,
    )
    same, _ = prune_teacher(teacher, full, list(range(c.num_hidden_layers)), batches)
    with torch.no_grad():
        for batch in batches:
            torch.testing.assert_close(
                same.eval()(**batch).logits, teacher(**batch).logits, rtol=0, atol=1e-5
            )

    recipe = load_recipe(ROOT / "recipes" / "sst2-minilm-config.yaml")
    shape, layers = recipe.student.config, recipe.student.layers
    cut, kept = prune_teacher(teacher, shape, layers, batches)
    random_init = type(cut)(cut.config).eval()
    channels = torch.tensor(kept["channels"])

    def cls(model, batch):
        with torch.no_grad():
            return model.bert(**batch).last_hidden_state[:, 0]

    batch = batches[1]
    target = cls(teacher, batch)[:, channels]
    agree_cut = torch.cosine_similarity(cls(cut.eval(), batch), target, dim=-1).mean()
    agree_random = torch.cosine_similarity(cls(random_init, batch), target, dim=-1).mean()
    print(f"[CLS] cosine to the teacher: cut {agree_cut:.3f}, random init {agree_random:.3f}")
    assert agree_cut > 0.5 and agree_random < 0.2
