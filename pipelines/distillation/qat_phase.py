"""Quantization-aware distillation: after the student is distilled, int8 fake-quant is added
(quantize.qat, NNCF) and the student trains on for `distill.qat.epochs` with the same combined
loss, then leaves as a QDQ ONNX graph, `runs/<name>/distill/qat/model.onnx`. The quantize stage
takes it up as the method `qat` (`student-int8-qat`): evaluated, gated, benchmarked, reported and
bundled like every other artifact.
"""

from __future__ import annotations

import copy
import logging
import shutil
import time

import numpy as np

from distill.api import distill
from distill.combined import LossSpec
from export.parity import onnx_logits
from modelkit.batching import padded_batches
from pipelines.core.context import StageContext
from pipelines.core.distributed import is_main
from pipelines.train.callbacks import logging_callback, progress_callback
from pipelines.train.evaluation import evaluate_model
from pipelines.train.settings import training_arguments

log = logging.getLogger("distillery")
QAT_DIR = "qat"


def quantization_aware(
    ctx: StageContext,
    teacher,
    student,
    tokenizer,
    train_set,
    eval_set,
    spec: LossSpec,
    logits: np.ndarray | None,
    device: str,
) -> dict:
    """Fake-quant the distilled student, train it on, export it; the record for the manifest."""
    import torch

    from quantize.qat import export_qat_onnx, prepare_qat

    r, q = ctx.recipe, ctx.recipe.distill.qat
    started = time.time()
    sample = train_set.shuffle(seed=r.seed).select(
        range(min(q.calibration_samples, len(train_set)))
    )
    calibration = [
        {k: torch.from_numpy(v) for k, v in batch.items()}
        for _, batch in padded_batches(sample, tokenizer.pad_token_id, 16)
    ]
    qmodel = prepare_qat(copy.deepcopy(student).cpu(), calibration)
    before, _ = evaluate_model(qmodel, eval_set, tokenizer, 64, "cpu", "evaluate fake-quant")
    out = ctx.out / "qat-train"
    args = training_arguments(  # the distill knobs, with QAT's epochs and rate and no warm-up
        r,
        out,
        r.distill,
        train_rows=len(train_set),
        epochs=q.epochs,
        learning_rate=q.learning_rate,
        warmup_ratio=0.0,
    )
    args.save_strategy = "no"  # a short phase: an interruption reruns it from the distilled student
    args.use_cpu = True  # NNCF's fake-quant runs here on the CPU
    trainer = distill(
        teacher,
        qmodel,
        train_set,
        tokenizer,
        spec,
        args,
        cached_logits=logits,
        callbacks=[logging_callback()],
        progress=progress_callback("QAT training"),
    )
    qmodel = trainer.model.student
    after, _ = evaluate_model(qmodel, eval_set, tokenizer, 64, "cpu", "evaluate QAT")
    record = {
        "epochs": q.epochs,
        "learning_rate": q.learning_rate,
        "calibration_rows": len(sample),
        "global_step": trainer.state.global_step,
        "fake_quant_accuracy_before": before["accuracy"],
        "fake_quant_accuracy": after["accuracy"],
        "path": QAT_DIR,
        "seconds": round(time.time() - started, 1),
        "library": "nncf",
    }
    if is_main():
        example = next(iter(calibration))
        onnx_path = export_qat_onnx(qmodel, ctx.out / QAT_DIR, example, source_dir=ctx.out)
        shutil.rmtree(out, ignore_errors=True)
        int8 = onnx_logits(onnx_path, eval_set, tokenizer)  # what ONNX Runtime runs
        record["int8_accuracy"] = float((int8.argmax(-1) == np.asarray(eval_set["labels"])).mean())
    log.info("quantization-aware distillation: %s", record)
    return record
