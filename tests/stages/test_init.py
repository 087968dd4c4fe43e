"""`distillery init` on its own (what it proposes from the data, the recipe it writes), validate
reading the data, the teacher guard's arithmetic and its recipe key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from pipelines.cli import main
from pipelines.core.config import load_recipe
from pipelines.core.errors import DistilleryError
from pipelines.data.confidence import interval_halfwidth, lower_bound
from pipelines.data.survey import propose, read_table
from pipelines.distillation.teacher_guard import check_teacher_lift
from tests.conftest import reviews_csv, tiny_recipe, write_recipe


def test_proposes_columns_labels_and_sizes_from_the_csv(tmp_path, capsys):
    data = reviews_csv(tmp_path / "reviews.csv")
    out = tmp_path / "recipes" / "reviews.yaml"
    assert main(["init", str(data), "--teacher", "bert-base-uncased", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    text = out.read_text()
    assert text.startswith(f"# Run: distillery run {out}\n")
    raw = yaml.safe_load(text)
    assert raw["task"]["text_columns"] == ["review"]  # the id column is a number, not text
    assert raw["task"]["label_column"] == "sentiment"
    assert raw["task"]["labels"] == ["neg", "pos"]
    # 300 rows: the eval share is raised from 0.1 to 0.3 (90 rows), and the note says ± what
    assert raw["data"]["eval_fraction"] == 0.3
    assert raw["data"]["max_length"] % 8 == 0 and 16 <= raw["data"]["max_length"] <= 32
    assert raw["teacher"]["epochs"] == 10 and raw["teacher"]["model"] == "bert-base-uncased"
    for line in text.splitlines()[3:]:  # every key says why
        assert line.endswith(":") or "  # " in line, line
    assert "note: the eval split has 90 rows" in said and "± 0.0" in said
    recipe = load_recipe(str(out), [])  # the path resolves against the recipe's folder
    assert Path(recipe.data.source) == data.resolve()


def test_a_finetuned_teacher_keeps_its_label_order_and_is_not_trained(tmp_path):
    data = reviews_csv(tmp_path / "reviews.csv")
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    config = {
        "architectures": ["BertForSequenceClassification"],
        "id2label": {"0": "pos", "1": "neg"},
        "num_hidden_layers": 6,
        "max_position_embeddings": 512,
    }
    (teacher / "config.json").write_text(json.dumps(config))
    out = tmp_path / "r.yaml"
    main(["init", str(data), "--teacher", str(teacher), "-o", str(out), "--name", "mine"])
    raw = yaml.safe_load(out.read_text())
    assert raw["name"] == "mine"
    assert raw["task"]["labels"] == ["pos", "neg"]  # the head's order, not sorted
    assert raw["teacher"]["finetune"] is False and "epochs" not in raw["teacher"]
    assert raw["student"]["layers"] == [0, 2, 4]


def test_save_to_disk_folder_int_labels_and_pairs(tmp_path):
    import datasets

    rows = {
        "premise": [f"a long premise sentence number {i}" for i in range(40)],
        "hypothesis": [f"a hypothesis {i}" for i in range(40)],
        "label": [i % 3 for i in range(40)],
    }
    folder = tmp_path / "saved"
    datasets.DatasetDict(
        train=datasets.Dataset.from_dict(rows), validation=datasets.Dataset.from_dict(rows)
    ).save_to_disk(str(folder))
    proposal = propose(read_table(str(folder)))
    assert proposal.text_columns == ["premise", "hypothesis"]
    assert proposal.labels == ["0", "1", "2"] and proposal.task_type == "single_label"
    out = tmp_path / "r.yaml"
    main(["init", str(folder), "--teacher", "bert-base-uncased", "-o", str(out)])
    raw = yaml.safe_load(out.read_text())
    assert "eval_fraction" not in raw["data"]  # the folder has its own validation split


def test_problems_are_reported_all_at_once_by_init(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("n,m\n1,2\n3,4\n5,5\n")
    assert main(["init", str(path), "--teacher", "bert-base-uncased"]) == 2
    err = capsys.readouterr().err
    assert "no column of text" in err
    assert main(["init", str(tmp_path / "nope.csv"), "--teacher", "x"]) == 2


def test_validate_lists_every_mismatch_with_its_fix(tmp_path, capsys, caplog):
    data = reviews_csv(tmp_path / "reviews.csv")
    recipe = tiny_recipe(data={"source": str(data)})
    path = write_recipe(tmp_path / "r.yaml", recipe)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err
    assert (
        "task.text_columns: no column 'text' in reviews.csv (columns: id, review, sentiment)" in err
    )
    assert "set --set task.text_columns=[review]" in err
    assert "set --set task.label_column=sentiment" in err
    fixed = ["--set", "task.text_columns=[review]", "task.label_column=sentiment"]
    assert main(["validate", str(path), *fixed]) == 2
    assert "set --set task.labels=[neg,pos]" in capsys.readouterr().err
    assert main(["validate", str(path), *fixed, "task.type=regression", "task.labels=[s]"]) == 2
    assert "which make a single_label task, not regression" in capsys.readouterr().err
    assert main(["validate", str(path), *fixed, "task.labels=[neg,pos]"]) == 0
    # 300 rows, 10% held out: 30 eval rows, named with their interval
    assert "the eval split has 30 rows: an accuracy of 0.90 on it reads 0.90 ± 0.1" in caplog.text


def test_wilson_interval_matches_known_values():
    # 90/100 correct: the Wilson 95% interval is [0.8256, 0.9448]
    assert lower_bound(0.9, 100) == pytest.approx(0.8256, abs=1e-3)
    assert interval_halfwidth(0.9, 100) == pytest.approx((0.9448 - 0.8256) / 2, abs=1e-3)


def test_guard_stops_a_chance_teacher_and_min_lift_null_lets_it_through():
    recipe = load_recipe_dict(tiny_recipe(teacher={**tiny_recipe()["teacher"], "min_lift": 0.0}))
    labels = [0] * 60 + [1] * 40  # majority share 0.6
    with pytest.raises(
        DistilleryError,
        match=r"not clearly better than always answering 'negative'.*0\.6000.*teacher\.min_lift=null",
    ):
        check_teacher_lift(recipe, 0.65, labels)  # lower bound 0.55 < 0.6
    check_teacher_lift(recipe, 0.9, labels)  # lower bound 0.83: through
    off = load_recipe_dict(tiny_recipe(teacher={**tiny_recipe()["teacher"], "min_lift": None}))
    check_teacher_lift(off, 0.5, labels)
    strict = load_recipe_dict(tiny_recipe(teacher={**tiny_recipe()["teacher"], "min_lift": 0.3}))
    with pytest.raises(DistilleryError, match="min_lift asks 0.30"):
        check_teacher_lift(strict, 0.9, labels)


def test_min_lift_changes_no_stage_hash():
    from pipelines.run.hashing import stage_hash
    from pipelines.run.registry import STAGES

    def hashes(**teacher):
        recipe = load_recipe_dict(tiny_recipe(teacher={**tiny_recipe()["teacher"], **teacher}))
        return {
            name: stage_hash(recipe, stage, {need: "0" * 64 for need in stage.needs}, "d" * 64)
            for name, stage in STAGES.items()
        }

    assert hashes() == hashes(min_lift=None) == hashes(min_lift=0.2)
    assert hashes() != hashes(epochs=5)  # the comparison can fail


def load_recipe_dict(raw: dict):
    from pipelines.core.config import Recipe

    return Recipe(**raw)
