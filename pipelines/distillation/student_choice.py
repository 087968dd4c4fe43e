"""The student the recipe asks for, built from the fine-tuned teacher: one registry of kinds.

    student, copied = build_student(recipe, teacher, tokenizer, train_set)

A kind of student is a function `build(recipe, teacher, tokenizer, train_set) -> (student,
teacher layers it was copied or cut from, or None)` and an entry in `STUDENT_KINDS`; the library
does the work (`distill.student`, `distill.prune`). The recipe names the kind with `student.init`
(`student_kind` reads it; `init_weights: prune` turns a config student into the `prune` kind,
as the recipe keys had it before this registry). A new kind is one module with its builder and
one entry here, plus its name among `student.init`'s values; the token-vector kinds (static, cnn,
bilstm) are `token_kinds.TOKEN_BUILDERS`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from distill.prune import prune_teacher
from distill.student import (
    check_same_vocab,
    from_config,
    from_teacher_layers,
    keep_checkpoint_layers,
    load_pretrained_student,
)
from modelkit.batching import padded_batches
from modelkit.errors import lookup
from pipelines.core.config import Recipe
from pipelines.core.models import load_tokenizer, resolve_model
from pipelines.distillation.token_kinds import TOKEN_BUILDERS

log = logging.getLogger("distillery")

Built = tuple[Any, list[int] | None]  # (student, the teacher layers it was copied or cut from)


def teacher_layers(recipe: Recipe, teacher, tokenizer_t, train_set) -> Built:
    """`init: teacher_layers`: the embeddings, the listed teacher layers and the head, copied."""
    s = recipe.student
    return from_teacher_layers(teacher, s.layers), list(s.layers)


def fresh_config(recipe: Recipe, teacher, tokenizer_t, train_set) -> Built:
    """`init: config`: a fresh BERT of `student.config`'s shape, embeddings from the teacher."""
    s, shape = recipe.student, recipe.student.config
    return from_config(
        teacher,
        shape.num_hidden_layers,
        shape.hidden_size,
        shape.num_attention_heads,
        shape.intermediate_size,
        s.init_embeddings,
        recipe.seed,
    ), None


def pruned(recipe: Recipe, teacher, tokenizer_t, train_set) -> Built:
    """`init: config, init_weights: prune`: every weight cut from `student.layers` of the teacher
    (the channels, heads and neurons most active on `student.prune_rows` training rows)."""
    s = recipe.student
    batches = calibration_batches(train_set, tokenizer_t, s.prune_rows, recipe.seed)
    student, kept = prune_teacher(teacher, s.config, s.layers, batches, recipe.seed)
    log.info(
        "student cut from teacher layers %s: %d of %d channels, heads per layer %s",
        s.layers,
        len(kept["channels"]),
        teacher.config.hidden_size,
        kept["heads"],
    )
    return student, list(s.layers)


def pretrained(recipe: Recipe, teacher, tokenizer_t, train_set) -> Built:
    """`init: pretrained`: the checkpoint `student.model` with the teacher's labels, cut to its
    layers `student.model_layers` when given; its vocabulary is the teacher's unless the student
    reads its own tokenizer (`student.tokenizer: own`, `student_tokenizer`)."""
    s = recipe.student
    source = resolve_model(s.model, recipe.security, "student.model")
    if s.tokenizer == "teacher":
        check_same_vocab(tokenizer_t, load_tokenizer(source, recipe.security), "student.model")
    student = load_pretrained_student(
        source.value,
        teacher,
        use_safetensors=not recipe.security.allow_pickle,
        trust_remote_code=recipe.security.trust_remote_code,
    )
    if s.model_layers is not None:
        student = keep_checkpoint_layers(student, s.model_layers)
    return student, None


def student_tokenizer(recipe: Recipe, tokenizer_t):
    """The tokenizer the student reads, trains on and ships with: the teacher's, or with
    `student.tokenizer: own` its checkpoint's (`student.model`)."""
    s = recipe.student
    if s.tokenizer != "own":
        return tokenizer_t
    source = resolve_model(s.model, recipe.security, "student.model")
    return load_tokenizer(source, recipe.security)


STUDENT_KINDS: dict[str, Callable[[Recipe, Any, Any, Any], Built]] = {
    "teacher_layers": teacher_layers,
    "config": fresh_config,
    "prune": pruned,
    "pretrained": pretrained,
    **TOKEN_BUILDERS,  # static, cnn, bilstm: token vectors from the teacher (token_kinds.py)
}


def student_kind(recipe: Recipe) -> str:
    """The kind the recipe's `student` section names (a key of STUDENT_KINDS)."""
    s = recipe.student
    return "prune" if s.init == "config" and s.init_weights == "prune" else s.init


def build_student(recipe: Recipe, teacher, tokenizer_t, train_set=None) -> Built:
    """(student, teacher layers it was copied or cut from, or None)."""
    build = lookup(STUDENT_KINDS, student_kind(recipe), "student kind")
    return build(recipe, teacher, tokenizer_t, train_set)


def calibration_batches(train_set, tokenizer, rows: int, seed: int, batch_size: int = 64):
    """A seeded sample of `rows` training rows, padded per batch (torch tensors): what the teacher
    runs on to rank channels, heads and neurons for pruning."""
    import torch

    if train_set is None:
        raise ValueError("student.init_weights 'prune' needs the training split to rank weights")
    sample = train_set.shuffle(seed=seed).select(range(min(rows, len(train_set))))
    for _, batch in padded_batches(sample, tokenizer.pad_token_id, batch_size):
        yield {k: torch.from_numpy(v) for k, v in batch.items()}
