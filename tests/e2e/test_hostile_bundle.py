"""Issue #31, class 1: `bundle --verify` fails whenever it cannot prove the bundle is what the run
made, and `push` refuses such a bundle. Each test tampers with a copy of a freshly built bundle
the way an attacker who can rewrite the whole folder would (the sums redone to match)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import cli
from pipelines.bundle.push import push_to_hub
from pipelines.bundle.verify import BundleError, verify_bundle, write_sha256sums
from pipelines.core.config import load_recipe
from pipelines.core.runs import sha256_file
from pipelines.run.runner import run_pipeline
from tests.conftest import SECTIONS, tiny_recipe, write_recipe

QUIET = {"echo": lambda _: None}


class FakeHub:
    def __init__(self):
        self.calls = []

    def create_repo(self, *args, **kwargs):
        self.calls.append("create_repo")

    def upload_folder(self, **kwargs):
        self.calls.append("upload_folder")
        return "https://hub.example/commit"


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_bundle):
    """(tmp, recipe path): a copy of the session's tiny_bundle run (tiny_recipe(**SECTIONS), its
    bundle in tmp/runs/tiny/bundle); a copy, since tests here rerun its bench."""
    tmp = tmp_path_factory.mktemp("hostile-bundle")
    shutil.copytree(tiny_bundle[0] / "runs", tmp / "runs")
    path = write_recipe(tmp / "recipe.yaml", tiny_recipe(**SECTIONS))
    run_pipeline(load_recipe(path), tmp / "runs", target="bundle", **QUIET)  # all skipped: done
    return tmp, path


@pytest.fixture
def copy(built, tmp_path) -> Path:
    folder = tmp_path / "bundle"
    shutil.copytree(built[0] / "runs" / "tiny" / "bundle", folder)
    return folder


def other_model(built) -> Path:
    """A model file of the same run that is not the bundled one (the int8 or the plain export)."""
    tmp, _ = built
    shipped = (tmp / "runs" / "tiny" / "bundle" / "model.onnx").read_bytes()
    for path in sorted((tmp / "runs" / "tiny").glob("*/*/model.onnx")):
        if path.read_bytes() != shipped:
            return path
    raise AssertionError("the run made only one model file")


def drop_an_eval_row(folder: Path, built) -> None:
    shutil.copy(other_model(built), folder / "model.onnx")
    lines = (folder / "eval.jsonl").read_text().splitlines(True)
    (folder / "eval.jsonl").write_text("".join(lines[1:]))
    write_sha256sums(folder)


def drop_the_predictions_hash(folder: Path, built) -> None:
    shutil.copy(other_model(built), folder / "model.onnx")
    reference = json.loads((folder / "reference.json").read_text())
    del reference["predictions_sha256"]
    (folder / "reference.json").write_text(json.dumps(reference))
    write_sha256sums(folder)


def sums_naming(how: str):
    """A SHA256SUMS line for a real file outside the bundle, with its true sha256: by a relative
    path climbing out (`../`), or by an absolute path."""

    def tamper(folder: Path, built) -> None:
        outside = folder.parent / "secret.txt"
        outside.write_text("not a file of the bundle\n")
        name = os.path.relpath(outside, folder) if how == "relative" else str(outside)
        with (folder / "SHA256SUMS").open("a") as handle:
            handle.write(f"{sha256_file(outside)}  {name}\n")

    return tamper


def symlink_out(folder: Path, built) -> None:
    outside = folder.parent / "outside.json"
    shutil.move(folder / "distillery.json", outside)
    (folder / "distillery.json").symlink_to(outside)  # same bytes: only the link is wrong


TAMPERINGS = {
    "eval row dropped, model changed, sums redone": (drop_an_eval_row, "not the 160 rows"),
    "reference without predictions_sha256": (drop_the_predictions_hash, "predictions_sha256"),
    "sums name ../secret.txt": (sums_naming("relative"), "outside the bundle folder"),
    "sums name an absolute path": (sums_naming("absolute"), "outside the bundle folder"),
    "a listed file is a symlink out": (symlink_out, "distillery.json: a symbolic link"),
}


@pytest.mark.parametrize("case", sorted(TAMPERINGS))
def test_verify_fails_and_push_refuses_a_tampered_bundle(case, copy, built, capsys):
    tamper, message = TAMPERINGS[case]
    tamper(copy, built)
    assert cli.main(["bundle", "--verify", str(copy)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    hub = FakeHub()
    with pytest.raises(BundleError, match="SHA256SUMS|reference|rows|symbolic"):
        push_to_hub(copy, "me/tampered", api=hub, echo=lambda _: None)
    assert hub.calls == []  # refused before any Hub call


def test_a_changed_model_with_sums_redone_fails_against_the_runs_records(copy, built, capsys):
    tmp, recipe = built
    shutil.copy(other_model(built), copy / "model.onnx")
    write_sha256sums(copy)
    runs = ["--runs-dir", str(tmp / "runs")]
    assert cli.main(["bundle", "--verify", str(copy), str(recipe), *runs]) == 2
    err = capsys.readouterr().err
    assert "model.onnx (differs from the run's record)" in err
    assert "not the student-onnx" in err or "not the student" in err
    # the untampered copy passes against the same records, and a missing run is named
    assert (
        cli.main(["bundle", "--verify", str(tmp / "runs" / "tiny" / "bundle"), str(recipe), *runs])
        == 0
    )
    capsys.readouterr()
    assert cli.main(["bundle", "--verify", str(copy), str(recipe), "--runs-dir", str(copy)]) == 2
    assert "no finished bundle stage" in capsys.readouterr().err


def test_a_rewritten_reference_fails_against_the_runs_records(copy, built):
    tmp, recipe = built
    reference = json.loads((copy / "reference.json").read_text())
    (copy / "reference.json").write_text(json.dumps({**reference, "accuracy": 1.0}))
    write_sha256sums(copy)
    with pytest.raises(BundleError, match="reference.json \\(differs from the run's record\\)"):
        verify_bundle(copy, recipe=load_recipe(recipe), runs_dir=tmp / "runs", **QUIET)


@pytest.mark.parametrize(
    "damage, message",
    [
        ("config", "distillery.json: not valid JSON at line 1"),
        ("sums", "SHA256SUMS: not UTF-8 text (byte 0xff"),
        ("data", "line 2 is not UTF-8 text (byte 0xe9)"),
        ("labels", "distillery.json: incomplete: labels"),
        ("model path", "distillery.json: incomplete: model (a file name in the bundle folder)"),
    ],
)
def test_malformed_bundle_files_are_one_line(copy, damage, message, tmp_path, capsys):
    args = ["bundle", "--verify", str(copy)]
    if damage == "config":
        (copy / "distillery.json").write_text('{"labels": ["a", ')
        write_sha256sums(copy)
    elif damage == "labels":
        config = json.loads((copy / "distillery.json").read_text())
        (copy / "distillery.json").write_text(json.dumps({**config, "labels": "ab"}))
        write_sha256sums(copy)
    elif damage == "model path":  # the model outside the folder SHA256SUMS covers
        config = json.loads((copy / "distillery.json").read_text())
        (copy / "distillery.json").write_text(json.dumps({**config, "model": "../model.onnx"}))
        write_sha256sums(copy)
    elif damage == "sums":
        (copy / "SHA256SUMS").write_bytes(b"\xff\xfe" + (copy / "SHA256SUMS").read_bytes())
    else:
        data = tmp_path / "rows.jsonl"
        data.write_bytes(b'{"text": "fine", "label": 0}\n{"text": "caf\xe9", "label": 0}\n')
        args += ["--data", str(data)]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------- predict.py: one line each


def predict(folder: Path, *args: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(folder / "predict.py"), *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing input", "--input {copy}/nope.txt: No such file or directory"),
        ("input is a folder", "--input {copy}: a folder; give a file of rows"),
        ("full disk", "error: the output: No space left on device"),
        ("labels", "distillery.json labels: [] is not a non-empty list of label names"),
        ("max_length", "distillery.json max_length: 1000000000000 is not a token count"),
        ("config not JSON", "distillery.json: not valid JSON at line 1"),
        ("model path", "distillery.json model: '/etc/passwd' is not a file name in this folder"),
    ],
)
def test_predict_refuses_in_one_line(copy, case, message):
    args, stdout = ["--input", str(copy / "eval.jsonl")], subprocess.PIPE
    config = json.loads((copy / "distillery.json").read_text())
    if case == "missing input":
        args = ["--input", str(copy / "nope.txt")]
    elif case == "input is a folder":
        args = ["--input", str(copy)]
    elif case == "full disk":
        stdout = open("/dev/full", "w")  # noqa: SIM115
    elif case == "labels":
        (copy / "distillery.json").write_text(json.dumps({**config, "labels": []}))
    elif case == "max_length":
        (copy / "distillery.json").write_text(json.dumps({**config, "max_length": 10**12}))
    elif case == "model path":
        (copy / "distillery.json").write_text(json.dumps({**config, "model": "/etc/passwd"}))
    else:
        (copy / "distillery.json").write_text('{"labels": ')
    done = predict(copy, *args, stdout=stdout)
    assert done.returncode == 2, done.stderr
    assert message.format(copy=copy) in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


def test_predict_reads_a_line_without_end_in_bounded_memory(copy, tmp_path):
    rows = tmp_path / "rows.txt"
    rows.write_bytes(b"good film\n" + b"a" * (3 << 20) + b"\nbad plot\n")  # a 3 MiB line
    done = predict(copy, "--input", str(rows))
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1 and [r["line"] for r in lines] == [1, 2, 3]
    assert lines[1] == {"line": 2, "error": "longer than 1048576 bytes; split it"}
    assert "label" in lines[0] and "label" in lines[2]


def test_predict_piped_into_head_stops_quietly(copy):
    proc = subprocess.Popen(
        [sys.executable, str(copy / "predict.py"), "--input", str(copy / "eval.jsonl")]
        + ["--window", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert json.loads(proc.stdout.readline())["line"] == 1
    proc.stdout.close()  # as `head -1` does after its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == "", err


# ---------------------------------------------------------------- the run: bench, hint


def test_a_bench_with_no_measured_cell_fails_and_keeps_the_finished_one(built, monkeypatch):
    from pipelines.bench import grid
    from pipelines.core.errors import StageFailedError

    tmp, path = built
    runs = tmp / "runs"
    finished = json.loads((runs / "tiny" / "bench" / "manifest.json").read_text())

    def every_cell_an_error(artifacts, *args, **kwargs):
        return [
            {
                "artifact": a.name,
                "batch": 1,
                "seq": 16,
                "p50_ms": None,
                "error": "index 4096 is out of bounds",
            }
            for a in artifacts
        ]

    monkeypatch.setattr(grid, "run_grid", every_cell_an_error)
    with pytest.raises(
        StageFailedError, match="no cell was measured .*index 4096 is out of bounds"
    ):
        run_pipeline(load_recipe(path), runs, target="bench", force=True, **QUIET)
    assert not (runs / "tiny" / "bench" / "manifest.json").exists()  # not recorded as done
    monkeypatch.undo()
    done = run_pipeline(load_recipe(path), runs, target="bench", **QUIET)  # nothing lost
    assert done["bench"]["hash"] == finished["hash"]
    assert json.loads((runs / "tiny" / "bench" / "manifest.json").read_text()) == finished


def test_the_verify_hint_quotes_a_path_with_spaces(built, capsys):
    tmp, path = built
    spaced = tmp / "runs with spaces"
    if not spaced.exists():
        spaced.symlink_to(tmp / "runs")
    assert cli.main(["bundle", str(path), "--runs-dir", str(spaced)]) == 0
    out = capsys.readouterr().out
    assert f"`distillery bundle --verify '{spaced}/tiny/bundle'`" in out
