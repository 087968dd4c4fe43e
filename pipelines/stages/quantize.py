"""Quantize stage: the fp32 student → int8 artifacts, each evaluated and gated on accuracy.

setup (export manifest, eval rows, what each method may need) → the chosen methods, one by one
(`quantize.methods.METHODS`: ORT dynamic with the preset chosen for this CPU, ORT static QDQ,
Neural Compressor PT2E with autotune, OpenVINO + NNCF when its extra is installed, and the distill
stage's quantization-aware export when there is one; a method that cannot run here is skipped
with the reason) → parity of each against the fp32 student on the eval split, computed by the
runtime that runs it (its bench backend, recorded in the manifest as `bench_backend`) → the gate: artifacts over
`quantize.max_drop` are kept but flagged; the stage fails only when none passes. Beside them,
outside the gate and evaluated the same way: the teacher's export quantized by
`quantize.teacher_methods` (`teacher-int8-<method>`, the int8-teacher baseline), and the peer
baseline, student and teacher quantized exactly as `optimum-cli onnxruntime quantize` would
(`quantize.peer`): the report measures what the project adds against both. Single-label runs
store every artifact's eval predictions (`eval_predictions.json`) for the report's paired tests.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from export.parity import compare, torch_logits
from modelkit.batching import label_array
from modelkit.task_types import TASK_TYPES
from pipelines.bench.backends import eval_logits, get_backend
from pipelines.core import progress
from pipelines.core.context import StageContext, StageResult
from pipelines.core.errors import StageFailedError
from pipelines.core.models import load_stage_model
from pipelines.core.runs import atomic_write_json
from pipelines.data.loading import tokenize
from quantize.gate import QuantizationGateError, gate
from quantize.methods import METHODS, Job, Skipped, chosen, job_for, missing_extra, run_method
from quantize.peer import quantize_like_optimum
from quantize.presets import resolve_preset

log = logging.getLogger("distillery")
PREDICTIONS = "eval_predictions.json"  # {"labels": [...], "predictions": {artifact: [...]}}


def _exports(ctx: StageContext, model: str) -> tuple[Path, Path | None]:
    """(the plain fp32 export's model.onnx, the first ORT-fused export's, or None) of `model`."""
    exports, folder = ctx.inputs["export"]["exports"], ctx.input_dir("export")
    fused = [k for k in exports if k.startswith(f"{model}-onnx-")]
    plain = folder / exports[f"{model}-onnx"]["path"] / "model.onnx"
    return plain, (folder / exports[fused[0]]["path"] / "model.onnx" if fused else None)


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


@dataclass(frozen=True)
class Scorer:
    """Scores an artifact's eval logits against the fp32 model's (`reference`): parity and
    accuracy, the record every artifact of this stage carries. For a single-label task it keeps
    each artifact's eval predictions (`predictions`, shared by its `replace` copies), which the
    report's paired tests read."""

    reference: np.ndarray
    labels: np.ndarray
    task_type: str
    names: list[str]
    predictions: dict[str, list[int]] = field(default_factory=dict)

    def keep(self, name: str, logits: np.ndarray) -> None:
        if self.task_type == "single_label" and np.ndim(logits) == 2:
            self.predictions[name] = np.asarray(logits).argmax(-1).tolist()

    def __call__(self, name: str, logits: np.ndarray, reference: np.ndarray | None = None) -> dict:
        report = compare(
            self.reference if reference is None else reference,
            logits,
            self.labels,
            atol=None,
            min_agreement=0.0,
            task_type=self.task_type,
            names=list(self.names),
        )
        log.info(
            "%s: accuracy %.4f, agreement %.4f", name, report.accuracy_candidate, report.agreement
        )
        self.keep(name, logits)
        return {"parity": report.to_dict(), "accuracy": report.accuracy_candidate}


def _job(ctx: StageContext, preset, model, tokenizer, eval_set, labels, who: str) -> Job:
    """Everything a method may need (`quantize.methods.NEEDS`) to quantize `who` (student or
    teacher); each method gets what it declared."""
    qat = ctx.inputs["distill"].get("qat") if who == "student" else None
    onnx, onnx_fused = _exports(ctx, who)
    return Job(
        out=ctx.out,
        settings=ctx.recipe.quantize,
        preset=preset,
        pad_token_id=tokenizer.pad_token_id,
        onnx=onnx,
        onnx_fused=onnx_fused,
        calibration=lambda samples: _calibration_rows(ctx, tokenizer, samples),
        model=model,
        tokenizer=tokenizer,
        eval_rows=eval_set,
        labels=labels,
        task_type=ctx.recipe.task.type,
        qat=qat,
        qat_dir=ctx.input_dir("distill") / qat["path"] if qat else None,
    )


def _run_methods(
    ctx: StageContext, job: Job, score: Scorer, who: str, names: list[str]
) -> tuple[dict[str, dict], dict[str, str], dict[str, str]]:
    """({artifact: record}, {artifact: why skipped}, {artifact skipped: its backend}) of methods
    `names` on `who` (student or teacher), as `<who>-int8-<method>`; each artifact is scored
    with the runtime that runs it."""
    records: dict[str, dict] = {}
    skipped: dict[str, str] = {}
    backends: dict[str, str] = {}
    with progress.step(f"quantize {who}", len(names), "methods") as shown:
        for name in names:
            shown.note(name)  # calibration and conversion, then its eval accuracy
            method, artifact = METHODS[name], f"{who}-int8-{name}"
            out = ctx.out / artifact
            why = missing_extra(name)
            try:
                if why is None:
                    info = run_method(name, job_for(name, job, out))
                    logits = eval_logits(method.backend, out, job.eval_rows, job.tokenizer)
            except Skipped as exc:
                why = str(exc)
            except method.refuses as exc:  # its runtime refused this graph: no artifact, the reason
                shutil.rmtree(out, ignore_errors=True)
                lines = str(exc).strip().splitlines()
                label = get_backend(method.backend).label
                why = f"{label} could not compile or run this graph: {lines[-1] if lines else exc}"
            if why is not None:
                skipped[artifact], backends[artifact] = why, method.backend
                log.warning("quantize: %s skipped: %s", artifact, why)
                shown.advance()
                continue
            info = {"path": artifact, **info, "bench_backend": method.backend}
            records[artifact] = {**score(artifact, logits), **info}
            shown.advance()
    return records, skipped, backends


def _teacher(
    ctx: StageContext, preset, score: Scorer
) -> tuple[dict, np.ndarray, dict[str, str], dict[str, str], Job]:
    """(records, the fp32 teacher's eval logits, skipped, their backends, the teacher's job:
    the eval split as the teacher's own tokenizer reads it): the teacher's export
    quantized by `quantize.teacher_methods` (null: dynamic alone, as runs before the key), for
    the report's int8-teacher baseline. The teacher's own tokenizer reads the rows."""
    t_model, t_tokenizer = load_stage_model(ctx.input_dir("teacher"), ctx.recipe.security)
    eval_set = tokenize(ctx.data().eval, t_tokenizer, ctx.recipe)
    labels = label_array(eval_set["labels"])
    reference = torch_logits(t_model, eval_set, t_tokenizer)
    t_score = replace(score, reference=reference, labels=labels)
    t_score.keep("teacher", reference)
    job = _job(ctx, preset, t_model, t_tokenizer, eval_set, labels, "teacher")
    names = chosen(ctx.recipe.quantize.teacher_methods or ["dynamic"], trained=False)
    records, skipped, backends = _run_methods(ctx, job, t_score, "teacher", names)
    return records, reference, skipped, backends, job


def _peers(ctx: StageContext, job: Job, score: Scorer, teacher: tuple | None) -> dict[str, dict]:
    """What optimum-cli gives at its own settings on the same plain exports (the report's
    baseline, outside the gate): the student's, and the teacher's when it is quantized too."""
    baselines = {}
    references = {
        "student": (score.reference, job),
        "teacher": (teacher[1], teacher[4]) if teacher else None,
    }
    for who, known in references.items():
        if known is None:
            continue
        reference, job = known
        name = f"{who}-int8-peer"
        out = ctx.out / name / "model.onnx"
        info = quantize_like_optimum(_exports(ctx, who)[0], out, job.preset.name)
        logits = eval_logits("onnxruntime", out, job.eval_rows, job.tokenizer)
        baselines[name] = {
            "path": name,
            **score(name, logits, reference),
            "role": "baseline",
            **info,
            "bench_backend": "onnxruntime",
        }
    return baselines


def main(ctx: StageContext) -> StageResult:
    r, q = ctx.recipe, ctx.recipe.quantize
    preset, reason = resolve_preset(q.preset)
    log.info("quantization preset %s: %s", preset.name, reason)
    model, tokenizer = load_stage_model(ctx.input_dir("distill"), ctx.recipe.security)
    eval_set = tokenize(ctx.data().eval, tokenizer, r)
    labels = label_array(eval_set["labels"])
    score = Scorer(
        torch_logits(model, eval_set, tokenizer), labels, r.task.type, list(r.task.labels)
    )
    score.keep("student", score.reference)
    job = _job(ctx, preset, model, tokenizer, eval_set, labels, "student")
    names = chosen(q.methods, trained=job.qat is not None)
    records, skipped, skipped_backends = _run_methods(ctx, job, score, "student", names)
    teacher = _teacher(ctx, preset, score) if q.teacher else None
    if teacher:
        skipped, skipped_backends = {**skipped, **teacher[2]}, {**skipped_backends, **teacher[3]}
    others = {
        **(teacher[0] if teacher else {}),
        **(_peers(ctx, job, score, teacher) if q.peer else {}),
    }
    if r.transfer.enabled:  # every artifact's extra heads, each on its own task's rows
        _task_scores(ctx, tokenizer, {**records, **others})
    reference_accuracy = TASK_TYPES[r.task.type].score(score.reference, labels, score.names)
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
    if score.predictions:  # per-row predictions: the report's paired tests between artifacts
        atomic_write_json(
            ctx.out / PREDICTIONS, {"labels": labels.tolist(), "predictions": score.predictions}
        )
    extra = {
        "preset": {**preset.to_dict(), "reason": reason},
        **({"predictions": PREDICTIONS} if score.predictions else {}),
        "quantized": {**records, **others},
        "skipped": skipped,
        "skipped_backends": skipped_backends,
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
    artifacts = {k: v["path"] for k, v in {**records, **others}.items()}
    return StageResult(metrics=metrics, artifacts=artifacts, extra=extra)
