"""The run's augmented training set: `runs/<name>/cache/augment-<key>/`, made and labelled in
resumable chunks (pipelines/distillation/teacher_labels.py).

The key holds everything that decides the rows and their logits: the augmentation settings and
seed, the data's content, the teacher's weights, the tokenization. New rows carry label -100: the
task loss leaves them out, the KD loss and the matches learn from them. `with_augmented_rows`
also adds the recipe's unlabelled text (pipelines/distillation/unlabelled_set.py).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from distill.augment import AugmentSpec, MLMReplacer, augment_rows, planned
from distill.cache import cache_key
from pipelines.core.context import StageContext
from pipelines.core.errors import ConfigError
from pipelines.core.schema import default_value, hash_policy
from pipelines.distillation.logits import teacher_weights_digest
from pipelines.distillation.teacher_labels import label_in_chunks, to_json, training_rows
from pipelines.distillation.unlabelled_set import unlabelled_set

log = logging.getLogger("distillery")


def spec_of(ctx: StageContext, tokenizer) -> AugmentSpec:
    """The recipe's `distill.augment` as the library's AugmentSpec: every field the two share,
    passed through by name (a new key in both is one edit each), and the tokenizer's mask."""
    a = ctx.recipe.distill.augment
    shared = {f.name for f in fields(AugmentSpec)} & set(type(a).model_fields)
    values = {name: getattr(a, name) for name in shared}
    values["methods"] = tuple(a.methods)
    return AugmentSpec(**values, mask_token=tokenizer.mask_token or "[MASK]")


def mlm_source(ctx: StageContext) -> str | None:
    """The masked LM for `mlm`: augment.mlm_model, else the teacher's checkpoint if it has an
    MLM head; ConfigError naming the key when neither exists."""
    a, t = ctx.recipe.distill.augment, ctx.recipe.teacher
    if "mlm" not in a.methods:
        return None
    if a.mlm_model:
        return a.mlm_model
    if t.init == "pretrained" and t.model and Path(t.model, "config.json").is_file():
        archs = json.loads(Path(t.model, "config.json").read_text()).get("architectures") or []
        if any(x.endswith(("ForMaskedLM", "ForPreTraining")) for x in archs):
            return t.model
    raise ConfigError(
        "distill.augment.methods: 'mlm' needs a masked language model with the teacher's "
        "vocabulary, and the teacher has no MLM head; set distill.augment.mlm_model (a hub id "
        "or a local folder, e.g. bert-base-uncased for a BERT-base teacher)."
    )


def augmented_set(
    ctx: StageContext, teacher, tokenizer, train_rows, device: str, teacher_tokenizer=None
):
    """(augmented rows tokenized by `tokenizer` with labels -100, their teacher logits, record
    for the manifest). `train_rows`: the split's texts, one string (or tuple for pairs) per row.
    The teacher labels each new row of text through `teacher_tokenizer` (default: `tokenizer`),
    so the chunks on disk (text and logits) do not depend on the student's tokenizer."""
    r, a = ctx.recipe, ctx.recipe.distill.augment
    teacher_tokenizer = teacher_tokenizer or tokenizer
    spec = spec_of(ctx, teacher_tokenizer)
    mlm = mlm_source(ctx)
    key = cache_key(
        augment=key_settings(a),
        seed=r.seed,
        data=ctx.data().data_hash,
        rows=len(train_rows),
        teacher=ctx.inputs["teacher"]["hash"],
        teacher_weights=teacher_weights_digest(ctx.inputs["teacher"]),
        max_length=r.data.max_length,
        text_columns=r.task.text_columns,
    )
    folder = ctx.run.path / "cache" / f"augment-{key[:16]}"
    replacer = []  # the masked LM, loaded for the first chunk that is made (not found)

    def make(indices) -> list:
        if mlm and not replacer:
            trust = r.security.trust_remote_code
            replacer.append(MLMReplacer.load(mlm, trust_remote_code=trust, device=device))
        model = replacer[0] if replacer else None
        return augment_rows(train_rows, spec, r.seed, indices=indices, mlm=model)

    started = time.time()
    total = len(planned(len(train_rows), spec, r.seed))
    done = label_in_chunks(ctx, teacher, teacher_tokenizer, device, folder, total, make, "augment")
    record = {
        "rows": len(done.rows),
        "made": done.made,
        "reused": done.reused,
        "chunks": done.chunks,
        "path": str(folder),
        "mlm_model": mlm,
        "config": a.model_dump(),
        "seconds": round(time.time() - started, 1),
        "examples": [to_json(row) for row in done.rows[:5]],
    }
    log.info("augmented training set: %s", {k: v for k, v in record.items() if k != "config"})
    return training_rows(ctx, tokenizer, done.rows), done.logits, record


def key_settings(a) -> dict:
    """`distill.augment` as its cache key reads it: keys added after caches existed
    (`hash="when_set"`) only when set, so the caches made before them are found again."""
    fields_ = type(a).model_fields
    return {
        k: v
        for k, v in a.model_dump().items()
        if not (hash_policy(fields_[k]) == "when_set" and v == default_value(fields_[k]))
    }


def with_augmented_rows(
    ctx: StageContext, teacher, tokenizer, train_set, logits, device: str, teacher_tokenizer=None
):
    """(rows, their teacher logits or None, {"unlabelled": facts, "augment": facts} for what
    was added): the tokenized train split, plus the recipe's unlabelled text
    (`distill.unlabelled`) and the augmented rows (`distill.augment.factor` > 0), both labelled
    by the teacher (their logits joined to `logits`, the train split's cached ones, when
    given). The distill stage and the search's short runs train on the same rows."""
    from datasets import concatenate_datasets

    d = ctx.recipe.distill
    parts, records = [(train_set, logits)], {}
    if d.unlabelled:
        rows, rows_logits, records["unlabelled"] = unlabelled_set(
            ctx, teacher, tokenizer, device, teacher_tokenizer
        )
        parts.append((rows, rows_logits))
    if d.augment.factor > 0:
        texts = train_texts(ctx.data().train, ctx.recipe.task.text_columns)
        rows, rows_logits, records["augment"] = augmented_set(
            ctx, teacher, tokenizer, texts, device, teacher_tokenizer
        )
        parts.append((rows, rows_logits))
    if len(parts) == 1:
        return train_set, logits, records
    combined = concatenate_datasets(
        [train_set] + [p.cast(train_set.features) for p, _ in parts[1:]]
    )
    combined_logits = None if logits is None else np.concatenate([x for _, x in parts])
    return combined, combined_logits, records


def train_texts(dataset, columns: list[str]) -> list:
    """The split's texts: strings, or tuples for sentence pairs."""
    if len(columns) == 1:
        return list(dataset[columns[0]])
    return list(zip(*(dataset[c] for c in columns), strict=True))
