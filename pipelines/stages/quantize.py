"""Quantize stage: the fp32 student → int8 artifacts, each evaluated and gated on accuracy.

setup (export manifest, eval and calibration rows) → ORT dynamic (preset chosen for this CPU),
ORT static QDQ (bounded-memory calibration), Neural Compressor PT2E with autotune, OpenVINO +
NNCF (the [openvino] extra; skipped with the reason without it) → parity of each against the fp32
student on the eval split → the gate: artifacts over `quantize.max_drop` are kept but flagged;
the stage fails only when none passes. Beside them, the peer baseline: student and teacher
quantized exactly as `optimum-cli onnxruntime quantize` would (`quantize.peer`), evaluated the
same way, outside the gate: the report measures what the project adds against it.
"""

from __future__ import annotations

import logging
import shutil

import numpy as np

from export.parity import compare, onnx_logits, torch_logits
from modelkit.batching import label_array, padded_batches
from modelkit.onnx_graph import op_counts
from modelkit.task_types import TASK_TYPES
from pipelines.core.context import StageContext, StageResult
from pipelines.core.errors import StageFailedError
from pipelines.core.models import load_stage_model
from pipelines.core.runs import atomic_write_json
from pipelines.data.loading import tokenize
from pipelines.stages.quantize_inc import run_inc
from quantize.gate import QuantizationGateError, gate
from quantize.openvino import OVClassifier, openvino_logits, qdq_to_openvino, quantize_openvino
from quantize.openvino import available as openvino_available
from quantize.ort_dynamic import quantize_dynamic, quantized_op_count
from quantize.ort_static import quantize_static
from quantize.peer import quantize_like_optimum
from quantize.presets import resolve_preset

log = logging.getLogger("distillery")


def _onnx_source(ctx: StageContext, model: str, graph: str) -> str:
    exports = ctx.inputs["export"]["exports"]
    fused = [k for k in exports if k.startswith(f"{model}-onnx-")]
    name = fused[0] if graph == "fused" and fused else f"{model}-onnx"
    return str(ctx.input_dir("export") / exports[name]["path"] / "model.onnx")


def _calibration_rows(ctx: StageContext, tokenizer, samples: int):
    train = ctx.data().train
    rows = train.shuffle(seed=ctx.recipe.seed).select(range(min(samples, len(train))))
    return tokenize(rows, tokenizer, ctx.recipe)


def _task_scores(ctx: StageContext, tokenizer, artifacts: dict[str, dict]) -> None:
    """Adds `tasks` (per extra head: metrics) to each artifact's record; heads.json goes beside
    each artifact, for the bundle."""
    from distill.heads import HEADS_CONFIG
    from pipelines.multitask.evaluate import artifact_task_scores
    from pipelines.multitask.tasks import tokenized_tasks, transfer_tasks

    tasks = transfer_tasks(ctx.recipe, ctx.data())
    eval_sets = tokenized_tasks(tasks, tokenizer, "eval")
    for name, record in artifacts.items():
        folder = ctx.out / record["path"]
        who = "teacher" if name.startswith("teacher") else "distill"
        shutil.copy2(ctx.input_dir(who) / HEADS_CONFIG, folder / HEADS_CONFIG)
        record["tasks"] = artifact_task_scores(folder, tasks[1:], eval_sets[1:], tokenizer)
        log.info("%s: per-task %s", name, {k: v["score"] for k, v in record["tasks"].items()})


def main(ctx: StageContext) -> StageResult:
    r, q = ctx.recipe, ctx.recipe.quantize
    preset, reason = resolve_preset(q.preset)
    log.info("quantization preset %s: %s", preset.name, reason)
    model, tokenizer = load_stage_model(ctx.input_dir("distill"), ctx.recipe.security)
    eval_set = tokenize(ctx.data().eval, tokenizer, r)
    labels = label_array(eval_set["labels"])
    kind, names = r.task.type, list(r.task.labels)
    reference = torch_logits(model, eval_set, tokenizer)
    records: dict[str, dict] = {}

    def record(name: str, logits: np.ndarray, info: dict) -> None:
        report = compare(
            reference, logits, labels, atol=None, min_agreement=0.0, task_type=kind, names=names
        )
        records[name] = {"parity": report.to_dict(), "accuracy": report.accuracy_candidate, **info}
        log.info(
            "%s: accuracy %.4f, agreement %.4f", name, report.accuracy_candidate, report.agreement
        )

    knobs = {
        "per_channel": q.per_channel,
        "nodes_to_exclude": q.nodes_to_exclude,
        "operators_to_quantize": q.operators_to_quantize,
    }
    if "dynamic" in q.methods:
        out = ctx.out / "student-int8-dynamic" / "model.onnx"
        info = quantize_dynamic(_onnx_source(ctx, "student", q.dynamic_graph), out, preset, **knobs)
        record(
            "student-int8-dynamic",
            onnx_logits(out, eval_set, tokenizer),
            {"path": "student-int8-dynamic", **info},
        )
    if "static" in q.methods:
        out = ctx.out / "student-int8-static" / "model.onnx"
        rows = _calibration_rows(ctx, tokenizer, q.calibration.samples)
        info = quantize_static(
            _onnx_source(ctx, "student", "plain"),
            out,
            rows,
            method=q.calibration.method,
            samples=len(rows),
            batch_size=q.calibration.batch_size,
            preset=preset,
            per_channel=q.per_channel,
            nodes_to_exclude=q.nodes_to_exclude,
            pad_token_id=tokenizer.pad_token_id,
        )
        record(
            "student-int8-static",
            onnx_logits(out, eval_set, tokenizer),
            {"path": "student-int8-static", **info},
        )
    skipped: dict[str, str] = {}
    if "inc" in q.methods and TASK_TYPES[kind].token_level:
        skipped["student-int8-inc"] = (
            "Neural Compressor's path here quantizes a …ForSequenceClassification PyTorch model; "
            "token classifiers are quantized by the ONNX methods"
        )
    elif "inc" in q.methods:
        calibration = _calibration_rows(ctx, tokenizer, q.inc.calibration_samples)
        info, logits = run_inc(ctx, model, tokenizer, eval_set, labels, calibration)
        record("student-int8-inc", logits, {"path": "student-int8-inc", **info})
    qat = ctx.inputs["distill"].get("qat")
    if qat:  # trained with fake-quant in the distill stage: its QDQ graph is one more candidate
        out = ctx.out / "student-int8-qat"
        shutil.copytree(ctx.input_dir("distill") / qat["path"], out, dirs_exist_ok=True)
        counts = op_counts(out / "model.onnx")
        info = {
            "method": "qat",
            "library": qat.get("library"),
            "qat": qat,
            "op_counts": counts,
            "quantized_ops": quantized_op_count(counts),
            "size_bytes": (out / "model.onnx").stat().st_size,
        }
        record(
            "student-int8-qat", onnx_logits(out, eval_set, tokenizer), {"path": out.name, **info}
        )
    if qat and "openvino" in q.methods:  # the same QDQ graph, run by OpenVINO's int8 kernels
        missing = openvino_available()
        if missing:
            skipped["student-int8-qat-openvino"] = missing
        else:
            out = ctx.out / "student-int8-qat-openvino"
            info = qdq_to_openvino(ctx.out / "student-int8-qat" / "model.onnx", out)
            batches = (b for _, b in padded_batches(eval_set, tokenizer.pad_token_id, 32))
            logits = openvino_logits(OVClassifier(out), batches)
            record("student-int8-qat-openvino", logits, {"path": out.name, "qat": qat, **info})
    if "openvino" in q.methods:
        missing = openvino_available()
        if missing:
            skipped["student-int8-openvino"] = missing
            log.warning("quantize: openvino skipped: %s", missing)
        else:
            out = ctx.out / "student-int8-openvino"
            rows = _calibration_rows(ctx, tokenizer, q.calibration.samples)
            try:
                info = quantize_openvino(
                    _onnx_source(ctx, "student", "plain"),
                    out,
                    rows.select_columns([c for c in rows.column_names if c != "labels"]),
                    preset=q.openvino.preset,
                    pad_token_id=tokenizer.pad_token_id,
                )
                batches = (b for _, b in padded_batches(eval_set, tokenizer.pad_token_id, 32))
                logits = openvino_logits(OVClassifier(out), batches)
            except RuntimeError as exc:  # the plugin refused this graph (e.g. a folding check)
                shutil.rmtree(out, ignore_errors=True)
                reason = str(exc).strip().splitlines()
                skipped["student-int8-openvino"] = (
                    f"OpenVINO could not compile or run this graph: {reason[-1] if reason else exc}"
                )
                log.warning("quantize: openvino skipped: %s", skipped["student-int8-openvino"])
            else:
                record("student-int8-openvino", logits, {"path": out.name, **info})

    teacher_record = {}
    t_reference = None
    if q.teacher:
        t_model, _ = load_stage_model(ctx.input_dir("teacher"), ctx.recipe.security)
        t_reference = torch_logits(t_model, eval_set, tokenizer)
    if q.teacher:
        out = ctx.out / "teacher-int8-dynamic" / "model.onnx"
        info = quantize_dynamic(_onnx_source(ctx, "teacher", q.dynamic_graph), out, preset, **knobs)
        t_logits = onnx_logits(out, eval_set, tokenizer)
        t_report = compare(
            t_reference, t_logits, labels, atol=None, min_agreement=0.0, task_type=kind, names=names
        )
        teacher_record = {
            "teacher-int8-dynamic": {
                "path": "teacher-int8-dynamic",
                "parity": t_report.to_dict(),
                "accuracy": t_report.accuracy_candidate,
                **info,
            }
        }

    baselines = {}
    if q.peer:  # what optimum-cli gives at its own settings, on the same plain exports
        for who, ref in (("student", reference), ("teacher", t_reference)):
            if who == "teacher" and not q.teacher:
                continue
            out = ctx.out / f"{who}-int8-peer" / "model.onnx"
            info = quantize_like_optimum(_onnx_source(ctx, who, "plain"), out, preset.name)
            report = compare(
                ref,
                onnx_logits(out, eval_set, tokenizer),
                labels,
                atol=None,
                min_agreement=0.0,
                task_type=kind,
                names=names,
            )
            baselines[f"{who}-int8-peer"] = {
                "path": f"{who}-int8-peer",
                "parity": report.to_dict(),
                "accuracy": report.accuracy_candidate,
                "role": "baseline",
                **info,
            }

    if r.transfer.enabled:  # every artifact's extra heads, each on its own task's rows
        _task_scores(ctx, tokenizer, {**records, **teacher_record, **baselines})
    reference_accuracy = TASK_TYPES[kind].score(reference, labels, names)
    try:
        verdict = gate(
            {k: v["accuracy"] for k, v in records.items()}, reference_accuracy, q.max_drop
        )
        failure = None
    except QuantizationGateError as exc:
        verdict, failure = exc.result, str(exc)
    for name, rec in records.items():
        rec["drop_points"] = verdict.drops[name]
        rec["rejected"] = name in verdict.rejected
    extra = {
        "preset": {**preset.to_dict(), "reason": reason},
        "quantized": {**records, **teacher_record, **baselines},
        "skipped": skipped,
        "gate": {
            "reference_accuracy": reference_accuracy,
            "max_drop_points": q.max_drop,
            "accepted": verdict.accepted,
            "rejected": verdict.rejected,
            "best": verdict.best,
        },
    }
    if failure:
        atomic_write_json(ctx.out / "gate_failure.json", extra)  # the candidates stay on disk
        raise StageFailedError(
            f"{failure} Artifacts kept in {ctx.out}; raise quantize.max_drop to accept one."
        )
    best = records[verdict.best]
    metrics = {
        "accuracy": best["accuracy"],
        "best": verdict.best,
        "reference_accuracy": reference_accuracy,
        **{f"{k}_accuracy": v["accuracy"] for k, v in records.items()},
        **{f"{k}_drop_points": v["drop_points"] for k, v in records.items()},
    }
    artifacts = {k: v["path"] for k, v in {**records, **teacher_record, **baselines}.items()}
    return StageResult(metrics=metrics, artifacts=artifacts, extra=extra)
