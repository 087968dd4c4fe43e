"""Token-vector students built from the teacher: one vector per vocabulary token, then a static
mean, a CNN or a BiLSTM and a small head (the classes: `distill.token_models`).

    student = token_student(teacher, tokenizer, "cnn", width=128, vectors="forward")

The vectors come from the teacher, so nothing is downloaded:

- `forward` (Model2Vec's recipe, Tulkens & van Dongen 2024): each token alone through the
  teacher's encoder (`[CLS] token [SEP]`), the token's output vector kept, then PCA to `width`;
- `embeddings`: the teacher's input embedding table, PCA-projected to `width`.

The `model2vec` package computes `forward` vectors too, but it is not used: it is not installed
here (an optional extra we cannot add offline), it returns its own StaticModel rather than
vectors for a trainable torch table, and what we would take from it is the dozen lines below.

torch is imported inside the functions, so recipe validation reads TOKEN_KINDS and
VECTOR_SOURCES without it.
"""

from __future__ import annotations

import logging

log = logging.getLogger("distillery")

MODEL_TYPE = "distillery_token_student"  # config.json's model_type of every kind
TOKEN_KINDS = ("static", "cnn", "bilstm")  # student kinds that are not transformers
VECTOR_SOURCES = ("forward", "embeddings")  # where the token vectors come from (docstring)


def register() -> None:
    """Make `AutoConfig` and `AutoModelForSequenceClassification` load a saved token student
    (our own classes: no remote code runs). Idempotent."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from distill.token_models import TokenStudentConfig, TokenStudentForSequenceClassification

    AutoConfig.register(MODEL_TYPE, TokenStudentConfig, exist_ok=True)
    AutoModelForSequenceClassification.register(
        TokenStudentConfig, TokenStudentForSequenceClassification, exist_ok=True
    )


def is_token_student(config) -> bool:
    """Whether a model config (object, or config.json read as a dict) is a token student's."""
    if isinstance(config, dict):
        return config.get("model_type") == MODEL_TYPE
    return getattr(config, "model_type", None) == MODEL_TYPE


def teacher_token_vectors(teacher, tokenizer, source: str, batch_size: int = 512):
    """[vocab_size, teacher_width] float32 tensor: one vector per token id (see the module
    docstring); the padding token's row is zero."""
    import torch

    from modelkit.errors import InputError

    if source not in VECTOR_SOURCES:
        raise InputError(f"student.vectors: unknown {source!r}; known: {sorted(VECTOR_SOURCES)}")
    table = teacher.get_input_embeddings().weight.detach().float()
    if source == "forward":
        encoder = teacher.base_model.eval()
        device = table.device
        ids = torch.arange(table.shape[0], device=device)
        cls = (
            tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
        )
        sep = (
            tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
        )
        if cls is None or sep is None:
            raise InputError(
                "student.vectors 'forward' wraps each token in the tokenizer's [CLS]/[SEP] (or "
                "BOS/EOS) tokens, and this tokenizer has none; use student.vectors: embeddings."
            )
        out = []
        with torch.inference_mode():
            for start in range(0, len(ids), batch_size):
                chunk = ids[start : start + batch_size].unsqueeze(1)
                batch = torch.cat(
                    [torch.full_like(chunk, cls), chunk, torch.full_like(chunk, sep)], dim=1
                )
                hidden = encoder(input_ids=batch, attention_mask=torch.ones_like(batch))[0]
                out.append(hidden[:, 1].float())
        table = torch.cat(out)
    table = table.clone()
    if tokenizer.pad_token_id is not None:
        table[tokenizer.pad_token_id] = 0.0
    return table


def token_student(
    teacher,
    tokenizer,
    kind: str,
    *,
    width: int = 256,
    vectors: str = "forward",
    token_weights: bool = True,
    kernel_sizes: list[int] | tuple[int, ...] = (3, 4, 5),
    filters: int = 100,
    lstm_hidden: int = 128,
    head_hidden: int = 0,
    dropout: float = 0.1,
    seed: int = 0,
):
    """A `TokenStudentForSequenceClassification` of `kind` with the teacher's labels, its token
    table the teacher's vectors PCA-projected to `width` (at most the teacher's width), scaled
    to the teacher's embedding norm."""
    import torch

    from distill.student import pca_basis
    from distill.token_models import TokenStudentConfig, TokenStudentForSequenceClassification
    from modelkit.errors import InputError
    from modelkit.task_types import task_type_of_model

    if kind not in TOKEN_KINDS:
        raise InputError(f"student kind {kind!r}: known token students {sorted(TOKEN_KINDS)}")
    if task_type_of_model(teacher).token_level:
        raise InputError(f"a {kind} student classifies whole rows; this teacher tags tokens.")
    table = teacher_token_vectors(teacher, tokenizer, vectors)
    basis = pca_basis(table, width)
    projected = (table - table.mean(0, keepdim=True)) @ basis
    scale = teacher.get_input_embeddings().weight.detach().float().norm(dim=1).mean()
    projected = projected * (scale / projected.norm(dim=1).mean().clamp(min=1e-6))
    if tokenizer.pad_token_id is not None:
        projected[tokenizer.pad_token_id] = 0.0
    t = teacher.config
    config = TokenStudentConfig(
        student_kind=kind,
        vocab_size=table.shape[0],
        width=projected.shape[1],
        token_weights=token_weights,
        kernel_sizes=list(kernel_sizes),
        filters=filters,
        lstm_hidden=lstm_hidden,
        head_hidden=head_hidden,
        dropout=dropout,
        pad_token_id=tokenizer.pad_token_id or 0,
        num_labels=t.num_labels,
        id2label=dict(t.id2label),
        label2id=dict(t.label2id),
        problem_type=getattr(t, "problem_type", None),
    )
    torch.manual_seed(seed)
    student = TokenStudentForSequenceClassification(config)
    with torch.no_grad():
        student.embeddings.weight.copy_(projected)
    log.info(
        "%s student: %d token vectors (%s) of width %d, %d parameters",
        kind,
        table.shape[0],
        vectors,
        config.width,
        sum(p.numel() for p in student.parameters()),
    )
    return student.train()
