"""The student the recipe asks for, built from the fine-tuned teacher."""

from __future__ import annotations

import logging

from distill.prune import prune_teacher
from distill.student import (
    check_same_vocab,
    from_config,
    from_teacher_layers,
    load_pretrained_student,
)
from modelkit.batching import padded_batches
from pipelines.core.config import Recipe
from pipelines.core.models import load_tokenizer, resolve_model

log = logging.getLogger("distillery")


def build_student(recipe: Recipe, teacher, tokenizer_t, train_set=None):
    """(student, teacher layers it was copied or cut from, or None)."""
    s = recipe.student
    if s.init == "teacher_layers":
        return from_teacher_layers(teacher, s.layers), list(s.layers)
    if s.init == "config" and s.init_weights == "prune":
        student, kept = prune_teacher(
            teacher,
            s.config,
            s.layers,
            calibration_batches(train_set, tokenizer_t, s.prune_rows, recipe.seed),
            recipe.seed,
        )
        log.info(
            "student cut from teacher layers %s: %d of %d channels, heads per layer %s",
            s.layers,
            len(kept["channels"]),
            teacher.config.hidden_size,
            kept["heads"],
        )
        return student, list(s.layers)
    if s.init == "config":
        shape = s.config
        return from_config(
            teacher,
            shape.num_hidden_layers,
            shape.hidden_size,
            shape.num_attention_heads,
            shape.intermediate_size,
            s.init_embeddings,
            recipe.seed,
        ), None
    source = resolve_model(s.model, recipe.security, "student.model")
    check_same_vocab(tokenizer_t, load_tokenizer(source, recipe.security), "student.model")
    return load_pretrained_student(
        source.value,
        teacher,
        use_safetensors=not recipe.security.allow_pickle,
        trust_remote_code=recipe.security.trust_remote_code,
    ), None


def calibration_batches(train_set, tokenizer, rows: int, seed: int, batch_size: int = 64):
    """A seeded sample of `rows` training rows, padded per batch (torch tensors): what the teacher
    runs on to rank channels, heads and neurons for pruning."""
    import torch

    if train_set is None:
        raise ValueError("student.init_weights 'prune' needs the training split to rank weights")
    sample = train_set.shuffle(seed=seed).select(range(min(rows, len(train_set))))
    for _, batch in padded_batches(sample, tokenizer.pad_token_id, batch_size):
        yield {k: torch.from_numpy(v) for k, v in batch.items()}
