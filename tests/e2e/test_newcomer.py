"""A newcomer's first run on their own data (issue #29): a CSV whose columns are not the
defaults and whose labels are strings → `distillery init` → `distillery run` → a report and a
bundle, with no hand edit of the recipe; the same data as a `save_to_disk` folder; and a teacher
at chance stopped before the student is trained."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from tests.conftest import tiny_bert

POSITIVE = ["great", "lovely", "superb", "wonderful", "enjoyable", "moving"]
NEGATIVE = ["awful", "boring", "terrible", "dull", "clumsy", "tedious"]
FILLER = ["the", "movie", "film", "plot", "was", "really", "quite", "acting", "story", "and"]
# The smallest run through the bundle: one int8 artifact, a one-cell bench, a short distill.
TINY = [
    "teacher.learning_rate=3e-3",
    "teacher.batch_size=16",
    "distill.epochs=1",
    "distill.batch_size=16",
    "distill.augment.factor=0",  # init writes distill.auto: true; no augmented rows here (time)
    "train.device=cpu",
    "export.teacher=false",
    "quantize.methods=[dynamic]",
    "quantize.teacher=false",
    "quantize.peer=false",
    "bench.batch_sizes=[1]",
    "bench.seq_lens=[16]",
    "bench.threads=[1]",
    "bench.rounds=1",
    "bench.min_runs=3",
    "bench.min_seconds=0.02",
    "bench.warmup_runs=1",
    "bench.gpu=false",
    "bench.withhold_noisy=false",
    "bench.ceiling_size=0",  # the GEMM ceiling and the watch before the grid: tested elsewhere
    "bench.load_sample_s=0",
    "bundle.cold_start_runs=1",
    "bundle.latency_sentences=16",
    "bundle.latency_repeats=2",
]


def reviews(rows: int, seed: int, shuffle_labels: bool = False) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(rows):
        label = rng.choice(["pos", "neg"])
        words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label == "pos" else NEGATIVE)]
        rng.shuffle(words)
        out.append((" ".join(words), rng.choice(["pos", "neg"]) if shuffle_labels else label))
    return out


def write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["review", "sentiment"])
        out.writerows(rows)
    return path


@pytest.fixture(scope="module")
def teacher(tmp_path_factory) -> Path:
    """A tiny untrained BERT checkpoint with a word-level vocabulary: a base model to fine-tune."""
    folder = tmp_path_factory.mktemp("teacher")
    model, _ = tiny_bert(folder, POSITIVE + NEGATIVE + FILLER)
    model.save_pretrained(folder)
    return folder


def init_and_run(tmp: Path, data: Path, teacher: Path, *extra: str) -> tuple[Path, int]:
    recipe = tmp / "recipes" / "reviews.yaml"
    assert main(["init", str(data), "--teacher", str(teacher), "-o", str(recipe)]) == 0
    runs = tmp / "runs"
    code = main(["run", str(recipe), "--runs-dir", str(runs), "--set", *TINY, *extra])
    return recipe, code


@pytest.mark.slow
def test_csv_to_report_and_bundle_with_no_hand_edit(tmp_path, teacher, capsys):
    data = write_csv(tmp_path / "reviews.csv", reviews(700, seed=0))
    recipe, code = init_and_run(tmp_path, data, teacher)
    said = capsys.readouterr()
    assert code == 0, said.err[-2000:]
    raw = yaml.safe_load(recipe.read_text())
    assert raw["task"] == {
        "type": "single_label",
        "text_columns": ["review"],
        "label_column": "sentiment",
        "labels": ["neg", "pos"],
    }
    assert recipe.read_text().startswith(f"# Run: distillery run {recipe}")
    run = tmp_path / "runs" / "reviews"
    teacher_acc = json.loads((run / "teacher" / "manifest.json").read_text())["metrics"]
    assert teacher_acc["accuracy"] > 0.8  # the guard let it through: it learnt the task
    report = (run / "report" / "README.md").read_text()
    student = json.loads((run / "distill" / "manifest.json").read_text())["metrics"]
    assert f"{student['accuracy']:.4f}" in report
    bundle = run / "bundle"
    settings = json.loads((bundle / "distillery.json").read_text())  # the bundle's own settings
    assert settings["labels"] == ["neg", "pos"]
    assert settings["max_length"] == raw["data"]["max_length"]
    hf_config = json.loads((bundle / "config.json").read_text())  # the model's, for HF loaders
    assert hf_config["id2label"] == {"0": "neg", "1": "pos"}
    assert (bundle / "model.onnx").stat().st_size > 1000
    rows = [json.loads(line) for line in (bundle / "eval.jsonl").read_text().splitlines()]
    assert rows and {r["label"] for r in rows} <= {"neg", "pos", 0, 1}


@pytest.mark.slow
def test_a_chance_level_teacher_stops_before_distilling(tmp_path, teacher, capsys):
    data = write_csv(tmp_path / "reviews.csv", reviews(700, seed=1, shuffle_labels=True))
    _, code = init_and_run(tmp_path, data, teacher, "teacher.epochs=1")
    err = capsys.readouterr().err
    assert code == 2
    assert "the teacher is not clearly better than always answering" in err
    assert "teacher.min_lift=null" in err and "95% interval on 210 rows" in err
    run = tmp_path / "runs" / "reviews"
    assert (run / "teacher" / "manifest.json").is_file()  # kept: a rerun need not retrain it
    assert not (run / "distill" / "manifest.json").exists()


@pytest.mark.slow
def test_save_to_disk_folder_inits_runs_and_bundles(tmp_path, teacher, capsys):
    import datasets

    from pipelines.core.config import load_recipe
    from pipelines.data.loading import load_task_data

    rows = reviews(300, seed=2)
    folder = tmp_path / "saved"
    datasets.Dataset.from_dict(
        {"review": [r for r, _ in rows], "sentiment": [s for _, s in rows]}
    ).save_to_disk(str(folder))
    recipe = tmp_path / "r.yaml"
    assert main(["init", str(folder), "--teacher", str(teacher), "-o", str(recipe)]) == 0
    said = capsys.readouterr().out
    assert "the teacher's tokenizer" in said  # a local teacher sizes max_length by its tokens
    raw = yaml.safe_load(recipe.read_text())
    assert raw["task"]["labels"] == ["neg", "pos"] and raw["data"]["eval_fraction"] == 0.3
    assert raw["student"]["layers"] == [0]
    assert main(["validate", str(recipe)]) == 0
    data = load_task_data(load_recipe(str(recipe), []))
    assert len(data.train) + len(data.eval) == 300 and len(data.eval) == 90
    assert set(data.train["labels"]) == {0, 1}
    runs = tmp_path / "runs"  # the guard has its own test: here only the folder's way through
    code = main(
        ["run", str(recipe), "--runs-dir", str(runs), "--set", *TINY, "teacher.min_lift=null"]
    )
    assert code == 0, capsys.readouterr().err[-2000:]
    run = runs / raw["name"]
    student = json.loads((run / "distill" / "manifest.json").read_text())["metrics"]
    assert f"{student['accuracy']:.4f}" in (run / "report" / "README.md").read_text()
    settings = json.loads((run / "bundle" / "distillery.json").read_text())
    assert settings["labels"] == ["neg", "pos"]
