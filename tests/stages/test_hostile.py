"""Issue #31: hostile inputs get one line naming the culprit and the fix, never a traceback, a
hang or gigabytes; nothing empty is recorded as done; the README's reliability promises hold.
The cases that need a built bundle are in tests/test_hostile_bundle.py."""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines import cli
from pipelines.core.config import load_recipe
from pipelines.core.errors import ConfigError, DataError, DistilleryError
from pipelines.data.loading import load_task_data
from tests.conftest import ROOT, tiny_bert, tiny_recipe, write_jsonl, write_recipe

WORDS = ["good", "bad", "movie", "film", "great", "awful", "the", "a", "plot", "was", "not"]


def recipe_path(tmp_path: Path, name: str = "r.yaml", **sections) -> Path:
    return write_recipe(tmp_path / name, tiny_recipe(**sections))


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


def bounded_cli(args: list[str], memory_gb: float = 1.0, limit_s: float = 10.0):
    """`distillery ARGS` in a child limited to `memory_gb` of address space; (rc, stderr, seconds
    of work): the wall time less that of `distillery validate --help` (interpreter start and
    imports, slow on a loaded machine). Past `limit_s` of work it is stopped (TimeoutExpired)."""

    def limit():
        size = int(memory_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    def run(argv: list[str], timeout: float | None):
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "pipelines", *argv],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=limit,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        return done, time.monotonic() - started

    _, start_s = run(["validate", "--help"], None)
    done, seconds = run(args, start_s + limit_s)
    return done.returncode, done.stderr, seconds - start_s


# ---------------------------------------------------------------- 3. bounded resources

# Nine levels of nine-fold aliases: 9**9 values in a value that validation reads and a message
# would quote (99 s and 13.7 GB before the bound).
LEVELS = ["&a0 [x,x,x,x,x,x,x,x,x]"] + [
    f"&a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)
]
BOMB = "[" + ", ".join(LEVELS) + "]"


def test_a_yaml_alias_bomb_is_refused_in_a_second_under_1_gb(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(f"name: tiny\nseed: {BOMB}\n")
    assert path.stat().st_size < 1024
    rc, err, seconds = bounded_cli(["validate", str(path)])
    assert rc == 2 and seconds < 10, err
    assert "expand to more than 100,000 values" in err and "Traceback" not in err
    assert len(err) < 1000
    # the same bomb in one --set value
    rc, err, _ = bounded_cli(["validate", str(recipe_path(tmp_path)), "--set", f"seed={BOMB}"])
    assert rc == 2 and "expand to more than 100,000 values" in err, err


@pytest.mark.parametrize(
    "text, message",
    [
        ("a: &a [*a]\n", "expand to more than 100,000 values"),  # an alias inside its anchor
        ("x: " + "[" * 300 + "]" * 300 + "\n", "nested more than 64 levels"),
    ],
)
def test_recursive_and_deep_yaml_are_refused(tmp_path, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_recipe(path)


def test_a_large_value_is_quoted_shortly_in_the_error(tmp_path, capsys):
    levels = ["&a [x,x,x,x,x,x,x,x,x]"] + [
        f"&{b} [" + ",".join([f"*{a}"] * 9) + "]" for a, b in zip("abc", "bcd", strict=True)
    ]
    path = tmp_path / "r.yaml"
    text = (
        Path(recipe_path(tmp_path))
        .read_text()
        .replace("seed: 0", "seed: [" + ", ".join(levels) + ", *d, *d]")
    )
    path.write_text(text)
    assert len(text) < 2048
    assert cli.main(["validate", str(path)]) == 2
    err = one_line(capsys)
    assert "seed: expected" in err and len(err) < 600  # ~23,000 values, quoted in 200 characters


def test_a_fifo_or_a_symlink_loop_as_data_source_is_refused_at_once(tmp_path, capsys):
    fifo = tmp_path / "train.jsonl"
    os.mkfifo(fifo)
    rc, err, seconds = bounded_cli(
        ["validate", str(recipe_path(tmp_path)), "--set", f"data.source={fifo}"]
    )
    assert rc == 2 and seconds < 10 and "is a FIFO (named pipe), not a regular file" in err, err
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert (
        cli.main(["validate", str(recipe_path(tmp_path)), "--set", f"data.source={tmp_path / 'a'}"])
        == 2
    )
    assert "a symbolic link that loops" in one_line(capsys)


def load_predict():
    spec = importlib.util.spec_from_file_location(
        "hostile_predict", ROOT / "pipelines" / "bundle" / "files" / "predict.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_predict_threads_are_clamped_to_the_cores(capsys):
    predict = load_predict()
    cores = len(os.sched_getaffinity(0))
    assert predict.usable_threads(100_000) == cores
    assert f"--threads 100000 lowered to {cores}" in capsys.readouterr().err
    assert predict.usable_threads(0) == 0 and predict.usable_threads(1) == 1


# ---------------------------------------------------------------- 2. nothing empty is done


@pytest.mark.parametrize(
    "override, message",
    [
        ("bench.batch_sizes=[]", "bench.batch_sizes: is empty"),
        ("bench.seq_lens=[]", "bench.seq_lens: is empty"),
        ("bench.threads=[]", "bench.threads: is empty"),
        ("search.space.depths=[]", "search.space.depths: is empty"),
        ("search.space.layer_choices=[]", "search.space.layer_choices: is empty"),
        ("bench.seq_lens=[4096]", "bench.seq_lens: 4096 tokens, but the teacher .* at most 64"),
    ],
)
def test_values_the_model_cannot_take_fail_at_validate(tmp_path, override, message, capsys):
    assert cli.main(["validate", str(recipe_path(tmp_path)), "--set", override]) == 2
    err = one_line(capsys)
    import re

    assert re.search(message, err), err


def test_embed_serves_an_onnx_encoder_only_from_a_finished_export(tmp_path, capsys):
    features = tmp_path / "runs" / "tiny" / "export" / "student-onnx" / "features"
    features.mkdir(parents=True)
    (features / "model.onnx").write_bytes(b"not a graph: the export never finished")
    args = ["embed", str(recipe_path(tmp_path)), "--runs-dir", str(tmp_path / "runs")]
    assert cli.main([*args, "--artifact", "student-onnx", "--text", "good film"]) == 2
    assert "stage 'export' has not finished" in one_line(capsys)
    manifest = {"hash": "x", "files": {"student-onnx/model.onnx": {"bytes": 1, "sha256": "0"}}}
    (features.parents[1] / "manifest.json").write_text(json.dumps(manifest))
    assert cli.main([*args, "--artifact", "student-onnx", "--text", "good film"]) == 2
    assert "not an encoder export of the finished export stage" in one_line(capsys)


def test_embed_text_that_is_not_utf8_is_one_line(tmp_path, capsys):
    text = os.fsdecode(b"caf\xe9")  # how Python hands a non-UTF-8 argv byte to the program
    assert cli.main(["embed", str(recipe_path(tmp_path)), "--text", text]) == 2
    assert "--text #1: byte 0xe9 at character 4 is not UTF-8" in one_line(capsys)


def test_a_damaged_search_candidate_is_rebuilt_on_resume(tmp_path):
    import datasets
    import onnx

    from pipelines.search.measure import build_candidate
    from pipelines.search.space import candidates

    teacher, tokenizer = tiny_bert(tmp_path / "teacher", WORDS)
    space = {"depths": [1], "widths": [32], "ffn_ratios": [2.0], "layer_choices": ["bottom"]}
    recipe = load_recipe(
        recipe_path(tmp_path, search={"enabled": True, "seq_len": 16, "space": space})
    )
    texts = ["good film", "bad plot"] * 8
    train = datasets.Dataset.from_dict(dict(tokenizer(texts, truncation=True))).add_column(
        "labels", [0, 1] * 8
    )
    cand = candidates(recipe.search.space, teacher.config)[0]
    folder = tmp_path / cand.id
    record = build_candidate(cand, folder, "k1", recipe, teacher, tokenizer, train)
    int8 = folder / "int8" / "model.onnx"
    good = int8.read_bytes()
    int8.write_bytes(good[: len(good) // 2])  # cut short, as a full disk or a kill leaves it
    again = build_candidate(cand, folder, "k1", recipe, teacher, tokenizer, train)
    assert again == record and int8.stat().st_size == len(good)
    onnx.checker.check_model(str(int8))


# ---------------------------------------------------------------- 5. the README's promises


def test_a_tokenizer_larger_than_the_embedding_table_fails_at_validate(tmp_path, capsys):
    small = tmp_path / "small"
    model, _ = tiny_bert(small, WORDS[:4])
    model.save_pretrained(small)
    tiny_bert(tmp_path / "big", [f"w{i}" for i in range(60)])  # a 65-token vocabulary
    teacher = {"init": "pretrained", "model": str(small), "tokenizer": str(tmp_path / "big")}
    assert cli.main(["validate", str(recipe_path(tmp_path, teacher=teacher))]) == 2
    assert "the tokenizer has 65 tokens but the model's embedding table has 9 rows" in one_line(
        capsys
    )


def test_a_max_length_past_the_teachers_positions_fails_at_validate(tmp_path, capsys):
    teacher_dir = tmp_path / "teacher"
    model, _ = tiny_bert(teacher_dir, WORDS)  # 64 positions
    model.save_pretrained(teacher_dir)
    recipe = recipe_path(tmp_path, teacher={"init": "pretrained", "model": str(teacher_dir)})
    assert cli.main(["validate", str(recipe), "--set", "data.max_length=100"]) == 2
    assert "data.max_length: 100 tokens, but the teacher" in one_line(capsys)
    assert cli.main(["validate", str(recipe), "--set", "data.max_length=64"]) == 0


def test_a_teacher_folder_without_tokenizer_files_says_so(tmp_path, capsys):
    bare = tmp_path / "bare"
    model, _ = tiny_bert(tmp_path / "with-tokenizer", WORDS)
    model.save_pretrained(bare)  # config and weights only
    teacher = {"init": "pretrained", "model": str(bare)}
    assert cli.main(["validate", str(recipe_path(tmp_path, teacher=teacher))]) == 2
    assert f"teacher.model: {bare} holds no tokenizer" in one_line(capsys)


def data_recipe(tmp_path, folder: Path):
    return load_recipe(recipe_path(tmp_path, data={"source": str(folder), "max_length": 24}))


def test_a_csv_with_quoted_newlines_names_the_physical_line(tmp_path):
    import csv

    rows = [(f"good film\nsecond line {i}", "positive") for i in range(30)]
    rows += [("bad plot", "negative")] * 5 + [("odd", "maybe")]
    for split in ("train", "validation"):
        with (tmp_path / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(rows)
    physical = (tmp_path / "train.csv").read_text().splitlines().index("odd,maybe") + 1
    assert physical == 2 + 30 * 2 + 5  # header, 30 two-line rows, 5 one-line rows
    with pytest.raises(DataError, match=f"train.csv line {physical}: label 'maybe'"):
        load_task_data(data_recipe(tmp_path, tmp_path))


@pytest.mark.parametrize(
    "files, message",
    [
        (
            {"train.jsonl": '{"text": "good", "label": 1}\n{"text": "bad", label}\n'},
            "train.jsonl: line 2 is not valid JSON",
        ),
        (
            {"train.csv": "text,label\ngood,positive\nbad,negative,extra\n"},
            "train.csv: line 3 has 3 fields, the header has 2",
        ),
        (
            {"train.jsonl": '{"text": "good", "label": 1}\n', "validation.jsonl": "\n\n"},
            "split 'validation' .*validation.jsonl. has no rows",
        ),
        (
            {"train.jsonl": "".join(f'{{"text": "good {i}", "label": 1}}\n' for i in range(20))},
            "split 'train': every one of its 20 rows is labelled 'positive'",
        ),
    ],
)
def test_data_errors_name_the_file_and_line(tmp_path, files, message):
    folder = tmp_path / "data"
    write_jsonl(
        folder / "validation.jsonl", [{"text": "good", "label": 1}, {"text": "bad", "label": 0}]
    )
    for name, text in files.items():
        (folder / name).write_text(text)
    with pytest.raises(DataError, match=message):
        load_task_data(data_recipe(tmp_path, folder))


@pytest.mark.parametrize("case", ["file", "long name"])
def test_an_unwritable_runs_dir_says_the_real_fix(tmp_path, case, capsys):
    args = ["run", str(recipe_path(tmp_path)), "--stage", "teacher"]
    if case == "file":
        (tmp_path / "runs").write_text("a file where the runs folder goes")
        args += ["--runs-dir", str(tmp_path / "runs"), "--set", "name=tiny"]
        fix = f"{tmp_path / 'runs'} is a file, not a folder"
    else:
        args += ["--runs-dir", str(tmp_path / "runs"), "--set", f"name={'n' * 300}"]
        fix = "The name is too long for the file system: shorten the recipe's `name`"
    assert cli.main(args) == 2
    err = one_line(capsys)
    assert fix in err and "Free disk space" not in err


def test_unexpected_file_errors_become_one_line_in_the_cli(tmp_path, capsys, monkeypatch):
    """The last resort: an OSError or a JSON error nobody checked for, from the one place."""
    from pipelines.core import errors

    def broken(args):
        json.loads("{not json")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["stages"].set_defaults(func=broken)
    assert cli.main(["stages"]) == 2
    assert "not valid JSON at line 1, column 2" in one_line(capsys)
    assert errors.file_error_message(ValueError("a bug")) is None  # bugs keep their traceback
    with pytest.raises(DistilleryError, match="is a folder, not a regular file"):
        from pipelines.core.user_files import read_text

        read_text(tmp_path, "labelled rows")


# ---------------------------------------------------------------- beyond the list


@pytest.mark.parametrize("kind", ["FIFO", "folder"])
def test_a_recipe_that_is_not_a_file_is_named_at_once(tmp_path, kind, capsys):
    path = tmp_path / "recipe.yaml"
    os.mkfifo(path) if kind == "FIFO" else path.mkdir()
    rc, err, seconds = bounded_cli(["validate", str(path)])
    assert rc == 2 and seconds < 10 and f"recipe {path}: a {kind}" in err, err


def test_a_teacher_shape_this_machine_cannot_train_fails_at_validate(tmp_path, capsys):
    import psutil

    shape = {
        "num_hidden_layers": 48,
        "hidden_size": 8192,
        "num_attention_heads": 64,
        "intermediate_size": 32768,
    }
    if psutil.virtual_memory().total > 600 * 2**30:
        pytest.skip("this machine could hold it")
    path = recipe_path(tmp_path, teacher={"init": "config", "config": shape})
    assert cli.main(["validate", str(path)]) == 2
    assert "GiB to train, and this machine has" in one_line(capsys)
    assert cli.main(["run", str(path), "--stage", "teacher", "--runs-dir", str(tmp_path)]) == 2
    assert "choose a smaller shape" in one_line(capsys)


def test_damaged_run_records_do_not_crash_the_runner(tmp_path):
    from pipelines.core.lock import describe
    from pipelines.core.runs import RunDir

    assert describe("5") == describe("{not json") == "holder unknown"
    run = RunDir(tmp_path, "r")
    (run.stage("teacher") / "checkpoints").mkdir(parents=True)
    (run.stage("teacher") / ".attempt").write_bytes(b"\xff\xfe garbage")
    assert "an interrupted run" in run.start_attempt("teacher", "abc")


def test_bundling_the_peer_baseline_is_refused_saying_what_it_is(tmp_path):
    from types import SimpleNamespace

    from pipelines.bundle.writer import choose_artifact
    from pipelines.core.runs import RunDir

    run = RunDir(tmp_path / "runs", "tiny")
    peer = run.stage("quantize") / "student-int8-peer"
    peer.mkdir(parents=True)
    (peer / "model.onnx").write_bytes(b"graph")
    entry = {"path": "student-int8-peer", "role": "baseline", "accuracy": 0.9}
    (run.stage("quantize") / "manifest.json").write_text(
        json.dumps({"quantized": {"student-int8-peer": entry}})
    )
    recipe = load_recipe(recipe_path(tmp_path, bundle={"artifact": "student-int8-peer"}))
    with pytest.raises(DistilleryError) as caught:
        choose_artifact(SimpleNamespace(run=run, recipe=recipe))
    message = str(caught.value)
    assert "is the peer baseline (optimum-cli's own int8" in message
    assert "a bundle ships ONNX Runtime" not in message  # it is an ONNX Runtime model
