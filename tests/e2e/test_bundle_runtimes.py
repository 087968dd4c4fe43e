"""The edge bundle beyond Python: predict.mjs in Node, index.html in headless Chromium, model.ort
in ONNX Runtime, each checked against predict.py; skipped, never failed, without Node/Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines import cli
from pipelines.bundle import node as runtimes_node
from pipelines.bundle import runtimes
from pipelines.bundle.node import INSTALL, RuntimeSkipped, find_tools
from pipelines.bundle.runtimes import TOLERANCE, RuntimeUnsupported, check_runtime, unsupported
from pipelines.bundle.verify import BundleError, run_predict, verify_bundle, write_sha256sums
from pipelines.core.config import load_recipe
from pipelines.run.runner import run_pipeline
from tests.conftest import SECTIONS as BASE
from tests.conftest import tiny_recipe, write_recipe

SECTIONS = {  # conftest's smallest run, benching and bundling the int8 artifact only
    **BASE,
    "data": {"synthetic_rows": 400},
    "teacher": {"epochs": 1},
    "bench": {**BASE["bench"], "rounds": 1, "artifacts": ["student-int8-dynamic"]},
    # the int8 artifact: its DynamicQuantizeLinear/MatMulInteger must run in onnxruntime-web too
    "bundle": {
        "artifact": "student-int8-dynamic",
        "cold_start_runs": 1,
        "latency_sentences": 8,
        "latency_repeats": 1,
    },
}


def available(runtime: str) -> str | None:
    """None when this machine has the runtime's tools, else why not (the skip message)."""
    try:
        find_tools(runtime)
    except RuntimeSkipped as skip:
        return str(skip)
    return None


def needs(runtime: str):
    return pytest.mark.skipif(available(runtime) is not None, reason=str(available(runtime)))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A tiny run bundled (int8 dynamic), with every runtime check the machine allows."""
    tmp = tmp_path_factory.mktemp("edge")
    recipe = load_recipe(write_recipe(tmp / "recipe.yaml", tiny_recipe(**SECTIONS)))
    run_pipeline(recipe, tmp / "runs", target="bundle", echo=lambda _: None)
    return tmp / "runs" / "tiny" / "bundle"


def copy_of(bundle: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    return copy


def test_every_bundle_ships_the_runtimes_and_the_stage_checked_them(bundle):
    sums = (bundle / "SHA256SUMS").read_text()
    for name in (*runtimes.JS_FILES, "model.ort", "model.required_operators.config"):
        assert f"  {name}\n" in sums, name
    ops = (bundle / "model.required_operators.config").read_text()
    assert "MatMulInteger" in ops or "DynamicQuantizeMatMul" in ops  # int8 survives the .ort
    measured = json.loads((bundle / "manifest.json").read_text())["bundle"]["measured"]
    rows = json.loads((bundle / "reference.json").read_text())["rows"]
    card = (bundle / "README.md").read_text()
    assert "com.microsoft.onnxruntime:onnxruntime-android" in card
    for name, result in measured["runtimes"].items():
        if name != "ort" and available(name):
            assert result == {"skipped": available(name)}
            assert INSTALL in card
            continue
        assert result["rows"] == rows and result["agreement"] == 1.0
        assert result["max_abs_diff"] <= TOLERANCE
        assert result["cold_start"]["cold_start_s"] > 0
        assert result["steady_state"]["per_sentence_p50_ms"] > 0
    assert measured["edge"]["int8_ops"]["MatMulInteger"] > 0


@needs("node")
@pytest.mark.parametrize("options", [[], ["--on-error", "stop"], ["--format", "jsonl"]])
def test_predict_mjs_prints_predict_py_lines(bundle, tmp_path, options):
    """Byte for byte on eval rows and on lines it cannot read (bad UTF-8, a JSON object without
    the text column): keys, label order, 6-decimal probabilities, error lines and messages."""
    rows = tmp_path / "rows.jsonl"
    good = (bundle / "eval.jsonl").read_bytes().splitlines()[:40]
    bad = [b"ab\xe9x", b"\xed\xa0\x80z", b"end\xe2\x82", b"", b'{"txt": 1}', b"plain words"]
    rows.write_bytes(b"\n".join(good[:20] + bad + good[20:]) + b"\n")
    args = ["--input", str(rows), "--order", "input", "--batch-size", "8", *options]
    python = subprocess.run(
        [sys.executable, str(bundle / "predict.py"), *args], capture_output=True, text=True
    )
    modules = runtimes_node.node_modules(bundle, find_tools("node")["npm"])
    with runtimes_node.staged(bundle, modules) as copy:
        node = subprocess.run(
            ["node", str(copy / "predict.mjs"), *args], capture_output=True, text=True
        )
    assert node.returncode == python.returncode == (2 if options[:1] == ["--on-error"] else 1)
    assert node.stdout == python.stdout and node.stderr == python.stderr
    assert "not valid UTF-8 (byte 0xe9 at column 3)" in node.stdout + node.stderr


@pytest.mark.parametrize("runtime", ["node", "browser", "ort"])
def test_verify_runtime_passes_on_the_bundle(bundle, runtime, capsys):
    if runtime != "ort" and available(runtime):
        pytest.skip(available(runtime))
    assert cli.main(["bundle", "--verify", str(bundle), "--runtime", runtime]) == 0
    out = capsys.readouterr().out
    rows = json.loads((bundle / "reference.json").read_text())["rows"]
    assert f"{runtime}: same predictions as predict.py on {rows} rows" in out


@pytest.mark.parametrize("runtime", ["node", "browser"])
def test_a_wrong_label_order_in_the_js_runner_fails_the_check(bundle, tmp_path, runtime):
    """Only the runtime check can catch it: SHA256SUMS is rewritten, predict.py is untouched."""
    if available(runtime):
        pytest.skip(available(runtime))
    copy = copy_of(bundle, tmp_path)
    source = (copy / "classifier.mjs").read_text()
    tampered = source.replace(
        "this.labels = config.labels;", "this.labels = [...config.labels].reverse();"
    )
    assert tampered != source
    (copy / "classifier.mjs").write_text(tampered)
    write_sha256sums(copy)
    verify_bundle(copy, echo=lambda _: None)  # predict.py alone still passes
    with pytest.raises(BundleError, match=f"{runtime} disagrees with predict.py on .* rows"):
        verify_bundle(copy, echo=print, also=runtimes.verify_also(copy, [runtime], print))


def test_without_node_or_chromium_the_checks_skip_with_the_install_command(
    bundle, tmp_path, monkeypatch, capsys
):
    empty = tmp_path / "empty"
    empty.mkdir()
    for runtime in ("node", "browser"):
        with pytest.raises(RuntimeSkipped, match=r"not found on PATH; install with `apt-get"):
            find_tools(runtime, path=str(empty))
    monkeypatch.setenv("PATH", str(empty))  # predict.py runs by sys.executable, an absolute path
    assert (
        cli.main(["bundle", "--verify", str(bundle), "--runtime", "node", "--runtime", "browser"])
        == 0
    )
    out = capsys.readouterr().out
    assert out.count(f"install with `{INSTALL}`") == 2 and "verify: ok" in out


def test_runtimes_refuse_what_they_cannot_run_with_the_reason(bundle, tmp_path):
    config = json.loads((bundle / "distillery.json").read_text())
    openvino = {**config, "engine": "openvino", "model": "model.xml"}
    for runtime in ("node", "browser", "ort"):
        assert "OpenVINO IR (model.xml) runs only in OpenVINO" in unsupported(openvino, runtime)
    tags = {**config, "task_type": "token_classification"}
    assert "word_ids" in unsupported(tags, "node") and unsupported(tags, "ort") is None
    copy = copy_of(bundle, tmp_path)
    (copy / "distillery.json").write_text(json.dumps(tags))
    with pytest.raises(RuntimeUnsupported, match="node: task_type token_classification"):
        check_runtime(copy, "node", copy / "eval.jsonl", [], batch_size=32)
    if available("node") is None:  # predict.mjs itself refuses, exit 2, saying why
        modules = runtimes_node.node_modules(bundle, find_tools("node")["npm"])
        with runtimes_node.staged(copy, modules) as staged:
            done = subprocess.run(
                ["node", str(staged / "predict.mjs")],
                input="a sentence\n",
                capture_output=True,
                text=True,
            )
        assert done.returncode == 2 and "word_ids" in done.stderr


def test_the_ort_check_requires_predict_py_answers(bundle, tmp_path):
    """model.ort run by onnxruntime is held to predict.py's answers: other answers fail."""
    copy = copy_of(bundle, tmp_path)
    rows = copy / "eval.jsonl"
    expected = run_predict(copy, rows, order="input", batch_size=32)
    labels = json.loads((copy / "distillery.json").read_text())["labels"]
    flipped = [{**r, "label": next(k for k in labels if k != r["label"])} for r in expected]
    n = len(expected)
    with pytest.raises(BundleError, match=f"ort disagrees with predict.py on {n} of {n} rows"):
        check_runtime(copy, "ort", rows, flipped, batch_size=32)


@needs("node")
def test_js_truncation_matches_hf_tokenizers_on_pairs(bundle, tmp_path):
    """longest_first truncation is written by hand in classifier.mjs: it must cut pairs and
    single texts exactly as the Rust tokenizers do, at several max lengths."""
    import random

    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(bundle / "tokenizer.json"))
    words = [w for w in tok.get_vocab() if not w.startswith("[")][:200] + ["naïve", "日本", "x-y"]
    rng = random.Random(0)
    cases = []
    for i in range(300):
        texts = [" ".join(rng.choices(words, k=rng.randint(0, 30))) for _ in range(1 + i % 2)]
        for limit in (8, 24, 50):
            tok.no_padding()
            tok.enable_truncation(max_length=limit)
            e = tok.encode(*texts)
            cases.append({"texts": texts, "limit": limit, "ids": e.ids, "types": e.type_ids})
    (tmp_path / "cases.json").write_text(json.dumps(cases))
    script = tmp_path / "check.mjs"
    script.write_text(
        """
import { readFileSync } from "node:fs";
import { Tokenizer } from "@huggingface/tokenizers";
import { Classifier } from "./bundle/classifier.mjs";
const [cases, tj] = [process.argv[2], process.argv[3]].map((p) => JSON.parse(readFileSync(p)));
const session = { outputNames: ["logits"], inputNames: ["input_ids"] };
const tok = new Tokenizer(tj, {});
const wrong = cases.filter((c) => {
  const e = new Classifier(null, tok, session, { max_length: c.limit, labels: [] }).encode(c.texts);
  return JSON.stringify([e.ids, e.typeIds]) !== JSON.stringify([c.ids, c.types]);
});
console.log(JSON.stringify({ cases: cases.length, wrong: wrong.slice(0, 2) }));
"""
    )
    modules = runtimes_node.node_modules(bundle, find_tools("node")["npm"])
    with runtimes_node.staged(bundle, modules) as copy:
        shutil.copy2(script, copy.parent / "check.mjs")
        (copy.parent / "node_modules").symlink_to(modules)
        done = subprocess.run(
            [
                "node",
                str(copy.parent / "check.mjs"),
                str(tmp_path / "cases.json"),
                str(bundle / "tokenizer.json"),
            ],
            capture_output=True,
            text=True,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"cases": 900, "wrong": []}


def test_compare_holds_every_key_exactly_and_floats_to_the_tolerance():
    from pipelines.bundle.runtimes import compare

    row = {"line": 1, "label": "pos", "probabilities": {"neg": 0.2, "pos": 0.8}}
    near = {**row, "probabilities": {"neg": 0.20005, "pos": 0.79995}}
    result = compare([row], [near], "node")
    assert result["agreement"] == 1.0 and result["max_abs_diff"] == pytest.approx(5e-5)
    tags = {"line": 1, "words": ["a", "b"], "tags": ["B-X", "O"], "entities": []}
    wrong = [
        ([row], [{**row, "probabilities": {"neg": 0.2003, "pos": 0.7997}}]),  # off by 3e-4
        ([row], [{**row, "probabilities": {"pos": 0.8, "neg": 0.2}}]),  # label order
        ([row], [{"label": "pos", "line": 1, "probabilities": row["probabilities"]}]),  # keys
        ([row], [{**row, "label": "neg"}]),
        ([tags], [{**tags, "tags": ["O", "O"]}]),
    ]
    for expected, got in wrong:
        with pytest.raises(BundleError, match="node disagrees with predict.py on 1 of 1 rows"):
            compare(expected, got, "node")


def test_the_browser_on_an_int8_graph_is_held_to_labels_and_its_stated_tolerance(tmp_path):
    """onnxruntime-web's WebAssembly int8 kernels round differently from the x86 ones: on an
    int8 graph the browser gets BROWSER_INT8_TOLERANCE, every other case TOLERANCE, and a
    label that differs fails at any tolerance."""
    import onnx
    from onnx import TensorProto, helper

    from pipelines.bundle.agreement import BROWSER_INT8_TOLERANCE, tolerance_for
    from pipelines.bundle.runtimes import compare

    def graph(path, op):
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
        y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
        outputs = ["y"] if op == "Identity" else ["y", "s", "z"]
        node = helper.make_node(op, ["x"], outputs)
        onnx.save(helper.make_model(helper.make_graph([node], "g", [x], [y])), path)
        return path

    int8, fp32 = (
        graph(tmp_path / "q.onnx", "DynamicQuantizeLinear"),
        graph(tmp_path / "f.onnx", "Identity"),
    )
    assert tolerance_for("browser", int8) == BROWSER_INT8_TOLERANCE
    assert tolerance_for("browser", fp32) == TOLERANCE
    assert tolerance_for("node", int8) == TOLERANCE
    row = {"line": 1, "label": "pos", "probabilities": {"neg": 0.2, "pos": 0.8}}
    near = {**row, "probabilities": {"neg": 0.25, "pos": 0.75}}
    assert compare([row], [near], "browser", BROWSER_INT8_TOLERANCE)["max_abs_diff"] > TOLERANCE
    with pytest.raises(BundleError, match="within 0.0001"):
        compare([row], [near], "browser")
    flipped = {**row, "label": "neg", "probabilities": {"neg": 0.51, "pos": 0.49}}
    with pytest.raises(BundleError, match="browser disagrees"):
        compare([row], [flipped], "browser", BROWSER_INT8_TOLERANCE)


def test_a_near_tie_may_change_sides_in_the_browser_within_the_int8_tolerance():
    """predict.py prints a single-label row's top score only; the page prints every label's.
    A label that differs passes under the int8 tolerance only when the browser's probability of
    predict.py's label is within it of predict.py's score, is counted, and more than
    MAX_LABEL_FLIPS of the rows fail; under TOLERANCE a flip always fails."""
    from pipelines.bundle.agreement import BROWSER_INT8_TOLERANCE, MAX_LABEL_FLIPS, flips_note
    from pipelines.bundle.runtimes import compare

    def py(i, label, score):
        return {"line": i, "label": label, "score": score}

    def page(i, neg):
        label = "neg" if neg >= 0.5 else "pos"
        return {**py(i, label, max(neg, 1 - neg)), "probabilities": {"neg": neg, "pos": 1 - neg}}

    rows = 100
    expected = [py(i, "pos", 0.9) for i in range(rows)]
    got = [page(i, 0.1) for i in range(rows)]
    expected[7], got[7] = py(7, "neg", 0.517), page(7, 0.437)  # the SST-2 MiniLM int8's row 58
    result = compare(expected, got, "browser", BROWSER_INT8_TOLERANCE)
    assert result["label_flips"] == 1 and result["agreement"] == pytest.approx(0.99)
    assert result["max_abs_diff"] == pytest.approx(0.08)
    assert "1 near-tie" in flips_note(result)
    with pytest.raises(BundleError, match="within 0.0001"):
        compare(expected, got, "browser")  # an fp32 graph: no flip passes
    far = [*expected[:7], py(7, "neg", 0.9), *expected[8:]]
    far_got = [*got[:7], page(7, 0.2), *got[8:]]  # neg 0.9 -> 0.2: not a near-tie
    with pytest.raises(BundleError, match="1 of 100 rows"):
        compare(far, far_got, "browser", BROWSER_INT8_TOLERANCE)
    many = int(MAX_LABEL_FLIPS * rows) + 1
    ties = [py(i, "neg", 0.52) if i < many else py(i, "pos", 0.9) for i in range(rows)]
    tie_got = [page(i, 0.45) if i < many else page(i, 0.1) for i in range(rows)]
    with pytest.raises(BundleError, match=f"{many} of 100 rows"):
        compare(ties, tie_got, "browser", BROWSER_INT8_TOLERANCE)
