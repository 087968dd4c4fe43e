"""Small data: the distill stage's defaults sized to the train rows (`distill.auto`), unlabelled
text the teacher labels (`distill.unlabelled`), read and checked at `distillery validate`, hashed
by content, and what `distillery init` writes about them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from pipelines.cli import main
from pipelines.core.config import DistillConfig, load_recipe
from pipelines.core.errors import DataError
from pipelines.data.unlabelled import read_unlabelled
from pipelines.distillation import auto_defaults
from pipelines.distillation.auto_defaults import MIN_STEPS, SMALL_DATA_ROWS, sized
from pipelines.run.hashing import stage_hash, stage_sources
from pipelines.run.registry import STAGES
from pipelines.run.runner import run_pipeline
from tests.conftest import ROOT, seed_run, tiny_recipe, write_recipe

# ---------------------------------------------------------------- the sizing rule


def test_small_data_gets_an_augmented_set_and_enough_steps_with_the_reasons():
    d, record = sized(DistillConfig(auto=True), 1000)
    assert d.augment.factor == 19  # 1,000 + 19 × 1,000 = the 20,000 aimed for
    assert record["augment.factor"]["value"] == 19
    assert "1,000 train rows < 20,000" in record["augment.factor"]["reason"]
    assert record["training_rows"] == 20_000
    steps = d.epochs * -(-20_000 // d.batch_size)
    assert d.epochs == 3 and steps >= MIN_STEPS  # 20,000 rows: the default 3 epochs suffice
    assert record["epochs"] == {
        "value": 3.0,
        "reason": "3 epochs of 20,000 rows are 1,875 steps >= 1,500",
    }


def test_small_data_gets_tangs_rows_and_hidden_matches_where_the_student_allows_them():
    d, record = sized(DistillConfig(auto=True), 3000)
    assert d.augment.methods == ["tang"] and d.matches == ["hidden_mse"]
    assert record["augment.methods"]["value"] == ["tang"]
    assert record["matches"]["value"] == ["hidden_mse"]
    # a student reading its own tokenizer: no method writes the teacher's mask token, no matches
    d, record = sized(DistillConfig(auto=True), 3000, one_tokenizer=False)
    assert d.augment.factor == 6 and not {"mask", "tang"} & set(d.augment.methods)
    assert d.matches == [] and "teacher's tokenizer" in record["matches"]["reason"]
    d, _ = sized(DistillConfig(auto=True), 3000, matches_allowed=False)  # a token-vector student
    assert d.matches == [] and d.augment.methods == ["tang"]
    # keys the recipe set are kept, said so; no augmentation allowed: the methods are left alone
    mine = DistillConfig(auto=True, matches=["attention_kl"], augment={"methods": ["ngram"]})
    d, record = sized(mine, 3000)
    assert (d.matches, d.augment.methods) == (["attention_kl"], ["ngram"])
    assert record["matches"]["reason"] == record["augment.methods"]["reason"] == "set in the recipe"
    d, record = sized(DistillConfig(auto=True), 3000, augment_allowed=False)
    assert d.augment.methods == DistillConfig().augment.methods and "augment.methods" not in record
    assert sized(DistillConfig(auto=True), SMALL_DATA_ROWS)[0].matches == []  # large: unchanged
    # unlabelled text that reaches the target: no augmented rows, and neither key is chosen
    d, record = sized(DistillConfig(auto=True), 3000, unlabelled_rows=20_000)
    assert d.matches == [] and d.augment.methods == DistillConfig().augment.methods
    assert "matches" not in record and "augment.methods" not in record


def test_the_schedule_grows_when_the_rows_do_not_and_keys_the_recipe_set_are_kept():
    d, record = sized(DistillConfig(auto=True, augment={"factor": 0}), 1000)
    assert d.augment.factor == 0 and record["augment.factor"]["reason"] == "set in the recipe"
    assert d.epochs == 20  # 32 steps an epoch: 47 epochs wanted, capped at MAX_EPOCHS
    d, record = sized(DistillConfig(auto=True, augment={"factor": 0}, batch_size=64), 4000)
    assert d.epochs == 20 and "20 epochs are 1,260 steps" in record["epochs"]["reason"]
    d, record = sized(DistillConfig(auto=True, augment={"factor": 1}, batch_size=64), 5000)
    assert d.epochs == 10 and "10 epochs are 1,570 steps" in record["epochs"]["reason"]
    d, record = sized(DistillConfig(auto=True, epochs=1), 3000)
    assert (d.epochs, d.augment.factor) == (1, 6)
    assert record["epochs"]["reason"] == "set in the recipe"


def test_unlabelled_rows_count_toward_the_target_and_large_data_is_left_alone():
    assert sized(DistillConfig(auto=True), 3000)[0].augment.factor == 6
    assert sized(DistillConfig(auto=True), 3000, unlabelled_rows=9000)[0].augment.factor == 3
    d, record = sized(DistillConfig(auto=True), 3000, unlabelled_rows=20_000)
    assert d.augment.factor == 0 and "reach 20,000" in record["augment.factor"]["reason"]
    big = DistillConfig(auto=True)
    assert sized(big, SMALL_DATA_ROWS) == (big, sized(big, SMALL_DATA_ROWS)[1])
    assert "nothing changed" in sized(big, SMALL_DATA_ROWS)[1]["reason"]
    off = DistillConfig()
    assert sized(off, 100) == (off, {})  # without distill.auto nothing is sized
    d, record = sized(DistillConfig(auto=True), 1000, augment_allowed=False)
    assert d.augment.factor == 0 and "single_label" in record["augment.factor"]["reason"]
    assert d.epochs == 20  # the schedule is still sized


def test_the_cap_on_new_rows_sizes_the_schedule_too():
    d, record = sized(DistillConfig(auto=True, augment={"max_rows": 500}), 1000)
    assert d.augment.factor == 19 and record["training_rows"] == 1500


# ---------------------------------------------------------------- hashes


def distill_hash(recipe) -> str:
    stage = STAGES["distill"]
    inputs = {need: "0" * 64 for need in stage.needs}
    return stage_hash(recipe, stage, inputs, "d" * 64, stage_sources(recipe, "distill"))


def test_auto_and_unlabelled_enter_the_distill_hash_only_when_set_and_by_content(tmp_path):
    demo = ROOT / "recipes" / "demo.yaml"
    plain = distill_hash(load_recipe(demo))
    assert distill_hash(load_recipe(demo, ["distill.auto=false"])) == plain
    assert distill_hash(load_recipe(demo, ["distill.auto=true"])) != plain
    text = tmp_path / "more.txt"
    text.write_text("a fine film\na dull one\n")
    with_text = distill_hash(load_recipe(demo, [f"distill.unlabelled={text}"]))
    assert with_text != plain
    text.write_text("a fine film\na dull one\nand a third\n")  # same path, new content
    assert distill_hash(load_recipe(demo, [f"distill.unlabelled={text}"])) != with_text


def test_a_new_auto_policy_makes_auto_runs_stale_and_leaves_the_others_alone(monkeypatch):
    demo = ROOT / "recipes" / "demo.yaml"
    plain, auto = load_recipe(demo), load_recipe(demo, ["distill.auto=true"])
    before = distill_hash(auto), distill_hash(plain)
    monkeypatch.setattr(auto_defaults, "POLICY", "next")  # auto now chooses otherwise
    assert distill_hash(auto) != before[0]  # finished auto runs rerun on the new choices
    assert distill_hash(plain) == before[1]


# ---------------------------------------------------------------- reading, and validate


def test_reads_txt_jsonl_csv_and_a_folder_of_them(tmp_path):
    (tmp_path / "a.txt").write_text("first text\n\n  second text \n")
    (tmp_path / "b.jsonl").write_text(
        json.dumps({"text": "third", "id": 1}) + "\n\n" + json.dumps({"text": "fourth"}) + "\n"
    )
    (tmp_path / "c.csv").write_text('id,text\n1,"fifth, with a comma"\n2,sixth\n')
    (tmp_path / "notes.md").write_text("not read: not a known suffix")
    assert read_unlabelled(tmp_path, ["text"]) == [
        "first text",
        "second text",
        "third",
        "fourth",
        "fifth, with a comma",
        "sixth",
    ]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"q": "is it?", "a": "it is", "other": 3}) + "\n")
    assert read_unlabelled(pairs, ["q", "a"]) == [("is it?", "it is")]


@pytest.mark.parametrize(
    ("name", "content", "columns", "message"),
    [
        ("missing.txt", None, ["text"], "no such file or folder; check the path"),
        ("empty.txt", "\n  \n", ["text"], "no text in it; fill it"),
        (
            "wrong.jsonl",
            '{"sentence": "a fine film"}\n',
            ["text"],
            "line 1 has no column 'text' (it has 'sentence'); the unlabelled rows need the "
            "task's text column(s) ['text']: rename the column",
        ),
        ("wrong.csv", "sentence\na fine film\n", ["text"], "line 2 has no column 'text'"),
        ("broken.jsonl", '{"text": "ok"}\n{"text": \n', ["text"], "line 2 is not valid JSON"),
        ("pairs.txt", "one\n", ["q", "a"], "a .txt holds one text per line"),
        ("words.docx", "x", ["text"], "unsupported file type '.docx'"),
        ("numbers.jsonl", '{"text": 3}\n', ["text"], "column 'text' is not text"),
    ],
)
def test_bad_unlabelled_text_is_one_clear_error(tmp_path, name, content, columns, message):
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match="distill.unlabelled") as error:
        read_unlabelled(path, columns)
    assert message in str(error.value)


def test_validate_reads_the_unlabelled_text(tmp_path, capsys):
    recipe = write_recipe(tmp_path / "r.yaml", tiny_recipe(distill={"unlabelled": "more.jsonl"}))
    assert main(["validate", str(recipe)]) == 2
    said = capsys.readouterr().err
    assert said.startswith("error: distill.unlabelled ") and "more.jsonl: no such file" in said
    (tmp_path / "more.jsonl").write_text('{"review": "a fine film"}\n')
    assert main(["validate", str(recipe)]) == 2
    assert "no column 'text' (it has 'review')" in capsys.readouterr().err
    (tmp_path / "more.jsonl").write_text('{"text": "a fine film"}\n')
    assert main(["validate", str(recipe)]) == 0  # the path resolved against the recipe's folder


# ---------------------------------------------------------------- init


def test_init_turns_auto_on_and_says_what_it_will_choose(tmp_path):
    from tests.conftest import reviews_csv

    data = reviews_csv(tmp_path / "reviews.csv", rows=1000)
    out = tmp_path / "r.yaml"
    assert main(["init", str(data), "--teacher", "bert-base-uncased", "-o", str(out)]) == 0
    text = out.read_text()
    raw = yaml.safe_load(text)
    assert raw["distill"] == {"auto": True}  # the schedule is left to auto: no epochs written
    line = next(x for x in text.splitlines() if x.strip().startswith("auto:"))
    assert "train rows < 20,000" in line and "augmented rows per row" in line
    rows = 1000 - round(1000 * raw["data"]["eval_fraction"])
    factor = sized(DistillConfig(auto=True), rows)[0].augment.factor
    assert f"adds {factor:g} teacher-labelled" in line
    assert load_recipe(out).distill.auto is True


# ---------------------------------------------------------------- the stage


ROWS_200 = {"source": "synthetic:sentiment", "synthetic_rows": 200, "max_length": 24}


@pytest.mark.slow  # a few teacher steps, then two short distillations on 530 rows
def test_stage_sizes_unset_keys_and_learns_from_the_unlabelled_text(
    tmp_path, teacher_for, monkeypatch
):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    # the rule as written, at a test's size: 530 rows at batch 64 are 9 steps an epoch, so the
    # default 3 epochs (27 steps) fall short of 30 and auto asks for 4
    batch = 64
    monkeypatch.setattr(auto_defaults, "MIN_STEPS", 30)
    texts = [f"the {w} film was {v}" for w in ("new", "old", "long") for v in ("great", "dull")]
    (tmp_path / "more.txt").write_text("\n".join(texts * 5) + "\n")  # 30 rows
    distill = {
        "batch_size": batch,
        "auto": True,
        "unlabelled": "more.txt",
        "augment": {"max_rows": 300},
    }
    few_steps = {"epochs": 0.5}  # the teacher's quality does not matter here
    raw = tiny_recipe(data=ROWS_200, teacher=few_steps, distill=distill)
    del raw["distill"]["epochs"]  # left to auto
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", raw))
    teacher = teacher_for(data=ROWS_200, teacher=few_steps)
    runs = seed_run(tmp_path / "runs", teacher, "teacher")
    m = run_pipeline(recipe, runs, "distill", echo=lambda _: None)["distill"]

    auto, training = m["auto_defaults"], m["training"]
    train_rows = auto["train_rows"]
    factor = auto["augment.factor"]["value"]
    assert factor == min(20, -(-(20_000 - train_rows - 30) // train_rows))
    assert auto["unlabelled_rows"] == m["unlabelled"]["rows"] == training["unlabelled_rows"] == 30
    assert m["augment"]["rows"] == training["augmented_rows"] == 300  # max_rows, set, is kept
    assert m["augment"]["config"]["factor"] == factor
    assert m["augment"]["config"]["methods"] == auto["augment.methods"]["value"] == ["tang"]
    assert m["loss"]["matches"] == auto["matches"]["value"] == ["hidden_mse"]  # trained with it
    assert training["train_rows"] == train_rows + 30 + 300 == auto["training_rows"]
    per_epoch = -(-training["train_rows"] // batch)
    epochs = auto["epochs"]["value"]
    assert epochs == max(3, -(-30 // per_epoch)) and epochs > 3  # 3 epochs fell short of 30 steps
    assert training["global_step"] == epochs * per_epoch  # the Trainer ran the sized schedule

    # the unlabelled rows' logits are the teacher's on those texts
    folder = runs / "tiny" / m["unlabelled"]["path"].split("/tiny/")[-1]
    teacher_dir = runs / "tiny" / "teacher"
    teacher = AutoModelForSequenceClassification.from_pretrained(teacher_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    with torch.no_grad():
        enc = tokenizer(texts, truncation=True, max_length=24, padding=True, return_tensors="pt")
        expected = teacher(**enc).logits.numpy()
    np.testing.assert_allclose(np.load(folder / "logits-00000.npy")[:6], expected, atol=1e-4)

    # new text at the same path: the stage is stale and labels it again
    (tmp_path / "more.txt").write_text("\n".join(texts * 6) + "\n")
    again = run_pipeline(recipe, runs, "distill", echo=lambda _: None)["distill"]
    assert (
        again["unlabelled"]["rows"] == 36 and again["unlabelled"]["path"] != m["unlabelled"]["path"]
    )
