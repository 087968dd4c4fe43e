"""Prove an edge bundle is what its run made, or fail: SHA256SUMS, reference.json, predict.py.

    distillery bundle --verify runs/demo/bundle                       # rows from its eval.jsonl
    distillery bundle --verify runs/demo/bundle recipes/demo.yaml     # + the run's own records
    distillery bundle --verify runs/demo/bundle --data labelled.jsonl # + accuracy on other rows

The proof, each step failing with one line: SHA256SUMS lists regular files inside the folder
(`sums.py`); distillery.json and reference.json hold every key the check reads (a reference without
its predictions hash would compare predictions with themselves); with a RECIPE, the run's records
under --runs-dir (the bundle stage's and the artifact stage's manifests, `records.py`) are the
reference, so a bundle whose sums and reference were redone after its model changed fails; and
predict.py, in a fresh interpreter, reproduces the recorded accuracy and predictions exactly on
the rows they were recorded on: the recipe's eval split, else the bundle's `eval.jsonl` (shipped
unless `bundle.include_eval: false`); other rows there fail. `--data FILE` (JSON lines holding the
text column(s) and the label) adds the accuracy on those rows, reported, not compared, unless
they are the recorded rows. The helpers here and in `rows.py` (labelled rows, fingerprints,
predictions per task type) are shared with the bundle stage, which runs the same check before it
writes SHA256SUMS.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modelkit.task_types import TASK_TYPES
from pipelines.bundle.labelled_rows import (
    fingerprint,
    predicted_values,
    predictions_hash,
    read_rows,
    recipe_rows,
    write_rows,
)
from pipelines.bundle.records import differences
from pipelines.bundle.sums import (  # noqa: F401 (re-exported: the bundle stage and push use them)
    REBUILD,
    RUN_RECORDS,
    SUMS,
    BundleError,
    bundle_files,
    check_sha256sums,
    read_sha256sums,
    write_sha256sums,
)
from pipelines.core.errors import file_error_message

# The bundle's own settings (labels, columns, engine, padding): what predict.py, verify and the
# JS runners read. config.json beside it is the model's Hugging Face config, so optimum's
# ORTModel and transformers' pipeline() load the folder.
SETTINGS = "distillery.json"


def settings_name(folder: Path) -> str:
    """distillery.json, or config.json in a bundle built before the settings had their own file."""
    return SETTINGS if (Path(folder) / SETTINGS).is_file() else "config.json"


PREDICT_TIMEOUT_S = 1800.0


def run_predict(
    folder: Path,
    input_path: Path,
    *,
    order: str = "length",
    batch_size: int | None = None,
    threads: int | None = None,
    python: str = sys.executable,
) -> list[dict[str, Any]]:
    """The bundle's predict.py on `input_path`, in a fresh interpreter; one result per row."""
    cmd = [python, str(folder / "predict.py"), "--input", str(input_path), "--order", order]
    if batch_size:
        cmd += ["--batch-size", str(batch_size)]
    if threads:
        cmd += ["--threads", str(threads)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PREDICT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise BundleError(
            f"{folder}/predict.py did not finish within {PREDICT_TIMEOUT_S:.0f} s"
        ) from None
    if done.returncode != 0:
        raise BundleError(
            f"{folder}/predict.py failed (exit {done.returncode}): {done.stderr.strip()[-800:]}"
        )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


# ---------------------------------------------------------------- verify

# What reference.json must hold for a comparison to prove anything (a key left out would make
# verify compare the predictions with themselves): key → (check, what it is).
REFERENCE_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "artifact": (lambda v: isinstance(v, str) and bool(v), "the artifact's name"),
    "accuracy": (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number"),
    "rows": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "a row count"),
    "eval_fingerprint": (lambda v: isinstance(v, str) and len(v) == 64, "a sha256"),
    "predictions_sha256": (lambda v: isinstance(v, str) and len(v) == 64, "a sha256"),
    "order": (lambda v: v in ("input", "length"), "'input' or 'length'"),
    "batch_size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0, "> 0"),
}
CONFIG_KEYS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "model": (  # a file of the bundle (covered by SHA256SUMS), never a path out of it
        lambda v: (
            isinstance(v, str) and v not in ("", ".", "..") and "/" not in v and "\\" not in v
        ),
        "a file name in the bundle folder",
    ),
    "text_columns": (
        lambda v: isinstance(v, list) and v and all(isinstance(c, str) for c in v),
        "a list of column names",
    ),
    "labels": (
        lambda v: isinstance(v, list) and v and all(isinstance(c, str) for c in v),
        "a list of label names",
    ),
}


def read_bundle_json(folder: Path, name: str, keys: dict) -> dict[str, Any]:
    """A bundle's JSON file, every key in `keys` present and well-formed; BundleError if not."""
    path = folder / name
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path}: {file_error_message(exc)}. {REBUILD}") from None
    if not isinstance(value, dict):
        raise BundleError(f"{path}: not a JSON object. {REBUILD}")
    bad = [f"{k} ({what})" for k, (ok, what) in keys.items() if k not in value or not ok(value[k])]
    if bad:
        raise BundleError(
            f"{path}: incomplete: {', '.join(bad)} missing or malformed, so the bundle cannot "
            f"be checked against what the run recorded. {REBUILD}"
        )
    return value


def verify_bundle(
    folder: Path,
    data: Path | None = None,
    recipe=None,
    echo: Callable[[str], None] = print,
    runs_dir: Path | None = None,
    also: Callable[[Path, list[dict[str, Any]]], Any] | None = None,
) -> dict[str, Any]:
    """Prove the bundle is what the run made, else BundleError: SHA256SUMS (regular files inside
    the folder), a complete reference.json, and predict.py reproducing its recorded accuracy and
    predictions on the rows it was recorded on (the recipe's eval split, else the bundle's
    eval.jsonl; other rows there fail). With `runs_dir` (and the recipe), the run's own records
    are the reference: the bundle stage's manifest and the artifact's stage manifest. `--data`
    rows that are not the recorded ones are reported beside the proof, not compared.
    `also(rows file, predict.py's answers)`: a further check on the same rows (Node, a browser)."""
    folder = Path(folder)
    if not (folder / "predict.py").is_file() and not (folder / SUMS).is_file():
        raise BundleError(
            f"{folder}: not a bundle (no predict.py, no {SUMS}). Bundles are built with "
            "`distillery bundle RECIPE` into runs/<name>/bundle/."
        )
    checked = check_sha256sums(folder)
    echo(f"{folder}: {SUMS} ok ({len(checked)} files)")
    config = read_bundle_json(folder, settings_name(folder), CONFIG_KEYS)
    reference = read_bundle_json(folder, "reference.json", REFERENCE_KEYS)
    if runs_dir is not None:
        if recipe is None:
            raise BundleError("--runs-dir: give the RECIPE too, to find the run's records.")
        run = Path(runs_dir) / recipe.name
        problems = differences(run, read_sha256sums(folder), reference)
        if problems:
            raise BundleError(
                f"{folder}: not what run {run} recorded: {'; '.join(problems)}. Changed after it "
                f"was built (its {SUMS} redone to match), or another run's bundle: {REBUILD} "
                "(Or give --runs-dir where its run lives.)"
            )
        echo(f"{folder}: the files and reference are the ones run '{recipe.name}' recorded")
    if recipe is not None:
        proof, where = recipe_rows(recipe), f"the eval split of recipe '{recipe.name}'"
    elif (folder / "eval.jsonl").is_file():
        proof, where = read_rows(folder / "eval.jsonl", config), "the bundle's eval.jsonl"
    else:
        proof, where = None, ""
    extra = read_rows(Path(data), config) if data is not None else None
    if proof is None and extra is not None and fingerprint(extra) == reference["eval_fingerprint"]:
        proof, where, extra = extra, f"--data {data}", None
    if proof is None:
        raise BundleError(
            f"{folder}: no eval.jsonl in the bundle (built with bundle.include_eval: false) and "
            "no recorded rows to prove it on; pass the recipe (distillery bundle --verify DIR "
            "RECIPE)."
        )
    summary = _compare(folder, proof, where, config, reference, echo, also)
    if extra is not None and fingerprint(extra) != fingerprint(proof):
        summary = _score(folder, extra, f"--data {data}", config, reference)
        echo(
            f"{folder}: predict.py on {len(extra)} rows (--data {data}): accuracy "
            f"{summary['accuracy']:.4f}. Not compared: these are not the {reference['rows']} rows "
            f"{reference['artifact']} was recorded on (those were, above)."
        )
    return {**summary, "files": checked}


def _score(
    folder: Path, rows, where: str, config: dict, reference: dict, also=None
) -> dict[str, Any]:
    """predict.py on `rows` as reference.json says it was recorded; accuracy and hash. `also`
    (verify_bundle's) checks the same rows in another runtime."""
    kind = config.get("task_type", "single_label")
    with tempfile.TemporaryDirectory(prefix="distillery-verify-") as tmp:
        path = write_rows(
            Path(tmp) / "rows.jsonl", rows, config["text_columns"], config["labels"], kind
        )
        results = run_predict(
            folder, path, order=reference["order"], batch_size=reference["batch_size"]
        )
        if also is not None:  # the same rows elsewhere: Node, a browser (bundle/runtimes.py)
            also(path, results)
    if len(results) != len(rows):
        raise BundleError(f"{folder}/predict.py returned {len(results)} rows for {len(rows)}.")
    try:
        predicted = predicted_values(results, config)
    except (KeyError, ValueError, TypeError) as exc:
        raise BundleError(
            f"{folder}/predict.py answered outside the bundle's labels: {exc}"
        ) from None
    gold = [label for _, label in rows]
    accuracy = TASK_TYPES[kind].score_values(
        predicted, gold, len(config["labels"]), config["labels"]
    )
    return {
        "rows": len(rows),
        "source": where,
        "accuracy": accuracy,
        "recorded_accuracy": reference["accuracy"],
        "same_rows": fingerprint(rows) == reference["eval_fingerprint"],
        "predictions_sha256": predictions_hash(predicted),
    }


def _compare(folder, rows, where, config, reference, echo, also=None) -> dict[str, Any]:
    """The proof: on the recorded rows, the recorded accuracy and predictions, exactly."""
    name = reference["artifact"]
    if fingerprint(rows) != reference["eval_fingerprint"]:
        raise BundleError(
            f"{folder}: {where} ({len(rows)} rows) are not the {reference['rows']} rows {name} "
            "was recorded on (their fingerprint differs from reference.json's), so predict.py "
            "cannot be checked against the record. An edited eval.jsonl, or a recipe that is not "
            f"this bundle's: {REBUILD}"
        )
    summary = _score(folder, rows, where, config, reference, also)
    if (
        summary["accuracy"] != reference["accuracy"]
        or summary["predictions_sha256"] != reference["predictions_sha256"]
    ):
        raise BundleError(
            f"{folder}/predict.py on {len(rows)} rows ({where}): accuracy "
            f"{summary['accuracy']:.6f}, but {name} recorded {reference['accuracy']:.6f} on the "
            f"same rows (predictions sha256 {summary['predictions_sha256'][:12]}, recorded "
            f"{reference['predictions_sha256'][:12]}). Same model, tokenizer and batching must "
            "give the same predictions: check the runtime and tokenizers versions against "
            "requirements.txt."
        )
    echo(
        f"{folder}: predict.py on {len(rows)} rows ({where}): accuracy "
        f"{summary['accuracy']:.4f} = {name}'s recorded accuracy; predictions identical "
        f"(sha256 {summary['predictions_sha256'][:12]})."
    )
    return summary
