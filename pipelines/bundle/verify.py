"""Check an edge bundle: its SHA256SUMS, then the accuracy of its predict.py on the eval split.

    distillery bundle --verify runs/demo/bundle                       # rows from its eval.jsonl
    distillery bundle --verify runs/demo/bundle recipes/demo.yaml     # the recipe's eval split
    distillery bundle --verify runs/demo/bundle --data labelled.jsonl # any labelled rows

Where the rows come from, first found: `--data FILE` (JSON lines holding the text column(s) and the
label, as a name or an index, under the recipe's label column or `label`); the recipe's eval split,
loaded as the pipeline loads it; the bundle's own `eval.jsonl` (shipped unless
`bundle.include_eval: false`). The bundle's `reference.json` holds no labels: the artifact's
recorded accuracy, the fingerprint of the rows it was recorded on and a hash of its predictions.
On those same rows predict.py must reproduce both exactly; on other rows the accuracy is reported,
not compared. The helpers here (checksums, running predict.py) and in `rows.py` (labelled rows,
fingerprints, predictions per task type) are shared with the bundle stage, which runs the same
check before it writes SHA256SUMS.
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
from pipelines.bundle.rows import (
    fingerprint,
    predicted_values,
    predictions_hash,
    read_rows,
    recipe_rows,
    write_rows,
)
from pipelines.core.errors import DistilleryError
from pipelines.core.runs import atomic_write_text, sha256_file

SUMS = "SHA256SUMS"
RUN_RECORDS = ("manifest.json", "log.txt")  # the pipeline's records of the stage, not bundle files
PREDICT_TIMEOUT_S = 1800.0


class BundleError(DistilleryError):
    """A bundle is incomplete, altered, or its predict.py disagrees with its reference."""


# ---------------------------------------------------------------- checksums


def bundle_files(folder: Path) -> list[str]:
    """Every file of the bundle (posix paths relative to it), SHA256SUMS and run records aside."""
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.relative_to(folder).as_posix() not in (SUMS, *RUN_RECORDS)
    )


def write_sha256sums(folder: Path) -> dict[str, str]:
    """Write SHA256SUMS in `sha256sum` format ("<hex>  <name>"), so `sha256sum -c` checks it too."""
    sums = {name: sha256_file(folder / name) for name in bundle_files(folder)}
    atomic_write_text(folder / SUMS, "".join(f"{h}  {name}\n" for name, h in sums.items()))
    return sums


def read_sha256sums(folder: Path) -> dict[str, str]:
    path = folder / SUMS
    if not path.is_file():
        raise BundleError(
            f"{path}: missing, so nothing in {folder} can be checked. Rebuild the bundle "
            "(distillery bundle RECIPE --force)."
        )
    sums = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep:  # `sha256sum -b` writes "<hex> *<name>"
            digest, sep, name = line.partition(" *")
        if not sep or len(digest) != 64 or not name:
            raise BundleError(f"{path}: line {number} is not '<sha256>  <file>': {line[:80]!r}")
        sums[name] = digest.lower()
    return sums


def check_sha256sums(folder: Path) -> list[str]:
    """The files checked; BundleError naming every missing, altered or unlisted file."""
    sums = read_sha256sums(folder)
    problems = []
    for name, expected in sums.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{path}: listed in {SUMS} but missing")
        elif sha256_file(path) != expected:
            problems.append(
                f"{path}: altered after the bundle was built (sha256 differs from {SUMS})"
            )
    # A stray file matters: a numpy.py beside predict.py would be imported ahead of numpy.
    problems += [
        f"{folder / n}: not listed in {SUMS}" for n in bundle_files(folder) if n not in sums
    ]
    if problems:
        raise BundleError(
            "; ".join(problems) + ". Restore the bundle from its source, or rebuild it with "
            "`distillery bundle RECIPE --force`."
        )
    return list(sums)


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


def verify_bundle(
    folder: Path,
    data: Path | None = None,
    recipe=None,
    echo: Callable[[str], None] = print,
    also: Callable[[Path, list[dict[str, Any]]], Any] | None = None,
) -> dict[str, Any]:
    """Checksums, then predict.py's accuracy against reference.json; BundleError on a mismatch.
    `also(rows file, predict.py's answers)`: a further check on the same rows."""
    folder = Path(folder)
    if not (folder / "predict.py").is_file() and not (folder / SUMS).is_file():
        raise BundleError(
            f"{folder}: not a bundle (no predict.py, no {SUMS}). Bundles are built with "
            "`distillery bundle RECIPE` into runs/<name>/bundle/."
        )
    checked = check_sha256sums(folder)
    echo(f"{folder}: {SUMS} ok ({len(checked)} files)")
    config = json.loads((folder / "config.json").read_text())
    reference = json.loads((folder / "reference.json").read_text())
    if data is not None:
        rows, where = read_rows(Path(data), config), f"--data {data}"
    elif recipe is not None:
        rows, where = recipe_rows(recipe), f"the eval split of recipe '{recipe.name}'"
    elif (folder / "eval.jsonl").is_file():
        rows, where = read_rows(folder / "eval.jsonl", config), "the bundle's eval.jsonl"
    else:
        raise BundleError(
            f"{folder}: no eval.jsonl in the bundle (built with bundle.include_eval: false); pass "
            "the recipe (distillery bundle --verify DIR RECIPE) or --data FILE."
        )
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
    predicted = predicted_values(results, config)
    gold = [label for _, label in rows]
    accuracy = TASK_TYPES[kind].score_values(
        predicted, gold, len(config["labels"]), config["labels"]
    )
    same_rows = fingerprint(rows) == reference["eval_fingerprint"]
    summary = {
        "rows": len(rows),
        "source": where,
        "accuracy": accuracy,
        "recorded_accuracy": reference["accuracy"],
        "same_rows": same_rows,
        "predictions_sha256": predictions_hash(predicted),
    }
    name = reference["artifact"]
    if not same_rows:
        echo(
            f"{folder}: predict.py on {len(rows)} rows ({where}): accuracy {accuracy:.4f}. Not "
            f"compared with {name}'s recorded {reference['accuracy']:.4f}: these are not the "
            f"{reference['rows']} rows it was recorded on (fingerprint differs)."
        )
        return summary
    if accuracy != reference["accuracy"] or summary["predictions_sha256"] != reference.get(
        "predictions_sha256", summary["predictions_sha256"]
    ):
        raise BundleError(
            f"{folder}/predict.py on {len(rows)} rows ({where}): accuracy {accuracy:.6f}, but "
            f"{name} recorded {reference['accuracy']:.6f} on the same rows (predictions sha256 "
            f"{summary['predictions_sha256'][:12]}, recorded "
            f"{str(reference.get('predictions_sha256'))[:12]}). Same model, tokenizer and "
            "batching must give the same predictions: check the runtime and tokenizers "
            "versions against requirements.txt."
        )
    echo(
        f"{folder}: predict.py on {len(rows)} rows ({where}): accuracy {accuracy:.4f} = "
        f"{name}'s recorded accuracy; predictions identical (sha256 "
        f"{summary['predictions_sha256'][:12]})."
    )
    return summary
