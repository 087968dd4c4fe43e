"""Stage 2 of the search: a surviving candidate distilled on a short schedule, then evaluated in
fp32 and in its deployment int8, as the distill stage would train it (the recipe's loss, cached
teacher logits, the augmented training set when configured) but on `search.short_rows` rows for
`search.short_epochs`. The record is written last (`short.json`), so a killed search keeps every
candidate it finished."""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from pipelines.core.distributed import is_main
from pipelines.core.runs import atomic_write_json
from pipelines.search.space import Candidate

log = logging.getLogger("distillery")
SHORT = "short.json"


def short_distill(
    ctx, cand: Candidate, folder: Path, key: str, teacher, tokenizer, training, eval_set, device
):
    """The candidate's short-run record (read back when one with the same `key`, what decides
    the run, exists). `training`: (dataset, cached teacher logits or None) to draw rows from."""
    from transformers import AutoModelForSequenceClassification

    from distill.token_students import register
    from pipelines.distillation.ablation import int8_accuracy
    from pipelines.distillation.loss import loss_spec
    from pipelines.distillation.training import train_student
    from pipelines.train.evaluation import evaluate_model

    done = folder / SHORT
    if done.is_file():
        record = json.loads(done.read_text())
        if record.get("key") == key:
            return record
    r, s = ctx.recipe, ctx.recipe.search
    dataset, logits = training
    picked = np.random.default_rng(r.seed).permutation(len(dataset))[: s.short_rows]
    rows = dataset.select(picked)  # the same rows for every candidate: a fair comparison
    logits = logits[picked] if logits is not None else None
    register()  # a static, cnn or bilstm candidate loads through the Auto class too
    student = AutoModelForSequenceClassification.from_pretrained(
        folder / "model", use_safetensors=True
    )
    spec = loss_spec(r.distill, cand.depth, teacher.config.num_hidden_layers, list(cand.layers))
    started = time.time()
    trainer, _, _ = train_student(
        ctx,
        teacher,
        student,
        tokenizer,
        rows,
        spec,
        folder / "checkpoints",
        None if spec.needs_teacher_features else logits,
        num_train_epochs=s.short_epochs,
        save_strategy="no",
    )
    seconds = time.time() - started
    student = trainer.model.student
    metrics, _ = evaluate_model(
        student, eval_set, tokenizer, r.distill.eval_batch_size, device, cand.id
    )
    record = {
        "key": key,
        "id": cand.id,
        "accuracy": metrics["accuracy"],
        "int8_accuracy": int8_accuracy(student, tokenizer, eval_set),  # ORT dynamic int8
        "train_rows": len(rows),
        "epochs": s.short_epochs,
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 1),
    }
    if is_main():
        shutil.rmtree(folder / "checkpoints", ignore_errors=True)
        atomic_write_json(done, record)
    log.info("search: %s short run: %s", cand.id, record)
    return record
