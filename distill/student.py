"""Build the student: teacher layers copied, a fresh BERT from a config, or a pretrained checkpoint.

Every student is a plain `…ForSequenceClassification` (`…ForTokenClassification` for a token
teacher) with the teacher's labels; nothing
training-only (projections, hooks) is attached to it. torch is imported inside the functions, so
recipe validation reads EMBEDDING_INITS without loading it.
"""

from __future__ import annotations

import copy
from operator import attrgetter
from typing import TYPE_CHECKING

from modelkit.errors import InputError
from modelkit.families import encoder_layers, family_of
from modelkit.task_types import task_type_of_model

if TYPE_CHECKING:
    import torch


def check_supported(model, what: str) -> None:
    """InputError unless the model is of an encoder family in `modelkit.families.FAMILIES`."""
    family_of(model.config, what, type(model).__name__)


def check_teacher_layers(layers: list[int], n_teacher: int) -> None:
    """`student.layers` are indices into the teacher's layers (copied or cut from)."""
    bad = [i for i in layers if not 0 <= i < n_teacher]
    if bad:
        raise InputError(
            f"student.layers: {bad} out of range; the teacher has {n_teacher} layers, valid indices "
            f"0..{n_teacher - 1}"
        )


def check_layer_count(layers: list[int], n_student: int) -> None:
    """A student cut layer by layer from the teacher names one teacher layer per student layer."""
    if len(layers) != n_student:
        raise InputError(
            f"student.layers: {layers!r} lists {len(layers)} teacher layers for a {n_student}-layer "
            "student; give one teacher layer per student layer (e.g. [0, 2, 3, 5] for 4 of 6)."
        )


def from_teacher_layers(teacher, layers: list[int]):
    """Copy the embeddings, the listed layers (in order) and the classifier head (DistilBERT-style)."""
    import torch

    check_supported(teacher, "student.init 'teacher_layers'")
    check_teacher_layers(layers, teacher.config.num_hidden_layers)
    student = copy.deepcopy(teacher)
    kept = torch.nn.ModuleList([copy.deepcopy(encoder_layers(teacher)[i]) for i in layers])
    family = family_of(teacher.config, "student.init 'teacher_layers'")
    parent, _, attr = family.layers_attr.rpartition(".")
    setattr(attrgetter(parent)(student.base_model), attr, kept)
    student.config.num_hidden_layers = len(layers)
    student.requires_grad_(True)  # the teacher may be frozen (DistillationTrainer freezes it)
    student.train()
    for new_index, layer in enumerate(kept):  # keep per-layer indices consistent (caches, sdpa)
        attention = getattr(layer.attention, "self", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = new_index
    return student


def from_config(
    teacher,
    num_hidden_layers: int,
    hidden_size: int,
    num_attention_heads: int,
    intermediate_size: int,
    init_embeddings: str = "truncate",
    seed: int = 0,
):
    """A fresh BERT of the given shape, with the teacher's vocabulary, labels and positions.

    init_embeddings 'truncate' copies the teacher's word, position and token-type embeddings (the
    ones it has), keeping the first `hidden_size` dimensions (zero-padded if wider); 'pca'
    projects them onto the top `hidden_size` principal directions of the teacher's word
    embeddings (one projection for all three tables, so their sums stay consistent), which keeps
    more of the teacher's geometry than dropping dimensions; 'none' keeps the random init.
    """
    import torch
    import transformers

    t = teacher.config
    config = transformers.BertConfig(
        vocab_size=t.vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=num_attention_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=t.max_position_embeddings,
        # at least one row: a teacher without a segment table (DistilBERT, most DeBERTa-v2)
        # gives a student whose token_type_ids are all zeros, as the data feeds it
        type_vocab_size=max(getattr(t, "type_vocab_size", None) or 1, 1),
        pad_token_id=getattr(t, "pad_token_id", 0),
        num_labels=t.num_labels,
        id2label=dict(t.id2label),
        label2id=dict(t.label2id),
        problem_type=getattr(t, "problem_type", None),
    )
    torch.manual_seed(seed)
    student = getattr(transformers, f"BertFor{task_type_of_model(teacher).head}")(config)
    if init_embeddings not in EMBEDDING_INITS:
        raise InputError(
            f"student.init_embeddings: unknown {init_embeddings!r}; known: {list(EMBEDDING_INITS)}"
        )
    if init_embeddings != "none":
        source = teacher.base_model.embeddings
        target = student.base_model.embeddings
        basis = None
        if init_embeddings == "pca":
            basis = pca_basis(source.word_embeddings.weight.detach().float(), hidden_size)
        with torch.no_grad():
            for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
                if getattr(source, name, None) is None:
                    continue  # DistilBERT has no segment table, DeBERTa-v2 often no positions
                src, dst = getattr(source, name).weight.float(), getattr(target, name).weight
                rows = min(src.shape[0], dst.shape[0])
                dst.zero_()
                if basis is None:
                    width = min(src.shape[1], dst.shape[1])
                    dst[:rows, :width] = src[:rows, :width]
                else:
                    projected = src[:rows] @ basis
                    dst[:rows, : projected.shape[1]] = projected
    return student


EMBEDDING_INITS = ("none", "truncate", "pca")


def pca_basis(weight: torch.Tensor, width: int) -> torch.Tensor:
    """(teacher_width, k) orthonormal columns: the top-k right singular vectors of the centred
    embedding matrix, k = min(width, teacher_width). Projections preserve dot products within the
    kept subspace, which is what attention reads."""
    import torch

    centred = weight - weight.mean(dim=0, keepdim=True)
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    return vh[: min(width, weight.shape[1])].T.contiguous()


def check_same_vocab(tokenizer_t, tokenizer_s, where: str) -> None:
    """Teacher and student must tokenize identically: one batch feeds both."""
    vocab_t, vocab_s = tokenizer_t.get_vocab(), tokenizer_s.get_vocab()
    if vocab_t != vocab_s:
        only_t = len(set(vocab_t) - set(vocab_s))
        only_s = len(set(vocab_s) - set(vocab_t))
        raise InputError(
            f"{where}: the student's vocabulary differs from the teacher's ({len(vocab_s)} vs "
            f"{len(vocab_t)} tokens; {only_s} only in the student, {only_t} only in the teacher). "
            "Teacher and student must share one tokenizer, since one batch feeds both; pick a "
            "student checkpoint with the teacher's vocabulary, use student.init: teacher_layers or "
            "config, or set student.tokenizer: own to train the student on its own tokenizer "
            "(logit KD from the teacher's logits per row of text)."
        )
    lower_t = getattr(tokenizer_t, "do_lower_case", None)
    lower_s = getattr(tokenizer_s, "do_lower_case", None)
    if None not in (lower_t, lower_s) and lower_t != lower_s:
        raise InputError(f"{where}: the student lower-cases text differently from the teacher.")


def keep_checkpoint_layers(student, layers: list[int]):
    """A checkpoint student cut to its layers `layers` (in order): embeddings, those layers and
    the head, as `from_teacher_layers` copies them from a teacher."""
    n_layers = student.config.num_hidden_layers
    bad = [i for i in layers if not 0 <= i < n_layers]
    if bad:
        raise InputError(
            f"student.model_layers: {bad} out of range; the checkpoint has {n_layers} layers, "
            f"valid indices 0..{n_layers - 1}"
        )
    return from_teacher_layers(student, layers)


def load_pretrained_student(
    path: str, teacher, *, use_safetensors: bool = True, trust_remote_code: bool = False
):
    import transformers

    head = task_type_of_model(teacher).head
    student = getattr(transformers, f"AutoModelFor{head}").from_pretrained(
        path,
        num_labels=teacher.config.num_labels,
        id2label=dict(teacher.config.id2label),
        label2id=dict(teacher.config.label2id),
        problem_type=getattr(teacher.config, "problem_type", None),
        use_safetensors=use_safetensors,
        trust_remote_code=trust_remote_code,
        ignore_mismatched_sizes=True,
    )
    check_supported(student, "student.init 'pretrained'")
    return student
