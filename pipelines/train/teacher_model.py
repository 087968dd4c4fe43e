"""The teacher model a recipe's `teacher` section describes: a pretrained checkpoint (loaded
safely) or a fresh BERT with a vocabulary trained on the data. Used by the teacher stage and by
the transfer teacher (pipelines/transfer/teacher.py)."""

from __future__ import annotations

from modelkit.task_types import task_type
from pipelines.core.context import StageContext
from pipelines.core.errors import ConfigError
from pipelines.core.models import (
    bert_from_shape,
    build_word_vocab,
    load_classifier,
    load_tokenizer,
    resolve_model,
)
from pipelines.core.sources import model_source
from pipelines.data.words import joined_words


def build_teacher(ctx: StageContext, data, extra_texts: list[str] = ()):
    """(tokenizer, model) as the recipe's `teacher` section describes; a vocabulary trained here
    also covers `extra_texts` (a transfer recipe's source tasks)."""
    recipe, t = ctx.recipe, ctx.recipe.teacher
    kind = task_type(recipe.task.type)
    if t.init == "config":
        if t.tokenizer:
            tokenizer = load_tokenizer(
                model_source(t.tokenizer, "teacher.tokenizer"), recipe.security
            )
        else:
            texts = [x for c in recipe.task.text_columns for x in joined_words(data.train[c])]
            texts += list(extra_texts)
            tokenizer = build_word_vocab(texts, ctx.out / "vocab")
        model = bert_from_shape(
            t.config,
            len(tokenizer),
            recipe.task.labels,
            recipe.data.max_length,
            recipe.seed,
            problem_type=kind.problem_type,
            head=kind.head,
        )
        return tokenizer, model
    source = resolve_model(t.model, recipe.security, "teacher.model")
    tokenizer_source = model_source(t.tokenizer, "teacher.tokenizer") if t.tokenizer else source
    tokenizer = load_tokenizer(tokenizer_source, recipe.security)
    if kind.token_level and getattr(tokenizer, "add_prefix_space", None) is False:
        # byte-level BPE (RoBERTa) reads pre-split words only with a space marked before each,
        # as transformers' token-classification examples load it; saved so with the teacher
        tokenizer = load_tokenizer(tokenizer_source, recipe.security, add_prefix_space=True)
    model = load_classifier(
        source,
        recipe.task.labels,
        recipe.security,
        finetuned=not t.finetune,
        problem_type=kind.problem_type,
        head=kind.head,
    )
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        key = "teacher.tokenizer" if t.tokenizer else "teacher.model"
        raise ConfigError(
            f"{key}: the tokenizer has {len(tokenizer)} tokens but the model's embedding table has "
            f"{rows} rows, so token ids {rows}..{len(tokenizer) - 1} would index past it. Use the "
            "tokenizer the model was trained with (leave teacher.tokenizer unset)."
        )
    return tokenizer, model
