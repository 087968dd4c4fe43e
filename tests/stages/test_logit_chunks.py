"""The teacher's logits built in resumable chunks (distill.cache.LogitCache.build, driven by
pipelines.distillation.logits): an interrupted pass keeps the chunks it finished, a rerun
computes only the rest, and the result is the uninterrupted run's, in the single-file format."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import numpy as np
import pytest

from distill.cache import LogitCache, chunks
from pipelines.distillation import logits as logits_module
from tests.conftest import tiny_bert, tiny_recipe

WORDS = ["good", "bad", "fine", "awful", "movie", "plot", "really", "was"]


@pytest.fixture(scope="module")
def teacher_and_rows(tmp_path_factory):
    """A tiny untrained BERT, its tokenizer and 50 tokenized rows of mixed lengths."""
    from datasets import Dataset

    model, tokenizer = tiny_bert(tmp_path_factory.mktemp("tok"), WORDS)
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, rng.integers(1, 9))) for _ in range(50)]
    rows = Dataset.from_dict({"text": texts}).map(
        lambda r: tokenizer(r["text"]), remove_columns=["text"]
    )
    return model, tokenizer, rows


def context(run_root):
    """The parts of a StageContext `cached_teacher_logits` reads."""
    from pipelines.core.config import load_recipe
    from pipelines.core.context import StageContext
    from pipelines.core.runs import RunDir
    from tests.conftest import write_recipe

    run_root.mkdir(parents=True)
    recipe = load_recipe(write_recipe(run_root / "recipe.yaml", tiny_recipe()))
    teacher = {"hash": "t" * 64, "files": {"model.safetensors": {"sha256": "w" * 64}}}
    data = SimpleNamespace(data_hash="d" * 64)
    return StageContext(recipe, RunDir(run_root, "tiny"), "distill", {"teacher": teacher},
                        {"data": data}, load_data=None)  # fmt: skip


def test_an_interrupted_pass_resumes_where_it_stopped(
    tmp_path, teacher_and_rows, monkeypatch, caplog
):
    model, tokenizer, rows = teacher_and_rows
    monkeypatch.setattr(logits_module, "CHUNK_ROWS", 16)  # 50 rows: 16, 16, 16, 2
    real = logits_module.teacher_logits
    computed: list[int] = []

    def failing_after_one_chunk(teacher, dataset, *args, **kwargs):
        if computed:
            raise KeyboardInterrupt  # as Ctrl-C would, after the first chunk was written
        computed.append(len(dataset))
        return real(teacher, dataset, *args, **kwargs)

    ctx = context(tmp_path / "interrupted")
    monkeypatch.setattr(logits_module, "teacher_logits", failing_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        logits_module.cached_teacher_logits(ctx, model, rows, tokenizer, "cpu")
    cache = LogitCache(ctx.run.path / "cache")
    (key_file,) = [p for p in cache.folder.iterdir()]  # nothing but the parts folder
    assert key_file.name.endswith(".parts")
    assert sorted(p.name for p in key_file.iterdir()) == ["rows-000000000-000000016.npy"]

    def counting(teacher, dataset, *args, **kwargs):
        computed.append(len(dataset))
        return real(teacher, dataset, *args, **kwargs)

    computed.clear()
    monkeypatch.setattr(logits_module, "teacher_logits", counting)
    with caplog.at_level(logging.INFO, logger="distillery"):
        resumed, record = logits_module.cached_teacher_logits(ctx, model, rows, tokenizer, "cpu")
    assert computed == [16, 16, 2]  # the finished chunk was read, not recomputed
    assert record["resumed_rows"] == 16 and record["reused"] is False
    assert any("step teacher logits: done 50/50 rows" in r.getMessage() for r in caplog.records)
    assert not key_file.exists()  # the parts go once the whole array is saved

    computed.clear()
    fresh = context(tmp_path / "uninterrupted")
    whole, _ = logits_module.cached_teacher_logits(fresh, model, rows, tokenizer, "cpu")
    assert computed == [16, 16, 16, 2]
    np.testing.assert_array_equal(resumed, whole)
    # the final file is the format `load` (and every run before chunking) reads
    np.testing.assert_array_equal(np.load(record["path"], allow_pickle=False), whole)
    again, reused = logits_module.cached_teacher_logits(ctx, model, rows, tokenizer, "cpu")
    assert reused["reused"] is True and computed == [16, 16, 16, 2]
    np.testing.assert_array_equal(again, whole)
    # and chunked logits are the one-pass logits (batches differ only in their padding)
    one_pass = real(model, rows, tokenizer, 128, "cpu")
    np.testing.assert_allclose(whole, one_pass, atol=1e-5)


def test_a_damaged_chunk_is_recomputed_alone(tmp_path, caplog):
    cache = LogitCache(tmp_path)
    asked: list[tuple[int, int]] = []

    def compute(start: int, stop: int) -> np.ndarray:
        asked.append((start, stop))
        return np.arange(start * 2, stop * 2, dtype=np.float32).reshape(-1, 2)

    parts = cache.parts("k" * 64)
    parts.mkdir(parents=True)
    for start, stop in [(0, 4), (4, 8)]:
        np.save(parts / f"rows-{start:09d}-{stop:09d}.npy", compute(start, stop))
    (parts / "rows-000000004-000000008.npy").write_bytes(b"cut short")
    assert cache.finished_rows("k" * 64, 10, chunk_rows=4) == 8  # what the files claim
    asked.clear()
    with caplog.at_level(logging.WARNING, logger="distillery"):
        logits = cache.build("k" * 64, 10, compute, chunk_rows=4)
    assert asked == [(4, 8), (8, 10)]
    assert "damaged chunk" in caplog.text
    np.testing.assert_array_equal(logits, compute(0, 10))
    np.testing.assert_array_equal(cache.load("k" * 64, 10), logits)


def test_chunks_cover_every_row_once():
    assert list(chunks(10, 4)) == [(0, 4), (4, 8), (8, 10)]
    assert list(chunks(0, 4)) == []
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        list(chunks(10, 0))
