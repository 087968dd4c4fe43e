"""Bundle stage: one ONNX artifact → `runs/<name>/bundle/`, a folder that runs on an edge device.

setup (the artifact: `bundle.artifact`, else the report's recommendation) → copy model.onnx and
tokenizer.json; write distillery.json (the bundle's settings), the model's HF config.json,
predict.py, requirements.txt, eval.jsonl, reference.json, the JavaScript runner and page and
model.ort (pipelines/bundle/runtimes.py) →
check that the bundle's predict.py, in a fresh interpreter, reproduces the pipeline's predictions
on the eval split → time its cold start and steady-state latency in fresh processes → the same
check and timings in Node, headless Chromium and ORT Mobile, where installed → README.md
(the bundle's model card) → SHA256SUMS, written last. `distillery bundle --verify DIR` repeats
the check later (pipelines/bundle/verify.py).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from pipelines.bundle.card import bundle_card
from pipelines.bundle.labelled_rows import fingerprint, predictions_hash, split_rows, write_rows
from pipelines.bundle.latency import measure_cold_start, measure_steady_state
from pipelines.bundle.runtimes import check_all, write_edge_files
from pipelines.bundle.verify import RUN_RECORDS, SUMS, write_sha256sums
from pipelines.bundle.writer import (
    artifact_tokenizer,
    check_bundle_predictions,
    choose_artifact,
    clear,
    model_files,
    reference_predictions,
    requirements,
    write_files,
)
from pipelines.core import progress
from pipelines.core.context import StageContext, StageResult
from pipelines.core.runs import atomic_write_json, atomic_write_text

log = logging.getLogger("distillery")


def main(ctx: StageContext) -> StageResult:
    r, b, out = ctx.recipe, ctx.recipe.bundle, ctx.out
    artifact, chosen_by = choose_artifact(ctx)
    log.info("bundling %s (%s), chosen by %s", artifact.name, artifact.path, chosen_by)
    tokenizer, tok_folder = artifact_tokenizer(ctx, artifact)
    clear(out)
    config = write_files(ctx, artifact, tokenizer, tok_folder)
    edge = write_edge_files(out, config)  # predict.mjs, index.html, package.json; model.ort

    rows = split_rows(ctx.data().eval, r.task)
    reference = reference_predictions(ctx, artifact, tokenizer)
    record = {
        "artifact": artifact.name,
        "accuracy": reference["accuracy"],
        "recorded_accuracy": artifact.accuracy,
        "rows": len(rows),
        "eval_fingerprint": fingerprint(rows),
        "predictions_sha256": predictions_hash(reference["predicted"]),
        "order": "input",
        "batch_size": reference["batch_size"],
    }
    atomic_write_json(out / "reference.json", record)
    if b.include_eval:
        write_rows(out / "eval.jsonl", rows, config["text_columns"], config["labels"], r.task.type)

    measured = check_and_time(ctx, rows, reference, config) | {"edge": edge}
    atomic_write_text(
        out / "README.md", bundle_card(ctx, artifact, chosen_by, config, record, measured)
    )
    sums = seal(out)
    sizes = {name: (out / name).stat().st_size for name in [*sums, SUMS]}
    model_bytes = sum(sizes.get(n, 0) for n in model_files(artifact))
    cold, steady = measured["cold_start"], measured["steady_state"]
    metrics = {
        "artifact": artifact.name,
        "accuracy": record["accuracy"],
        "recorded_accuracy": artifact.accuracy,
        "bundle_mb": sum(sizes.values()) / 2**20,
        "model_mb": model_bytes / 2**20,
        "cold_start_s": cold["cold_start_s"],
        "startup_import_s": cold["startup_import_s"],
        "session_s": cold["session_s"],
        "first_prediction_s": cold["first_prediction_s"],
        "per_sentence_p50_ms": steady["per_sentence_p50_ms"],
        "single_p50_ms": steady["single_p50_ms"],
        "length_batched_agreement": measured["length_batched_agreement"],
    }
    files = {name: name for name in sums}
    files[SUMS] = SUMS
    return StageResult(
        metrics=metrics,
        artifacts=files,
        extra={
            "bundle": {
                "artifact": artifact.to_dict(),
                "chosen_by": chosen_by,
                "reference": record,
                "measured": measured,
                "sha256": sums,
                "size_bytes": sizes,
                "requirements": requirements(config["engine"]).split(),
                "not_in_sums": list(RUN_RECORDS),
            }
        },
    )


def check_and_time(ctx: StageContext, rows, reference: dict, config: dict) -> dict:
    """The bundle's predict.py, in fresh processes, on the eval rows: its predictions checked
    against the pipeline's (raises when they differ), its cold start and steady state timed."""
    r, b, out = ctx.recipe, ctx.recipe.bundle, ctx.out
    with (
        tempfile.TemporaryDirectory(prefix="distillery-bundle-") as tmp,
        progress.step("check predict.py", 4, "checks") as shown,
    ):
        shown.note("predictions")
        eval_path = write_rows(
            Path(tmp) / "eval.jsonl", rows, config["text_columns"], r.task.labels, r.task.type
        )
        agreement = check_bundle_predictions(out, eval_path, reference, config)
        sample = write_rows(
            Path(tmp) / "sample.jsonl",
            rows[: b.latency_sentences],
            config["text_columns"],
            r.task.labels,
            r.task.type,
        )
        first_line = sample.read_text().splitlines()[0]
        shown.advance()
        shown.note("cold start")
        cold = measure_cold_start(out, first_line, b.cold_start_runs, b.threads)
        shown.advance()
        shown.note("steady state")
        steady = measure_steady_state(out, sample, b.latency_repeats, b.threads)
        shown.advance()
        measured = {
            "threads": b.threads,
            "length_batched_agreement": agreement,
            "cold_start": cold,
            "steady_state": steady,
        }
        timing = {"sample": sample, "cold_start_runs": b.cold_start_runs}
        timing |= {"repeats": b.latency_repeats, "threads": b.threads}
        # Node, the browser, ORT Mobile against predict.py (skipped where not installed)
        shown.note("other runtimes")
        measured["runtimes"] = check_all(out, eval_path, reference["batch_size"], timing, log.info)
        shown.advance()
        return measured


def seal(out: Path) -> dict[str, str]:
    """Permissions a device user can read, then SHA256SUMS over every file (written last)."""
    for path in out.iterdir():  # temporary-file writes leave 0600; a device user must read them
        if path.name not in RUN_RECORDS:
            path.chmod(0o755 if path.name in ("predict.py", "predict.mjs") else 0o644)
    sums = write_sha256sums(out)  # last: it covers every file written above
    (out / SUMS).chmod(0o644)
    return sums
