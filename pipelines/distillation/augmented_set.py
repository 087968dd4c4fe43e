"""The run's augmented training set: `runs/<name>/cache/augment-<key>/`, made and labelled in
resumable chunks.

Each chunk is `rows-NNNNN.jsonl` (the new rows) and `logits-NNNNN.npy` (the teacher's logits on
them), each written atomically; a killed run finds the finished chunks and makes only the rest.
The key holds everything that decides the rows and their logits: the augmentation settings and
seed, the data's content, the teacher's weights, the tokenization. New rows carry label -100: the
task loss leaves them out, the KD loss and the matches learn from them.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import fields
from pathlib import Path

import numpy as np

from distill.api import teacher_logits
from distill.augment import AugmentSpec, MLMReplacer, augment_rows, planned
from distill.cache import cache_key, save_array
from pipelines.core.context import StageContext
from pipelines.core.distributed import is_main, main_first
from pipelines.core.errors import ConfigError
from pipelines.core.runs import atomic_write_text
from pipelines.core.schema import default_value, hash_policy
from pipelines.distillation.logits import teacher_weights_digest

log = logging.getLogger("distillery")
IGNORED_LABEL = -100  # cross-entropy's ignore_index: no gold label on an augmented row


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


def augmented_set(ctx: StageContext, teacher, tokenizer, train_rows, device: str):
    """(tokenized augmented rows with labels -100, their teacher logits, record for the
    manifest). `train_rows`: the split's texts, one string (or tuple for pairs) per row."""
    from tqdm.auto import tqdm

    from pipelines.data.loading import tokenize

    r, a = ctx.recipe, ctx.recipe.distill.augment
    spec = spec_of(ctx, tokenizer)
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
    total = len(planned(len(train_rows), spec, r.seed))
    chunks = range(0, total, a.chunk_rows)
    replacer = None
    started, made, reused = time.time(), 0, 0
    all_rows, all_logits = [], []
    with main_first():  # under DDP rank 0 makes the chunks, the others read them
        for number, start in enumerate(tqdm(chunks, desc="augment", disable=not is_main())):
            rows_path = folder / f"rows-{number:05d}.jsonl"
            logits_path = folder / f"logits-{number:05d}.npy"
            indices = range(start, min(start + a.chunk_rows, total))
            if rows_path.is_file() and logits_path.is_file():
                rows = [_from_json(line) for line in rows_path.read_text().splitlines()]
                logits = np.load(logits_path, allow_pickle=False)
                if len(rows) == len(indices) == len(logits):
                    all_rows += rows
                    all_logits.append(logits)
                    reused += len(rows)
                    continue
            if mlm and replacer is None:
                replacer = MLMReplacer.load(
                    mlm, trust_remote_code=r.security.trust_remote_code, device=device
                )
            rows = augment_rows(train_rows, spec, r.seed, indices=indices, mlm=replacer)
            chunk = tokenize(_as_dataset(rows, r.task.text_columns), tokenizer, r)
            logits = teacher_logits(teacher, chunk, tokenizer, r.distill.eval_batch_size, device)
            if is_main():
                atomic_write_text(rows_path, "".join(json.dumps(row) + "\n" for row in rows))
                save_array(logits_path, logits)
            all_rows += rows
            all_logits.append(logits)
            made += len(rows)
    dataset = tokenize(_as_dataset(all_rows, r.task.text_columns), tokenizer, r)
    dataset = dataset.add_column("labels", [IGNORED_LABEL] * len(dataset))
    logits = np.concatenate(all_logits) if all_logits else np.zeros((0, teacher.config.num_labels))
    record = {
        "rows": len(all_rows),
        "made": made,
        "reused": reused,
        "chunks": len(chunks),
        "path": str(folder),
        "mlm_model": mlm,
        "config": a.model_dump(),
        "seconds": round(time.time() - started, 1),
        "examples": [_to_json(row) for row in all_rows[:5]],
    }
    log.info("augmented training set: %s", {k: v for k, v in record.items() if k != "config"})
    return dataset, logits.astype(np.float32), record


def key_settings(a) -> dict:
    """`distill.augment` as its cache key reads it: keys added after caches existed
    (`hash="when_set"`) only when set, so the caches made before them are found again."""
    fields_ = type(a).model_fields
    return {
        k: v
        for k, v in a.model_dump().items()
        if not (hash_policy(fields_[k]) == "when_set" and v == default_value(fields_[k]))
    }


def with_augmented_rows(ctx: StageContext, teacher, tokenizer, train_set, logits, device: str):
    """(rows, their teacher logits or None, augmentation facts or None): the tokenized train
    split, plus the augmented rows the teacher labelled when `distill.augment.factor` > 0 (their
    logits joined to `logits`, the train split's cached ones, when given). The distill stage and
    the search's short runs train on the same rows."""
    from datasets import concatenate_datasets

    if ctx.recipe.distill.augment.factor <= 0:
        return train_set, logits, None
    texts = train_texts(ctx.data().train, ctx.recipe.task.text_columns)
    rows, rows_logits, info = augmented_set(ctx, teacher, tokenizer, texts, device)
    combined = concatenate_datasets([train_set, rows.cast(train_set.features)])
    combined_logits = None if logits is None else np.concatenate([logits, rows_logits])
    return combined, combined_logits, info


def train_texts(dataset, columns: list[str]) -> list:
    """The split's texts: strings, or tuples for sentence pairs."""
    if len(columns) == 1:
        return list(dataset[columns[0]])
    return list(zip(*(dataset[c] for c in columns), strict=True))


def _as_dataset(rows, columns: list[str]):
    import datasets

    if len(columns) == 1:
        return datasets.Dataset.from_dict({columns[0]: [str(r) for r in rows]})
    return datasets.Dataset.from_dict({c: [r[i] for r in rows] for i, c in enumerate(columns)})


def _to_json(row):
    return row if isinstance(row, str) else list(row)


def _from_json(line: str):
    value = json.loads(line)
    return value if isinstance(value, str) else tuple(value)
