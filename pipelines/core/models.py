"""Load teachers safely, or build a tiny one from a config (the offline demo).

Safe by default: weights load from safetensors only, a checkpoint that ships only pickle weights
(`pytorch_model.bin`, `*.pt`) or custom code (`auto_map`) is refused unless the recipe sets
`security.allow_pickle` / `security.trust_remote_code`.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelkit.task_types import TaskType, task_type
from pipelines.core.config import ModelShape, Recipe, SecurityConfig
from pipelines.core.errors import DistilleryError, UnsafeSourceError
from pipelines.core.sources import Source, model_source

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def check_local_model(folder: Path, security: SecurityConfig, key: str) -> None:
    """Refuse pickle-only weights and remote code before anything is loaded."""
    config = folder / "config.json"
    if not config.is_file():
        raise DistilleryError(
            f"{key}: {folder} has no config.json; expected a Hugging Face model folder "
            "(save_pretrained layout)."
        )
    try:
        meta = json.loads(config.read_text())
    except json.JSONDecodeError as exc:
        raise DistilleryError(f"{config}: not valid JSON ({exc}).") from None
    if meta.get("auto_map") and not security.trust_remote_code:
        raise UnsafeSourceError(
            f"{key}: {folder} ships its own model code (auto_map in config.json); running it is "
            "refused. If you trust it, set security.trust_remote_code: true in the recipe."
        )
    safetensors = list(folder.glob("*.safetensors"))
    pickles = [
        p for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES and "training_args" not in p.name
    ]
    if not safetensors and pickles and not security.allow_pickle:
        raise UnsafeSourceError(
            f"{key}: {folder} has only pickle weights ({', '.join(p.name for p in pickles)}), which can "
            "run arbitrary code when loaded. Convert them to safetensors, or, if you trust the file, "
            "set security.allow_pickle: true in the recipe."
        )


def resolve_model(value: str, security: SecurityConfig, key: str) -> Source:
    source = model_source(value, key)
    if source.kind == "local":
        check_local_model(source.path, security, key)
    return source


def load_tokenizer(source: Source, security: SecurityConfig, **kwargs):
    """AutoTokenizer of `source`; kwargs go to from_pretrained (e.g. add_prefix_space)."""
    from transformers import AutoTokenizer

    from modelkit.files import VOCAB_FILES

    if source.kind == "local" and not any((source.path / n).is_file() for n in VOCAB_FILES):
        raise DistilleryError(
            f"{source.key}: {source.value} holds no tokenizer (none of {', '.join(VOCAB_FILES)}); "
            "save the tokenizer the model was trained with there (tokenizer.save_pretrained)."
        )
    try:
        return AutoTokenizer.from_pretrained(
            source.value, trust_remote_code=security.trust_remote_code, **kwargs
        )
    except Exception as exc:
        raise DistilleryError(
            f"{source.key}: cannot load a tokenizer from {source.value}: {exc}"
        ) from None


def head_class(head: str, family: str = "Auto"):
    """transformers' `<family>For<head>` class: AutoModelForTokenClassification,
    BertForSequenceClassification, ... (`TaskType.head` names the head)."""
    import transformers

    return getattr(transformers, f"{family}For{head}")


def saved_head(folder: Path, trust_remote_code: bool = False) -> str:
    """The head (`TaskType.head`) of a model folder this pipeline saved, from its config."""
    from transformers import AutoConfig

    from distill.token_students import register
    from modelkit.task_types import task_type_of

    register()  # a token-vector student (static, cnn, bilstm) loads as the Auto classes' own
    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust_remote_code)
    return task_type_of(config).head


SINGLE_LABEL = task_type("single_label")


def label_config(labels: list[str], kind: TaskType) -> dict:
    """The config keys of a classifier's head: its labels both ways, and the problem type (which
    loss transformers computes; a token head has none, its loss is fixed)."""
    id2label = dict(enumerate(labels))
    config = {
        "num_labels": len(labels),
        "id2label": id2label,
        "label2id": {v: k for k, v in id2label.items()},
    }
    if kind.problem_type is not None:
        config["problem_type"] = kind.problem_type
    return config


def load_classifier(
    source: Source,
    labels: list[str],
    security: SecurityConfig,
    *,
    finetuned: bool,
    kind: TaskType = SINGLE_LABEL,
):
    """AutoModelFor<kind.head> with the task's labels and problem type; errors name the file."""
    from transformers import AutoConfig

    head = kind.head
    try:
        config = AutoConfig.from_pretrained(
            source.value, trust_remote_code=security.trust_remote_code
        )
    except Exception as exc:
        raise DistilleryError(
            f"{source.key}: cannot read the config of {source.value}: {exc}"
        ) from None
    heads = getattr(config, "architectures", None) or []
    if finetuned and heads and not any(a.endswith(f"For{head}") for a in heads):
        raise DistilleryError(
            f"{source.key}: {source.value} is a {', '.join(heads)}, not a …For{head} model, which "
            "this task type needs (task.type). Use a checkpoint fine-tuned for this kind of task, "
            "or set teacher.finetune: true to train a new head."
        )
    if finetuned and config.num_labels != len(labels):
        raise DistilleryError(
            f"{source.key}: {source.value} is a classifier with {config.num_labels} labels but "
            f"task.labels has {len(labels)} ({labels}). Use a checkpoint fine-tuned for this task, or set "
            "teacher.finetune: true to train a new head."
        )
    try:
        return head_class(head, "AutoModel").from_pretrained(
            source.value,
            use_safetensors=not security.allow_pickle,
            trust_remote_code=security.trust_remote_code,
            ignore_mismatched_sizes=not finetuned,
            **label_config(labels, kind),
        )
    except Exception as exc:
        files = (
            ", ".join(sorted(p.name for p in source.path.glob("*")))
            if source.kind == "local"
            else ""
        )
        raise DistilleryError(
            f"{source.key}: cannot load weights from {source.value} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:300]}). The weight file may be truncated or corrupted"
            + (f"; files there: {files}" if files else "")
            + "."
        ) from None


def build_word_vocab(texts: list[str], out_dir: Path, max_size: int = 5000):
    """A BERT tokenizer whose vocabulary is the task's own words (the demo teacher has none).

    Built by hand rather than with `tokenizers`' WordPiece trainer: that trainer breaks frequency
    ties in hash order, so the same data gave different vocabularies (and different training runs)
    from one process to the next. Words are counted after BERT's basic split (lower-cased words and
    single punctuation marks) and ordered by frequency, then alphabetically.
    """
    import re
    from collections import Counter

    from transformers import BertTokenizerFast

    counts = Counter(w for text in texts for w in re.findall(r"\w+|[^\w\s]", text.lower()))
    words = sorted(counts, key=lambda w: (-counts[w], w))[: max_size - 5]
    text = "\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n"
    path = out_dir / "vocab.txt"
    if not (path.is_file() and path.read_text() == text):  # DDP: rank 0 wrote it, the rest read
        from pipelines.core.runs import atomic_write_text

        atomic_write_text(path, text)
    return BertTokenizerFast(vocab_file=str(path), do_lower_case=True)


def bert_from_shape(
    shape: ModelShape,
    vocab_size: int,
    labels: list[str],
    max_positions: int,
    seed: int,
    kind: TaskType = SINGLE_LABEL,
):
    import torch
    from transformers import BertConfig

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        intermediate_size=shape.intermediate_size,
        max_position_embeddings=max(max_positions, 64),
        **label_config(labels, kind),
    )
    torch.manual_seed(seed)
    return head_class(kind.head, "Bert")(config)


def teacher_sources(recipe: Recipe) -> list[tuple[Source, str]]:
    """The hub/local sources the teacher stage will read, for preflight and dry runs."""
    found = []
    if recipe.teacher.init == "pretrained" and recipe.teacher.model:
        found.append(
            (resolve_model(recipe.teacher.model, recipe.security, "teacher.model"), "model")
        )
    if recipe.teacher.tokenizer:
        found.append((model_source(recipe.teacher.tokenizer, "teacher.tokenizer"), "model"))
    return found


def load_stage_model(folder: Path, security: SecurityConfig):
    """A model this pipeline saved itself (safetensors), with its tokenizer.

    A teacher with its own code (trusted by `security.trust_remote_code`) saved that code beside
    its weights; it is loaded with the same trust, never with a prompt.
    """
    from transformers import AutoTokenizer

    trust = security.trust_remote_code
    try:
        model = head_class(saved_head(folder, trust), "AutoModel").from_pretrained(
            folder, use_safetensors=True, trust_remote_code=trust
        )
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=trust)
    except Exception as exc:
        raise DistilleryError(
            f"{folder}: cannot load the model saved there ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0][:200]}). Rerun the stage that wrote it with --force."
        ) from None
    return model, tokenizer


# What save_model writes, as a stage manifest's `artifacts`; a multi-task model adds its heads.
MODEL_ARTIFACTS = {
    "model": "model.safetensors",
    "config": "config.json",
    "tokenizer": "tokenizer.json",
}
HEADS_ARTIFACTS = {"heads": "heads.safetensors", "heads_config": "heads.json"}


def save_model(model, tokenizer, folder: Path) -> None:
    """`save_pretrained` of a stage's model (safetensors) and tokenizer. A model with its own
    code (`auto_map` in its config, trusted by the recipe) gets that code saved beside it, so
    the next stage loads it from this folder alone."""
    if getattr(model.config, "auto_map", None):
        from modelkit.task_types import task_type_of_model

        model.register_for_auto_class(f"AutoModelFor{task_type_of_model(model).head}")
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
