"""An ONNX bundle loads where Hugging Face users load models: optimum's ORTModel and
transformers' pipeline() answer as the bundle's own predict.py does; a bundle built before the
settings had their own file (distillery.json) still verifies."""

import json
import shutil
import subprocess
import sys

import pytest


def bundle_rows(bundle, count=8) -> list[str]:
    lines = (bundle / "eval.jsonl").read_text().splitlines()[:count]
    return [json.loads(line)["text"] for line in lines]


def predict_py(bundle, rows, *flags) -> list[dict]:
    done = subprocess.run(
        [sys.executable, str(bundle / "predict.py"), "--threads", "1", *flags],
        input="\n".join(json.dumps({"text": r}) for r in rows) + "\n",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


@pytest.mark.slow  # the session's tiny run through the bundle
def test_onnx_bundle_loads_with_optimum_and_pipeline(tiny_bundle):
    from optimum.onnxruntime import ORTModelForSequenceClassification
    from transformers import AutoTokenizer, pipeline

    tmp, _, _ = tiny_bundle
    bundle = tmp / "runs" / "tiny" / "bundle"
    settings = json.loads((bundle / "distillery.json").read_text())
    hf_config = json.loads((bundle / "config.json").read_text())
    assert hf_config["model_type"] and "auto_map" not in hf_config
    assert [hf_config["id2label"][str(i)] for i in range(2)] == settings["labels"]

    model = ORTModelForSequenceClassification.from_pretrained(bundle)
    classify = pipeline(
        "text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(bundle)
    )
    rows = bundle_rows(bundle)
    theirs = classify(rows, truncation=True, max_length=settings["max_length"])
    ours = predict_py(bundle, rows)
    assert [r["label"] for r in ours] == [t["label"] for t in theirs]
    assert [r["score"] for r in ours] == pytest.approx([t["score"] for t in theirs], abs=1e-4)
    assert all(set(r) == {"line", "label", "score"} for r in ours)  # probabilities on request
    asked = predict_py(bundle, rows, "--probabilities")
    for row, plain in zip(asked, ours, strict=True):
        assert set(row["probabilities"]) == set(settings["labels"])
        assert row["score"] == plain["score"] == max(row["probabilities"].values())


@pytest.mark.slow
def test_a_bundle_built_before_distillery_json_still_verifies(tiny_bundle, tmp_path):
    from pipelines.bundle.sums import write_sha256sums
    from pipelines.bundle.verify import verify_bundle
    from pipelines.core.errors import DistilleryError

    tmp, _, _ = tiny_bundle
    old = tmp_path / "old-bundle"
    shutil.copytree(tmp / "runs" / "tiny" / "bundle", old)
    (old / "distillery.json").replace(old / "config.json")  # the layout before: settings there
    (old / "tokenizer_config.json").unlink()
    (old / "special_tokens_map.json").unlink(missing_ok=True)
    write_sha256sums(old)
    summary = verify_bundle(old, echo=lambda _: None)
    assert summary["accuracy"] == json.loads((old / "reference.json").read_text())["accuracy"]
    settings = json.loads((old / "config.json").read_text())
    (old / "config.json").write_text(json.dumps({**settings, "labels": ["a"]}))
    write_sha256sums(old)
    with pytest.raises(DistilleryError, match=r"\['a'\]"):  # the old file is the one read
        verify_bundle(old, echo=lambda _: None)
