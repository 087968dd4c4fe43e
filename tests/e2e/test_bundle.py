"""The edge bundle: its files, its predict.py against the pipeline, --verify, a clean venv."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pipelines import cli
from pipelines.bundle.labelled_rows import fingerprint, predictions_hash
from pipelines.bundle.verify import run_predict, verify_bundle
from pipelines.core.config import load_recipe
from pipelines.run.registry import STAGES
from pipelines.run.runner import run_pipeline
from tests.conftest import ROOT

NETWORK_ERRORS = re.compile(
    r"connection|network|resolve|timed out|timeout|unreachable|no matching distribution|"
    r"could not find a version|proxy|ssl",
    re.IGNORECASE,
)


@pytest.fixture(scope="module")
def built(tiny_bundle):
    """(tmp, recipe path, manifests) of a tiny run bundled with its report's recommendation: the
    session's tiny_bundle (tests/conftest.py), tiny_recipe(**SECTIONS) in tmp/runs/tiny."""
    return tiny_bundle


def bundle_dir(tmp: Path) -> Path:
    return tmp / "runs" / "tiny" / "bundle"


def pipeline_predictions(recipe_path: Path, artifact: str, texts: list[str]) -> list[int]:
    """Labels from onnxruntime in-process on the artifact, tokenized as the pipeline does."""
    import datasets

    from export.parity import onnx_logits
    from pipelines.bench.artifacts import discover_artifacts
    from pipelines.core.models import load_stage_model
    from pipelines.data.loading import tokenize

    recipe = load_recipe(recipe_path)
    run = recipe_path.parent / "runs" / "tiny"
    path = {a.name: a.path for a in discover_artifacts(run)}[artifact]
    _, tokenizer = load_stage_model(run / "distill", recipe.security)
    rows = tokenize(datasets.Dataset.from_dict({"text": texts}), tokenizer, recipe)
    return onnx_logits(Path(path) / "model.onnx", rows, tokenizer).argmax(-1).tolist()


def load_predict_module():
    spec = importlib.util.spec_from_file_location(
        "bundle_predict", ROOT / "pipelines" / "bundle" / "files" / "predict.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bundle_is_the_last_stage_and_holds_every_file(built):
    tmp, _, manifests = built
    assert list(STAGES)[-1] == "bundle"
    out = bundle_dir(tmp)
    manifest = manifests["bundle"]
    recommended = manifests["report"]["recommended"]
    assert manifest["metrics"]["artifact"] == recommended  # an ONNX one on this run
    assert manifest["bundle"]["chosen_by"] == "the report's recommendation"
    expected = {
        "model.onnx",
        "tokenizer.json",
        "distillery.json",
        "config.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "predict.py",
        "requirements.txt",
        "reference.json",
        "eval.jsonl",
        "README.md",
        "SHA256SUMS",
        # Node, the browser, ORT Mobile (tests/test_bundle_runtimes.py)
        *("predict.mjs", "classifier.mjs", "index.html", "package.json", "package-lock.json"),
        *("model.ort", "model.required_operators.config"),
    }
    assert expected <= {p.name for p in out.iterdir()}
    config = json.loads((out / "distillery.json").read_text())
    assert config["labels"] == ["negative", "positive"] and config["max_length"] == 24
    assert set(config["input_names"]) <= {"input_ids", "attention_mask", "token_type_ids"}
    assert "input_ids" in config["input_names"]
    assert (out / "predict.py").read_text() == (
        ROOT / "pipelines" / "bundle" / "files" / "predict.py"
    ).read_text()
    assert (out / "requirements.txt").read_text().split() == [
        f"{name}=={metadata.version(name)}" for name in ("onnxruntime", "tokenizers", "numpy")
    ]
    # SHA256SUMS: sha256sum's format, every bundle file, correct digests, run records left out.
    lines = (out / "SHA256SUMS").read_text().splitlines()
    listed = {}
    for line in lines:
        digest, name = re.fullmatch(r"([0-9a-f]{64})  (\S+)", line).groups()
        listed[name] = digest
    assert set(listed) == expected - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == digest
    if shutil.which("sha256sum"):
        check = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True)
        assert check.returncode == 0, check.stdout
    # Model card: lineage hash of every upstream stage, accuracy and both latencies.
    readme = (out / "README.md").read_text()
    assert readme.startswith("---\nlibrary_name: onnxruntime\npipeline_tag: text-classification\n")
    for stage in ("teacher", "distill", "export", "bench", "report"):
        assert manifests[stage]["hash"] in readme, stage
    assert f"{manifest['metrics']['accuracy']:.4f}" in readme
    assert "cold start" in readme and "pip install -r requirements.txt" in readme
    m = manifest["metrics"]
    assert m["bundle_mb"] > m["model_mb"] > 0
    assert m["cold_start_s"] > m["session_s"] > 0 and m["startup_import_s"] > 0
    assert m["per_sentence_p50_ms"] > 0 and m["single_p50_ms"] > 0
    assert m["length_batched_agreement"] >= 0.95


def test_rerun_skips_and_an_unknown_artifact_lists_the_available_ones(built, tmp_path, capsys):
    tmp, path, _ = built
    shutil.copytree(tmp / "runs", tmp_path / "runs")
    lines = []
    run_pipeline(load_recipe(path), tmp_path / "runs", target="bundle", echo=lines.append)
    assert any(line.startswith("[bundle] skipped") for line in lines)
    runs = str(tmp_path / "runs")
    code = cli.main(["bundle", str(path), "--artifact", "student-int9", "--runs-dir", runs])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "bundle.artifact 'student-int9': unknown. Available: student-onnx, " in err
    assert "student-int8-dynamic" in err and "student-onnx-O2" in err
    code = cli.main(["bundle", str(path), "--artifact", "student", "--runs-dir", runs])
    assert code == 2 and "is a torch artifact, and a bundle ships ONNX" in capsys.readouterr().err


def test_default_artifact_when_the_report_recommends_a_pytorch_model(built, monkeypatch):
    from pipelines.bundle import writer as bundle
    from pipelines.core.runs import RunDir

    tmp, path, manifests = built
    run = RunDir(tmp / "runs", "tiny")
    ctx = SimpleNamespace(
        run=run,
        recipe=load_recipe(path),
        inputs={**manifests, "report": {**manifests["report"], "recommended": "student"}},
        input_dir=run.stage,
    )
    artifact, why = bundle.choose_artifact(ctx)  # the report's rule, among shippable artifacts
    assert artifact.backend in ("onnxruntime", "openvino") and "'student', is not shippable" in why
    monkeypatch.setattr(bundle, "recommend", lambda *a, **k: None)  # none keeps the accuracy
    artifact, why = bundle.choose_artifact(ctx)
    shippable = bundle.shippable_artifacts(run.path).values()
    assert artifact.accuracy == max(a.accuracy for a in shippable)
    assert all(a.role != "baseline" for a in shippable)  # the peer is never shipped
    assert why.startswith(
        "highest accuracy among shippable artifacts: none meets the report's rule"
    )


def test_bundle_predictions_equal_the_artifacts_on_the_eval_split(built):
    tmp, path, manifests = built
    out = bundle_dir(tmp)
    reference = json.loads((out / "reference.json").read_text())
    artifact = reference["artifact"]
    recorded = next(
        a["accuracy"] for a in manifests["bench"]["measured"] if a["name"] == artifact
    )  # the export's parity or the quantize record
    assert reference["accuracy"] == recorded
    rows = [json.loads(line) for line in (out / "eval.jsonl").read_text().splitlines()]
    expected = pipeline_predictions(path, artifact, [r["text"] for r in rows])
    labels = ["negative", "positive"]
    got = [labels.index(r["label"]) for r in run_predict(out, out / "eval.jsonl", order="input")]
    assert got == expected
    assert predictions_hash(got) == reference["predictions_sha256"]
    gold = [labels.index(r["label"]) for r in rows]
    assert (
        fingerprint([((r["text"],), g) for r, g in zip(rows, gold, strict=True)])
        == (reference["eval_fingerprint"])
    )
    assert np.mean(np.array(got) == np.array(gold)) == recorded


def test_verify_passes_fresh_and_names_an_altered_or_missing_file(built, tmp_path, capsys):
    tmp, path, _ = built
    copy = tmp_path / "bundle"
    shutil.copytree(bundle_dir(tmp), copy)
    assert cli.main(["bundle", "--verify", str(copy)]) == 0
    out = capsys.readouterr().out
    assert "SHA256SUMS ok" in out and "predictions identical" in out and "verify: ok" in out
    summary = verify_bundle(copy, recipe=load_recipe(path), echo=lambda _: None)
    assert summary["same_rows"] and summary["accuracy"] == summary["recorded_accuracy"]
    subset = tmp_path / "subset.jsonl"
    subset.write_text("".join((copy / "eval.jsonl").read_text().splitlines(True)[:10]))
    assert cli.main(["bundle", "--verify", str(copy), "--data", str(subset)]) == 0
    assert "on 10 rows" in capsys.readouterr().out  # other rows: reported, not compared

    config = json.loads((copy / "distillery.json").read_text())
    (copy / "distillery.json").write_text(json.dumps({**config, "max_length": 8}))
    assert cli.main(["bundle", "--verify", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{copy}/distillery.json: altered after the bundle was built" in err
    (copy / "distillery.json").write_text(json.dumps(config, indent=2) + "\n")  # as written
    (copy / "tokenizer.json").unlink()
    (copy / "numpy.py").write_text("raise SystemExit('shadowed')\n")
    assert cli.main(["bundle", "--verify", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{copy}/tokenizer.json: listed in SHA256SUMS but missing" in err
    assert f"{copy}/numpy.py: not listed in SHA256SUMS" in err
    assert "distillery.json" not in err


def test_predict_reads_text_json_and_pairs_and_names_bad_lines():
    predict = load_predict_module()
    rows = list(
        predict.read_rows(
            ["plain text\n", "\n", '{"text": "json"}\n', '"quoted"'], ["text"], "auto"
        )
    )
    assert rows == [(1, ("plain text",)), (3, ("json",)), (4, ("quoted",))]
    pair = list(predict.read_rows(['{"a": "x", "b": "y"}'], ["a", "b"], "auto"))
    assert pair == [(1, ("x", "y"))]

    def errors(lines, columns, fmt):  # a bad line comes back as its error, the rest as rows
        return [
            (n, str(t)) if isinstance(t, predict.InputError) else (n, t)
            for n, t in predict.read_rows(lines, columns, fmt)
        ]

    assert errors(["only one text"], ["a", "b"], "auto")[0][1].endswith(
        "(this model reads sentence pairs)"
    )
    assert errors(["ok", '{"txt": "x"}'], ["text"], "auto") == [
        (1, ("ok",)),
        (
            2,
            "line 2: the JSON object has no text under ['text']; expected keys ['text'] "
            "(distillery.json text_columns)",
        ),
    ]
    assert errors(["not json"], ["text"], "jsonl") == [
        (1, "line 1: not valid JSON; use --format text")
    ]
    assert errors([b"fine\n", b"caf\xe9\n", b"ok"], ["text"], "auto") == [
        (1, ("fine",)),
        (2, "line 2: not valid UTF-8 (byte 0xe9 at column 4)"),
        (3, ("ok",)),
    ]


def test_bundle_tokenizer_truncates_and_pairs_like_the_pipeline(built):
    """The bundle's Predictor tokenizes as the pipeline did in training: same ids and token types,
    truncated to the recipe's max_length, for single texts and pairs."""
    import datasets

    from pipelines.core.models import load_stage_model
    from pipelines.data.loading import tokenize

    tmp, path, _ = built
    out = bundle_dir(tmp)
    predictor = load_predict_module().Predictor(out, threads=1)
    max_length = predictor.config["max_length"]
    long = "this movie felt lovely in the end but the script is quite awful " * 3
    singles = [long, "short one"]
    pairs = [(long, "a short pair"), ("x y", long)]
    single_recipe = load_recipe(path)
    _, hf = load_stage_model(tmp / "runs" / "tiny" / "distill", single_recipe.security)
    pair_recipe = load_recipe(path, ["task.text_columns=[a, b]"])
    expected = tokenize(datasets.Dataset.from_dict({"text": singles}), hf, single_recipe)
    expected_pairs = tokenize(
        datasets.Dataset.from_dict({"a": [a for a, _ in pairs], "b": [b for _, b in pairs]}),
        hf,
        pair_recipe,
    )
    got = predictor.tokenizer.encode_batch([*singles, *pairs])
    assert [e.ids for e in got] == [*expected["input_ids"], *expected_pairs["input_ids"]]
    assert [e.type_ids for e in got] == [
        *expected["token_type_ids"],
        *expected_pairs["token_type_ids"],
    ]
    assert len(got[0].ids) == max_length == 24  # the long text was cut to the recipe's length


@pytest.mark.network
@pytest.mark.slow  # a fresh venv and a pip install
def test_predict_runs_in_a_clean_venv_with_only_its_requirements(built, tmp_path):
    tmp, path, _ = built
    out = bundle_dir(tmp)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-r", str(out / "requirements.txt")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if install.returncode != 0:
        tail = (install.stderr or install.stdout).strip()[-400:]
        if NETWORK_ERRORS.search(tail):
            pytest.skip(f"pip could not reach the package registry: {tail}")
        pytest.fail(f"pip install -r requirements.txt failed: {tail}")
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"], capture_output=True, text=True
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert {"onnxruntime", "tokenizers", "numpy"} <= installed
    assert not installed & {"torch", "transformers", "distillery", "datasets"}

    rows = [json.loads(line)["text"] for line in (out / "eval.jsonl").read_text().splitlines()]
    texts = rows[:6] + ["not good at all", "a truly great film " * 10]  # the last one truncated
    done = subprocess.run(
        [str(python), str(out / "predict.py"), "--threads", "1", "--probabilities"],
        input="\n".join(texts) + "\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: nothing of distillery is importable
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["line"] for r in results] == list(range(1, len(texts) + 1))
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in results)
    assert all(r["score"] == max(r["probabilities"].values()) for r in results)
    reference = json.loads((out / "reference.json").read_text())
    expected = pipeline_predictions(path, reference["artifact"], texts)
    assert [["negative", "positive"].index(r["label"]) for r in results] == expected
