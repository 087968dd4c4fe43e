"""Progress of the long steps (pipelines.core.progress): console lines with an ETA, shown only
when asked, one log line per step; the Trainer's own bars replaced by it; each stage's time and
peak memory (pipelines.core.usage) in its manifest and the closing summary."""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.core import progress
from pipelines.core.usage import StageUsage, process_peak_rss
from pipelines.run.summary import closing_summary


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def console():
    """A stream progress is shown on for the test, hidden again after."""
    out = io.StringIO()
    progress.show(out)
    yield out
    progress.hide()


def test_plain_lines_start_late_come_seldom_and_carry_an_eta(console, caplog):
    now = [0.0]
    with progress.within("distill"):
        step = progress.Step("teacher logits", 100, "rows", clock=lambda: now[0])
    for second in (1, 2):  # under QUIET_FOR: a short step says nothing
        now[0] = second
        step.advance(10)
    assert console.getvalue() == ""
    now[0] = 4
    step.advance(10)  # 30 rows in 4 s: 70 left at that rate
    now[0] = 10
    step.advance(10)  # within PLAIN_EVERY of the last line: nothing
    now[0] = 40
    step.note("chunk 3")
    step.advance(10)
    with caplog.at_level(logging.INFO, logger="distillery"):
        step.close()
    assert console.getvalue().splitlines() == [
        "[distill] teacher logits: 30/100 rows (30%), 4 s, about 9 s left",
        "[distill] teacher logits: 50/100 rows (50%), 40 s, about 40 s left [chunk 3]",
        "[distill] teacher logits: 50 rows in 40 s",
    ]
    (record,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert record.startswith("step teacher logits: done 50/100 rows in 40.0 s (")
    assert record.endswith(", 1.2 rows/s)")


def test_a_long_step_of_one_item_still_leaves_its_closing_line(console):
    now = [0.0]
    step = progress.Step("quantize student", 1, "methods", clock=lambda: now[0])
    now[0] = 12
    step.advance()  # done at once: no progress line, the closing one says it all
    step.close()
    assert console.getvalue().splitlines() == ["quantize student: 1 methods in 12 s"]


def test_eta_counts_this_sessions_rate_after_a_resume():
    now = [0.0]
    step = progress.Step("teacher logits", 100, "rows", initial=60, clock=lambda: now[0])
    assert step.eta() is None  # nothing done yet in this session
    now[0] = 10
    step.advance(20)  # 20 rows in 10 s, 20 left
    assert step.eta() == pytest.approx(10.0)


def test_a_terminal_gets_a_redrawn_bar_with_rate_and_eta(monkeypatch):
    monkeypatch.setattr(progress, "QUIET_FOR", 0)
    terminal = Terminal()
    progress.show(terminal)
    try:
        with progress.within("bench"), progress.step("cells", 4, "cells") as step:
            for _ in range(4):
                step.advance()
    finally:
        progress.hide()
    text = terminal.getvalue()
    assert "[bench] cells" in text and "4/4" in text
    assert "\r" in text and "<" in text and "cells/s" in text  # tqdm: redrawn, ETA, rate


def test_hidden_unless_shown_but_the_log_line_is_written(capsys, caplog, monkeypatch):
    monkeypatch.setattr(progress, "QUIET_FOR", 0)

    def interrupted() -> None:
        with progress.step("augment", 10, "rows") as step:
            step.advance(3)
            raise RuntimeError("interrupted")

    with caplog.at_level(logging.INFO, logger="distillery"), pytest.raises(RuntimeError):
        interrupted()
    out, err = capsys.readouterr()
    assert out == err == ""
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("step augment: stopped after 3/10 rows in ") for line in lines)


def test_training_shows_our_line_instead_of_the_trainers_bar_and_dicts(
    tmp_path, capsys, caplog, monkeypatch
):
    from datasets import Dataset
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    from pipelines.train.callbacks import progress_callback, show_progress
    from tests.conftest import tiny_bert

    model, tokenizer = tiny_bert(tmp_path / "tok", ["good", "bad"])
    rows = Dataset.from_dict({"text": ["good", "bad"] * 8, "labels": [1, 0] * 8})
    rows = rows.map(lambda r: tokenizer(r["text"]), remove_columns=["text"])
    args = TrainingArguments(
        str(tmp_path / "out"), max_steps=4, per_device_train_batch_size=4, logging_steps=1,
        report_to="none", use_cpu=True, save_strategy="no", disable_tqdm=False,
    )  # fmt: skip
    trainer = Trainer(
        model=model, args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tokenizer)
    )
    shown = progress_callback("training")
    show_progress(trainer, shown)
    kinds = {type(c) for c in trainer.callback_handler.callbacks}
    assert ProgressCallback not in kinds and PrinterCallback not in kinds
    monkeypatch.setattr(progress, "QUIET_FOR", 0)
    terminal = Terminal()
    progress.show(terminal)
    try:
        with caplog.at_level(logging.INFO, logger="distillery"):
            trainer.train()
    finally:
        progress.hide()
    out, err = capsys.readouterr()
    assert "{'loss'" not in out + err and "it/s" not in err  # the Trainer printed nothing
    assert "training" in terminal.getvalue() and "4/4" in terminal.getvalue()
    assert "loss " in terminal.getvalue()  # the last logged loss as the line's note
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("step training: done 4/4 steps in ") for line in lines)


def test_a_stage_records_its_own_peak_not_the_processes(tmp_path):
    first = StageUsage()
    if first.scope != "stage":
        pytest.skip("this kernel does not reset the high-water mark (/proc/self/clear_refs)")
    big = np.ones(300 * 2**20 // 8)  # 300 MiB, every page written
    heavy = first.record()
    del big
    light = StageUsage().record()
    assert heavy["peak_rss_bytes"] - light["peak_rss_bytes"] > 250 * 2**20
    assert light["scope"] == "stage" and light["children_rss_bytes"] is None
    worker = StageUsage()
    subprocess.run([sys.executable, "-c", "x = b'x' * (50 * 2**20)"], check=True)
    # a small worker inherits this process's mark (fork, then exec): not reported as its own
    assert worker.record()["children_rss_bytes"] is None
    # above this process and above any earlier child of it (under xdist a worker has run other
    # tests' subprocesses: RUSAGE_CHILDREN keeps their peak, which StageUsage reports only when
    # exceeded)
    need = max(process_peak_rss(), worker.children_before) + 200 * 2**20
    subprocess.run([sys.executable, "-c", f"x = b'x' * {need}"], check=True)
    assert worker.record()["children_rss_bytes"] > need  # a worker above us: its peak, apart


def test_summary_lists_each_stages_time_and_peak():
    manifests = {
        "teacher": {"seconds": 125.4, "usage": {"peak_rss_bytes": 612 * 2**20}},
        "bench": {
            "seconds": 113,
            "usage": {"peak_rss_bytes": 400 * 2**20, "children_rss_bytes": 3 * 2**30 // 2},
        },
        "report": {"seconds": 2.0},  # written before usage was recorded
    }
    lines = closing_summary(manifests, Path("runs/x"), 240.6)
    assert lines[1:5] == [
        "time and peak memory by stage:",
        "  teacher   2 min 05 s  peak 612 MiB",
        "  bench     1 min 53 s  peak 400 MiB (workers 1.5 GiB)",
        "  report           2 s",
    ]
    assert lines[5] == "done in 4 min 01 s: runs/x"


def test_a_run_records_time_peak_memory_and_step_lines_without_changing_its_hash(
    tiny_teacher, tmp_path
):
    from pipelines.core.config import load_recipe
    from pipelines.run.runner import run_pipeline

    tmp, manifests, _ = tiny_teacher
    manifest = manifests["teacher"]
    usage = manifest["usage"]
    assert usage["seconds"] == manifest["seconds"] > 0
    assert usage["peak_rss_bytes"] > 100 * 2**20  # torch and a model were loaded
    assert usage["scope"] in ("stage", "process")
    folder = tmp / "runs" / "tiny" / "teacher"
    log = (folder / "log.txt").read_text()
    assert "step training: done " in log and " steps in " in log
    assert "step evaluate teacher: done " in log
    assert "finished in" in log and "peak memory" in log
    # what was recorded is not hashed: the same recipe finds the stage done
    shutil.copytree(folder, tmp_path / "runs" / "tiny" / "teacher")
    lines = []
    again = run_pipeline(
        load_recipe(tmp / "recipe.yaml"), tmp_path / "runs", target="teacher", echo=lines.append
    )
    assert lines[0].startswith("[teacher] skipped")
    assert again["teacher"]["usage"] == json.loads((folder / "manifest.json").read_text())["usage"]


BARS_SCRIPT = """
import sys
from pipelines.core import quiet

quiet.install(verbose=sys.argv[1] == "verbose")
import datasets

from pipelines.core.config import load_recipe
from pipelines.data.loading import load_task_data
from tests.conftest import tiny_recipe, write_recipe

load_task_data(load_recipe(write_recipe(__import__("pathlib").Path(sys.argv[2]), tiny_recipe())))
datasets.Dataset.from_dict({"a": list(range(10))}).map(lambda r: r, desc="tokenize")
"""


@pytest.mark.slow
def test_library_bars_are_hidden_unless_verbose(tmp_path):
    import os

    script = tmp_path / "bars.py"
    script.write_text(BARS_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "HF_DATASETS_DISABLE_PROGRESS_BARS"}
    root = Path(__file__).resolve().parents[2]
    shown = {}
    for mode in ("quiet", "verbose"):
        done = subprocess.run(
            [sys.executable, str(script), mode, str(tmp_path / "recipe.yaml")],
            capture_output=True,
            text=True,
            timeout=300,
            env={**env, "PYTHONPATH": str(root)},
            cwd=root,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        shown[mode] = done.stderr
    assert "tokenize" in shown["verbose"]  # the script really draws a bar...
    assert shown["quiet"] == ""  # ...and quiet hides it, with no complaint about the switch


def test_both_of_onnxruntimes_preprocessing_hints_are_hidden(caplog):
    from pipelines.core import quiet

    quiet.install()
    try:
        with caplog.at_level(logging.WARNING):
            for hint in (  # quantize_dynamic's and quantize_static's wording (ORT 1.2x)
                "Please consider to run pre-processing before quantization. Refer to example: x",
                "Please consider pre-processing before quantization. See https://github.com/x",
            ):
                logging.getLogger().warning(hint)
            logging.getLogger().warning("ANOTHER ROOT WARNING")
    finally:
        quiet.uninstall()
    assert "ANOTHER ROOT WARNING" in caplog.text and "pre-processing" not in caplog.text
