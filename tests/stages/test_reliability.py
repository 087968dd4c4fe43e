"""Issue #19, one test per item: runs cannot contaminate each other, inputs are what they say,
nothing broken is recorded as done. Each test failed before its fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError, DataError, DistilleryError
from pipelines.run.runner import run_pipeline
from tests.conftest import ROOT, seed_run, tiny_bert, tiny_recipe, write_jsonl, write_recipe

WORDS = ["good", "bad", "movie", "film", "great", "awful", "the", "a", "plot", "was", "not"]
QUIET = {"echo": lambda _: None}


def _recipe(tmp_path, name="r.yaml", overrides=(), **sections):
    return load_recipe(write_recipe(tmp_path / name, tiny_recipe(**sections)), list(overrides))


@pytest.fixture(scope="module")
def trained(tmp_path_factory, teacher_for):
    """A finished teacher and distill stage of the tiny recipe (1 epoch each), copied per test."""
    tmp = tmp_path_factory.mktemp("reliability")
    seed_run(tmp / "runs", teacher_for(teacher={"epochs": 1}), "teacher")  # one per session
    recipe = _recipe(tmp, teacher={"epochs": 1}, distill={"epochs": 0.5, "batch_size": 16})
    run_pipeline(recipe, tmp / "runs", target="distill", **QUIET)
    return tmp / "runs"


def _copy_runs(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "runs")
    return tmp_path / "runs"


# ---------------------------------------------------------------- 1. one run per run folder


def test_1_a_second_run_of_one_name_is_refused_and_names_the_holder(tmp_path):
    from pipelines.core.lock import RunLock

    recipe = _recipe(tmp_path)
    runs = tmp_path / "runs"
    with RunLock(runs / "tiny"), pytest.raises(DistilleryError) as caught:
        run_pipeline(recipe, runs, target="teacher", **QUIET)
    assert f"another distillery run is using this run folder (pid {os.getpid()} on" in str(
        caught.value
    )
    assert not (runs / "tiny" / "teacher").exists()  # it touched nothing


def test_1_a_killed_holder_leaves_no_stale_lock(tmp_path):
    from pipelines.core.lock import RunLock

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from pipelines.core.lock import RunLock\n"
            "with RunLock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(600)",
            str(tmp_path / "run"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DistilleryError, match=f"pid {holder.pid}"), RunLock(tmp_path / "run"):
            pass
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
        with RunLock(tmp_path / "run"):  # the OS released the dead holder's lock
            pass
    finally:
        holder.kill()


# ---------------------------------------------------------------- 2. inputs are what they say


def test_2_new_teacher_weights_at_the_same_path_rerun_the_teacher_and_its_logits(tmp_path):
    folder = tmp_path / "pretrained"
    model, _ = tiny_bert(folder, WORDS, seed=0)
    model.save_pretrained(folder)
    teacher = {"init": "pretrained", "model": str(folder), "finetune": False}
    recipe = _recipe(tmp_path, teacher=teacher, distill={"epochs": 0.25, "batch_size": 16})
    runs = tmp_path / "runs"
    first = run_pipeline(recipe, runs, target="distill", **QUIET)
    assert first["teacher"]["sources"]["teacher.model"]
    model, _ = tiny_bert(folder, WORDS, seed=1)  # new weights, same path, same config
    model.save_pretrained(folder)
    lines = []
    second = run_pipeline(recipe, runs, target="distill", echo=lines.append)
    assert not any(line.startswith("[teacher] skipped") for line in lines)
    assert second["teacher"]["hash"] != first["teacher"]["hash"]
    assert second["teacher"]["sources"] != first["teacher"]["sources"]
    assert not any(line.startswith("[distill] skipped") for line in lines)  # new inputs
    old, new = first["distill"]["training"]["cache"], second["distill"]["training"]["cache"]
    assert new["reused"] is False and new["path"] != old["path"]  # the old logits are not served


def test_2_an_edit_keeping_size_and_mtime_gives_the_new_rows(tmp_path):
    from pipelines.data.loading import load_task_data

    rows = [{"text": f"row {i} good", "label": i % 2} for i in range(40)]
    data = tmp_path / "data"
    write_jsonl(data / "train.jsonl", rows)
    write_jsonl(data / "validation.jsonl", rows[:8])
    recipe = _recipe(tmp_path, data={"source": str(data), "max_length": 16})
    assert load_task_data(recipe).train["labels"][0] == 0
    train = data / "train.jsonl"
    stat = train.stat()
    flipped = [{**r, "label": 1 - r["label"]} for r in rows]  # same bytes count, new labels
    write_jsonl(train, flipped)
    os.utime(train, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert train.stat().st_size == stat.st_size and train.stat().st_mtime_ns == stat.st_mtime_ns
    assert load_task_data(recipe).train["labels"][:4] == [1, 0, 1, 0]


# ---------------------------------------------------------------- 3. finite values only


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("distill.temperature=.nan", r"distill\.temperature: nan is not a finite number"),
        ("distill.weights.kd=.nan", r"distill\.weights\.kd: nan is not a finite number"),
        ("distill.weights.kd=-1", r"distill\.weights\.kd: -1\.0 is out of range"),
        ("teacher.learning_rate=.nan", r"teacher\.learning_rate: nan is not a finite number"),
        ("distill.learning_rate=.inf", r"distill\.learning_rate: inf is not a finite number"),
    ],
)
def test_3_non_finite_or_negative_settings_are_refused(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        _recipe(tmp_path, overrides=[override])


def test_3_a_non_finite_distillation_loss_stops_training_naming_step_and_term(trained, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TrainingArguments

    from distill.api import distill
    from distill.combined import LossSpec
    from distill.student import from_teacher_layers
    from distill.trainer import NonFiniteLossError
    from pipelines.data.loading import load_task_data, tokenize

    folder = trained / "tiny" / "teacher"
    teacher = AutoModelForSequenceClassification.from_pretrained(folder)
    tok = AutoTokenizer.from_pretrained(folder)
    recipe = _recipe(tmp_path)
    train = tokenize(load_task_data(recipe).train, tok, recipe)
    logits = np.zeros((len(train), 2), dtype=np.float32)
    logits[:] = np.nan  # a teacher whose logits are NaN
    args = TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=3,
        per_device_train_batch_size=16,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        remove_unused_columns=False,
        disable_tqdm=True,
    )
    with pytest.raises(
        NonFiniteLossError, match=r"step 1: the distillation loss is not finite \(kd=nan"
    ):
        distill(
            teacher,
            from_teacher_layers(teacher, [1]),
            train,
            tok,
            LossSpec(),
            args,
            cached_logits=logits,
        )


def test_3_a_diverging_teacher_stops_at_the_step_and_records_nothing(tmp_path, monkeypatch):
    from pipelines.teacher.checked_trainer import CheckedTrainer

    real = CheckedTrainer.compute_loss

    def nan_after_two(self, model, inputs, *args, **kwargs):
        loss = real(self, model, inputs, *args, **kwargs)
        return loss * float("nan") if self.state.global_step >= 2 else loss

    monkeypatch.setattr(CheckedTrainer, "compute_loss", nan_after_two)
    recipe = _recipe(tmp_path, teacher={"epochs": 1})
    with pytest.raises(DistilleryError, match=r"step 3: the teacher's training loss is nan"):
        run_pipeline(recipe, tmp_path / "runs", target="teacher", **QUIET)
    assert not (tmp_path / "runs" / "tiny" / "teacher" / "manifest.json").exists()


# ---------------------------------------------------------------- 4. finished work is kept


def test_4_a_failed_attempt_under_a_new_config_keeps_the_finished_stage(
    trained, tmp_path, monkeypatch
):
    runs = _copy_runs(trained, tmp_path)
    recipe = _recipe(tmp_path, teacher={"epochs": 1}, distill={"epochs": 0.5, "batch_size": 16})
    folder = runs / "tiny" / "distill"
    weights = (folder / "model.safetensors").read_bytes()
    typo = _recipe(
        tmp_path,
        "typo.yaml",
        teacher={"epochs": 1},
        distill={"epochs": 0.5, "batch_size": 16, "learning_rate": 0.9},
    )
    import pipelines.stages.distill as stage

    def fail_after_writing(ctx):
        (ctx.out / "model.safetensors").write_bytes(b"half a file")
        raise RuntimeError("the attempt died")

    monkeypatch.setattr(stage, "main", fail_after_writing)
    with pytest.raises(RuntimeError, match="the attempt died"):
        run_pipeline(typo, runs, target="distill", **QUIET)
    monkeypatch.undo()
    lines = []
    done = run_pipeline(recipe, runs, target="distill", echo=lines.append)
    assert any(
        line.startswith("[distill] restored the finished run of this config") for line in lines
    )
    assert any(line.startswith("[distill] skipped") for line in lines)
    assert (folder / "model.safetensors").read_bytes() == weights
    assert done["distill"]["hash"] == json.loads((folder / "manifest.json").read_text())["hash"]


# ---------------------------------------------------------------- 5. damaged checkpoint or cache


def test_5_a_damaged_checkpoint_is_discarded_not_resumed(trained, tmp_path, capsys):
    from pipelines.train.checkpoints import last_checkpoint

    good = tmp_path / "checkpoints" / "checkpoint-10"
    bad = tmp_path / "checkpoints" / "checkpoint-20"
    for ckpt in (good, bad):
        ckpt.mkdir(parents=True)
        shutil.copy(trained / "tiny" / "teacher" / "model.safetensors", ckpt / "model.safetensors")
        (ckpt / "trainer_state.json").write_text("{}")
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])  # cut short
    assert last_checkpoint(tmp_path / "checkpoints") == str(good)
    assert not bad.exists()
    assert "checkpoint-20 is damaged (model.safetensors:" in capsys.readouterr().out


def test_5_a_damaged_logit_cache_is_recomputed(trained, tmp_path):
    runs = _copy_runs(trained, tmp_path)
    recipe = _recipe(tmp_path, teacher={"epochs": 1}, distill={"epochs": 0.5, "batch_size": 16})
    cache = json.loads((runs / "tiny" / "distill" / "manifest.json").read_text())["training"][
        "cache"
    ]
    path = runs / "tiny" / "cache" / os.path.basename(cache["path"])
    path.write_bytes(b"\x93NUMPY garbage")
    done = run_pipeline(recipe, runs, target="distill", force=True, **QUIET)
    assert done["distill"]["training"]["cache"]["reused"] is False
    assert np.load(path).shape == (800, 2)


# ---------------------------------------------------------------- 6. disk full


def test_6_disk_full_is_a_storage_error_and_partial_files_are_removed(
    trained, tmp_path, monkeypatch
):
    runs = _copy_runs(trained, tmp_path)
    recipe = _recipe(tmp_path, teacher={"epochs": 1}, distill={"epochs": 0.5, "batch_size": 16})
    import transformers

    def full_disk(self, save_directory, *args, **kwargs):  # what torch raises on a full disk
        (save_directory / "model.safetensors").write_bytes(b"x" * 4096)
        monkeypatch.setattr(  # from here on the disk is full
            shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10 << 20, 10 << 20, 0)
        )
        raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 4096 vs 0")

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", full_disk)
    with pytest.raises(DistilleryError) as caught:
        run_pipeline(recipe, runs, target="distill", force=True, **QUIET)
    message = str(caught.value)
    assert "cannot write" in message and "partial files of this attempt were removed" in message
    assert "Traceback" not in message
    assert not (runs / "tiny" / "distill" / "model.safetensors").exists()
    assert (runs / "tiny" / ".distill.previous" / "manifest.json").is_file()  # finished run kept


# ---------------------------------------------------------------- 7. trusted remote code


MODELING = '''
from transformers import BertForSequenceClassification


class CustomBert(BertForSequenceClassification):
    """A teacher that ships its own code (it changes nothing)."""
'''


def test_7_a_trusted_remote_code_teacher_can_be_distilled(tmp_path):
    folder = tmp_path / "custom"
    model, _ = tiny_bert(folder, WORDS)
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_custom.CustomBert"}
    config["architectures"] = ["CustomBert"]
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_custom.py").write_text(MODELING)
    recipe = _recipe(
        tmp_path,
        teacher={"init": "pretrained", "model": str(folder), "finetune": True, "epochs": 0.5},
        distill={"epochs": 0.25, "batch_size": 16},
        security={"trust_remote_code": True},
    )
    done = run_pipeline(recipe, tmp_path / "runs", target="distill", **QUIET)
    assert done["distill"]["metrics"]["accuracy"] > 0
    assert (tmp_path / "runs" / "tiny" / "teacher" / "modeling_custom.py").is_file()


# ---------------------------------------------------------------- 8. predict.py and bad lines


@pytest.mark.slow  # needs the session's run to the bundle (export, quantize, bench, report)
def test_8_predict_reports_an_undecodable_line_and_keeps_the_rest(tmp_path, tiny_bundle):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle[0] / "runs" / "tiny" / "bundle", bundle)  # the smallest bundle
    rows = tmp_path / "rows.txt"
    rows.write_bytes(b"the film was good\nthe plot was caf\xe9 bad\nthe movie was awful\n")
    done = subprocess.run(
        [sys.executable, str(bundle / "predict.py"), "--input", str(rows)],
        capture_output=True,
        text=True,
    )
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1
    assert [o["line"] for o in out] == [1, 2, 3]
    assert "label" in out[0] and "label" in out[2]
    assert out[1] == {"line": 2, "error": "not valid UTF-8 (byte 0xe9 at column 17)"}
    assert "line 2: not valid UTF-8" in done.stderr and "Traceback" not in done.stderr
    stop = subprocess.run(
        [sys.executable, str(bundle / "predict.py"), "--input", str(rows), "--on-error", "stop"],
        capture_output=True,
        text=True,
    )
    assert stop.returncode == 2
    assert [json.loads(line)["line"] for line in stop.stdout.splitlines()] == [1]


# ---------------------------------------------------------------- 9. bad data, named precisely


def _data(tmp_path, train_rows, suffix="jsonl"):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    good = [{"text": "good film", "label": 1}, {"text": "bad film", "label": 0}] * 4
    write_jsonl(data / "validation.jsonl", good)
    return data, data / f"train.{suffix}"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"text": None, "label": 1}, r"train\.jsonl line 3: text column 'text' holds nothing"),
        ({"text": 7, "label": 1}, r"train\.jsonl line 3: text column 'text' holds 7 \(int\)"),
    ],
)
def test_9_null_or_number_text_names_the_line(tmp_path, row, message):
    from pipelines.data.loading import load_task_data

    data, train = _data(tmp_path, [])
    write_jsonl(train, [{"text": "a", "label": 0}, {"text": "b", "label": 1}, row])
    with pytest.raises(DataError, match=message):
        load_task_data(_recipe(tmp_path, data={"source": str(data)}))


def test_9_blank_csv_label_names_its_line(tmp_path):
    from pipelines.data.loading import load_task_data

    data, train = _data(tmp_path, [], "csv")
    train.write_text("text,label\nfine,0\nalso fine,1\nno label,\n")
    with pytest.raises(DataError, match=r"train\.csv line 4: label \(empty\) is not valid"):
        load_task_data(_recipe(tmp_path, data={"source": str(data)}))


def test_9_non_utf8_data_and_recipe_name_the_line(tmp_path):
    from pipelines.data.loading import load_task_data

    data, train = _data(tmp_path, [])
    train.write_bytes(b'{"text": "ok", "label": 0}\n{"text": "caf\xe9", "label": 1}\n')
    with pytest.raises(DataError, match=r"train\.jsonl: line 2 is not UTF-8 \(byte 0xe9"):
        load_task_data(_recipe(tmp_path, data={"source": str(data)}))
    recipe = tmp_path / "latin1.yaml"
    recipe.write_bytes(b"name: caf\xe9\n")
    with pytest.raises(ConfigError, match=r"line 1 is not UTF-8 text \(byte 0xe9\)"):
        load_recipe(recipe)


def test_9_a_tokenizer_larger_than_the_embedding_table_is_refused(tmp_path):
    small = tmp_path / "small"
    model, _ = tiny_bert(small, WORDS[:4])
    model.save_pretrained(small)
    big = tmp_path / "big"
    tiny_bert(big, [f"w{i}" for i in range(60)])  # a 65-token vocabulary
    recipe = _recipe(
        tmp_path,
        teacher={
            "init": "pretrained",
            "model": str(small),
            "tokenizer": str(big),
            "finetune": False,
        },
    )
    with pytest.raises(
        DistilleryError,
        match=r"the tokenizer has 65 tokens but the model's embedding table has 9 rows",
    ):
        run_pipeline(recipe, tmp_path / "runs", target="teacher", **QUIET)


def test_9_a_seed_beyond_32_bits_is_refused(tmp_path):
    with pytest.raises(
        ConfigError, match=r"seed: 4294967296 is out of range; allowed values: \[0, 4294967295\]"
    ):
        _recipe(tmp_path, overrides=["seed=4294967296"])


# ---------------------------------------------------------------- 10. validate catches it all


def test_10_duplicate_yaml_keys_are_refused(tmp_path):
    path = tmp_path / "dup.yaml"
    path.write_text(write_recipe(tmp_path / "base.yaml", tiny_recipe()).read_text() + "seed: 3\n")
    with pytest.raises(
        ConfigError, match=r"key 'seed' appears twice in one mapping \(first on line"
    ):
        load_recipe(path)


def _validate(path, *sets):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "validate",
            str(path),
            *(["--set", *sets] if sets else []),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_10_validate_refuses_an_unknown_loss_out_of_range_layers_and_a_gpt2_teacher(tmp_path):
    path = write_recipe(tmp_path / "r.yaml", tiny_recipe())
    done = _validate(path, "distill.kd_loss=foo")
    assert (
        done.returncode == 2
        and "distill.kd_loss: 'foo' is not allowed. Allowed values: kl, mse, soft_ce" in done.stderr
    )
    done = _validate(path, "student.layers=[0,9]")
    assert (
        done.returncode == 2
        and "student.layers: [9] out of range; the teacher has 2 layers" in done.stderr
    )
    from transformers import GPT2Config, GPT2ForSequenceClassification

    gpt2 = tmp_path / "gpt2"
    GPT2ForSequenceClassification(
        GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)
    ).save_pretrained(gpt2)
    done = _validate(path, "teacher.init=pretrained", f"teacher.model={gpt2}")
    assert done.returncode == 2
    assert (
        "architecture GPT2ForSequenceClassification (model_type 'gpt2') is not supported"
        in done.stderr
    )
    assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- 11. resume and skipped runs


def test_11_train_loss_counts_the_steps_before_a_resume(tmp_path):
    from pipelines.train.checkpoints import loss_sum_before, train_loss_across_resume

    ckpt = tmp_path / "checkpoint-30"
    ckpt.mkdir()
    history = [{"loss": 2.0, "step": 1}, {"loss": 1.0, "step": 11}, {"loss": 0.5, "step": 21}]
    (ckpt / "trainer_state.json").write_text(
        json.dumps({"global_step": 30, "log_history": history})
    )
    # Steps 1..30 before the resume: 2.0 + 10·1.0 + 10·0.5 + 9·0.5 (after the last log) = 21.5.
    # The Trainer's value after resuming for 20 more steps at a mean of 0.25: 5.0 / 50 = 0.1.
    before = loss_sum_before(str(ckpt))
    assert before == pytest.approx(21.5)
    assert train_loss_across_resume(0.1, 50, before) == pytest.approx((21.5 + 5.0) / 50)
    assert train_loss_across_resume(0.1, 50, loss_sum_before(None)) == 0.1  # no resume


def test_11_a_fully_skipped_run_still_checks_the_artifacts(trained, tmp_path):
    runs = _copy_runs(trained, tmp_path)
    recipe = _recipe(tmp_path, teacher={"epochs": 1}, distill={"epochs": 0.5, "batch_size": 16})
    weights = runs / "tiny" / "distill" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-10])  # damaged after the stage finished
    lines = []
    run_pipeline(recipe, runs, target="distill", echo=lines.append)
    assert lines[0].startswith("[teacher] skipped")
    assert any("[distill] its files changed since it finished" in line for line in lines)
    assert any(line.startswith("[distill] done") for line in lines)
    from safetensors.torch import load_file

    assert all(torch.isfinite(t).all() for t in load_file(weights).values())
