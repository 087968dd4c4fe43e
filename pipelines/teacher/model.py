"""The teacher model a recipe's `teacher` section describes: a pretrained checkpoint (loaded
safely) or a fresh BERT with a vocabulary trained on the data. Used by the teacher stage and by
its multi-task variant (pipelines/multitask/teacher_variant.py)."""

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
            tokenizer = _word_ready(
                model_source(t.tokenizer, "teacher.tokenizer"), recipe.security, kind
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
            kind=kind,
        )
        return tokenizer, model
    source = resolve_model(t.model, recipe.security, "teacher.model")
    tokenizer_source = model_source(t.tokenizer, "teacher.tokenizer") if t.tokenizer else source
    tokenizer = _word_ready(tokenizer_source, recipe.security, kind)
    model = load_classifier(
        source,
        recipe.task.labels,
        recipe.security,
        finetuned=not t.finetune,
        kind=kind,
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


def _word_ready(source, security, kind):
    """The tokenizer of `source`; for token classification a byte-level BPE one (RoBERTa) is
    loaded with add_prefix_space=True, as transformers' token-classification examples load it:
    it reads pre-split words only with a space marked before each (saved so with the teacher)."""
    tokenizer = load_tokenizer(source, security)
    if kind.token_level and _byte_level_without_prefix(tokenizer):
        tokenizer = load_tokenizer(source, security, add_prefix_space=True)
    return tokenizer


def _byte_level_without_prefix(tokenizer) -> bool:
    """Whether a fast tokenizer pre-tokenizes byte-level without marking the first word's space
    (every tokenizer class carries `add_prefix_space`; only byte-level BPE reads it)."""
    import json

    if not getattr(tokenizer, "is_fast", False):
        return False
    state = json.loads(tokenizer.backend_tokenizer.to_str()).get("pre_tokenizer") or {}
    steps = [state, *(state.get("pretokenizers") or [])]
    return any(p.get("type") == "ByteLevel" and not p.get("add_prefix_space") for p in steps)
