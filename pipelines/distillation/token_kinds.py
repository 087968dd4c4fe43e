"""The token-vector kinds of student (`student.init` static, cnn, bilstm): the recipe's
`student.tokens` handed to the library builder `distill.token_students.token_student`."""

from __future__ import annotations

from functools import partial
from typing import Any

from distill.token_students import TOKEN_KINDS, token_student
from pipelines.core.config import Recipe


def build_token_student(
    kind: str, recipe: Recipe, teacher, tokenizer_t, train_set
) -> tuple[Any, None]:
    """(the `kind` student with vectors from the teacher, None: no teacher layer is copied)."""
    t = recipe.student.tokens
    student = token_student(
        teacher,
        tokenizer_t,
        kind,
        width=t.width,
        vectors=t.vectors,
        token_weights=t.token_weights,
        kernel_sizes=t.kernel_sizes,
        filters=t.filters,
        lstm_hidden=t.lstm_hidden,
        head_hidden=t.head_hidden,
        dropout=t.dropout,
        seed=recipe.seed,
    )
    return student, None


TOKEN_BUILDERS = {kind: partial(build_token_student, kind) for kind in TOKEN_KINDS}
