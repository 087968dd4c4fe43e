"""Export stage: student (and teacher) → ONNX, an ORT-fused copy, parity on the eval split.

setup (models, tokenized eval split) → export with optimum-onnx → fuse with ORTOptimizer →
parity of every ONNX artifact against PyTorch (right-padded batches of mixed lengths) → record.
A parity miss fails the stage with the numbers; no manifest is written.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np

from distill.heads import HEADS_CONFIG, load_heads
from distill.token_students import is_token_student
from export.heads import add_task_heads
from export.module_export import export_module
from export.onnx_export import export_classifier
from export.optimize import optimize_onnx
from export.parity import ParityError, check, compare, onnx_logits, torch_logits
from modelkit.batching import label_array
from pipelines.core import progress
from pipelines.core.context import StageContext, StageResult
from pipelines.core.errors import DistilleryError, StageFailedError
from pipelines.core.models import load_stage_model
from pipelines.data.loading import tokenize
from pipelines.multitask.tasks import tokenized_tasks, transfer_tasks

log = logging.getLogger("distillery")


def export_one(ctx: StageContext, name: str, model_dir, eval_rows, task_sets=()) -> dict:
    """Export `model_dir` as `<name>-onnx` (+ `<name>-onnx-<level>`), each checked for parity on
    the eval split (`eval_rows`, untokenized) as the model's own tokenizer reads it: a student
    with its own tokenizer (`student.tokenizer: own`) and its teacher read different ids.

    task_sets: (task, its tokenized eval split) for each extra head of a multi-task model
    (distill.heads); each becomes an output `logits_<task>`, checked on its own task's rows."""
    e = ctx.recipe.export
    model, tokenizer = load_stage_model(model_dir, ctx.recipe.security)
    eval_set = tokenize(eval_rows, tokenizer, ctx.recipe)
    labels = label_array(eval_set["labels"])  # per token, for token tags: of this tokenization
    heads = load_heads(model_dir, model)
    reference = torch_logits(model, eval_set, tokenizer, e.batch_size)
    head_references = {}
    for task, rows in task_sets if heads is not None else ():
        with heads.use(model, task.name):
            head_references[task.name] = torch_logits(model, rows, tokenizer, e.batch_size)
    token_student = is_token_student(model.config)  # static, cnn, bilstm: torch.onnx, no fusion
    plain = ctx.out / f"{name}-onnx"
    info = _export_plain(ctx, name, model_dir, model, heads, plain, token_student)
    tokenizer.save_pretrained(plain)
    records = {}
    candidates = [(f"{name}-onnx", plain, e.atol, info)]
    if token_student and e.optimize != "none":
        log.info(
            "export: a %s student has no transformer ops to fuse; plain graph only",
            model.config.student_kind,
        )
    if e.optimize != "none" and not token_student:
        fused = ctx.out / f"{name}-onnx-{e.optimize}"
        opt_info = optimize_onnx(plain, fused, e.optimize, device=e.device)
        tokenizer.save_pretrained(fused)
        if heads is not None:
            shutil.copy2(Path(model_dir) / HEADS_CONFIG, fused / HEADS_CONFIG)
        candidates.append((f"{name}-onnx-{e.optimize}", fused, e.optimized_atol, opt_info))
    with progress.step(f"parity {name}", len(candidates), "artifacts") as shown:
        for artifact, folder, atol, meta in candidates:
            shown.note(artifact)
            logits = onnx_logits(folder, eval_set, tokenizer, e.batch_size)
            report = compare(
                reference,
                logits,
                labels,
                atol=atol,
                min_agreement=e.min_agreement,
                task_type=ctx.recipe.task.type,
                names=list(ctx.recipe.task.labels),
            )
            log.info("parity %s: %s", artifact, report.to_dict())
            try:
                check(report, artifact)
            except ParityError as exc:
                raise StageFailedError(
                    f"{exc} Raise export.atol / export.optimized_atol or export.min_agreement only if "
                    "the difference is understood; otherwise the exported graph is wrong."
                ) from None
            per_task = head_parity(e, artifact, folder, tokenizer, head_references, task_sets, atol)
            records[artifact] = {
                "path": str(folder.relative_to(ctx.out)),
                "parity": report.to_dict(),
                "tasks": per_task or None,
                "size_bytes": meta.get("size_bytes"),
                "opset": meta.get("opset", info["opset"]),
                "fused_ops": meta.get("fused_ops"),
            }
            shown.advance()
    return records


def _export_plain(ctx: StageContext, name, model_dir, model, heads, plain, token_student) -> dict:
    """The plain fp32 graph of `model` in `plain` (torch.onnx for a token student, optimum's
    exporter for a transformer), one output per extra head of a multi-task model."""
    e = ctx.recipe.export
    if token_student:
        info = export_module(model, plain, opset=e.opset)
    else:
        info = export_classifier(
            model_dir,
            plain,
            opset=e.opset,
            device=e.device,
            feature_extraction=e.feature_extraction and name == "student",
            trust_remote_code=ctx.recipe.security.trust_remote_code,
        )
    if heads is not None:  # one output per task, before fusion so every copy has them
        add_task_heads(
            plain / "model.onnx",
            {
                n: (layer.weight.detach().numpy(), layer.bias.detach().numpy())
                for n, layer in heads.heads.items()
            },
        )
        shutil.copy2(Path(model_dir) / HEADS_CONFIG, plain / HEADS_CONFIG)
    return info


def head_parity(e, artifact: str, folder, tokenizer, references, task_sets, atol) -> dict:
    """{task: parity report} of each extra head's output `logits_<task>` on its own task's eval
    rows against PyTorch's (`references`); a miss fails the stage."""
    per_task = {}
    for task, rows in task_sets if references else ():
        task_logits = onnx_logits(
            folder, rows, tokenizer, e.batch_size, output=f"logits_{task.name}"
        )
        task_report = compare(
            references[task.name],
            task_logits,
            np.asarray(rows["labels"]),
            atol=atol,
            min_agreement=e.min_agreement,
        )
        log.info("parity %s, head %s: %s", artifact, task.name, task_report.to_dict())
        try:
            check(task_report, f"{artifact} (head {task.name})")
        except ParityError as exc:
            raise StageFailedError(f"{exc} The extra head's graph is wrong.") from None
        per_task[task.name] = task_report.to_dict()
    return per_task


def main(ctx: StageContext) -> StageResult:
    r = ctx.recipe
    if r.export.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise DistilleryError(
                "export.device is 'cuda' but no CUDA device is available; set export.device: cpu."
            )
    task_sets = []
    if r.transfer.enabled:  # each extra head checked on its own task's eval split
        _, tokenizer = load_stage_model(ctx.input_dir("distill"), ctx.recipe.security)
        tasks = transfer_tasks(r, ctx.data())
        task_sets = list(zip(tasks, tokenized_tasks(tasks, tokenizer, "eval"), strict=False))[1:]
    rows = ctx.data().eval
    artifacts = export_one(ctx, "student", ctx.input_dir("distill"), rows, task_sets)
    if r.export.teacher:
        artifacts.update(export_one(ctx, "teacher", ctx.input_dir("teacher"), rows, task_sets))
    plain = artifacts["student-onnx"]["parity"]
    metrics = {
        "accuracy": plain["accuracy_candidate"],
        "max_abs_diff": plain["max_abs_diff"],
        "agreement": plain["agreement"],
        "eval_rows": plain["rows"],
    }
    fused_name = f"student-onnx-{r.export.optimize}"
    if fused_name in artifacts:
        fused = artifacts[fused_name]["parity"]
        metrics.update(
            {
                "fused_accuracy": fused["accuracy_candidate"],
                "fused_max_abs_diff": fused["max_abs_diff"],
                "fused_agreement": fused["agreement"],
            }
        )
    return StageResult(
        metrics=metrics,
        artifacts={k: v["path"] for k, v in artifacts.items()},
        extra={"exports": artifacts},
    )
