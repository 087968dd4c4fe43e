"""The whole recipe: its sections in the order a recipe file lists them, the rules across
sections, and one table of what the task types and a multi-task run do not do yet."""

import re
from collections.abc import Callable
from typing import Any, NamedTuple

from distill.token_students import TOKEN_KINDS
from pipelines.core.config.deploy_keys import (
    BenchConfig,
    BundleConfig,
    ExportConfig,
    QuantizeConfig,
)
from pipelines.core.config.distill_keys import DistillConfig
from pipelines.core.config.model_keys import StudentConfig, TeacherConfig
from pipelines.core.config.run_keys import DataConfig, SecurityConfig, TaskConfig, TrainConfig
from pipelines.core.config.search_keys import SearchConfig
from pipelines.core.config.transfer_keys import TransferConfig
from pipelines.core.errors import ConfigError, shown
from pipelines.core.schema import Int, Section, Str, checks, f, to_dict


class Recipe(Section):
    name: Str = f(help="run folder runs/<name>/")
    task: TaskConfig = f(help="columns and labels")
    data: DataConfig = f(help="where the data comes from")
    teacher: TeacherConfig = f(help="the teacher model")
    seed: Int = f(42, min=0, max=2**32 - 1, help="seed for sampling, init and training")
    student: StudentConfig = f(StudentConfig, help="the student model")
    distill: DistillConfig = f(DistillConfig, help="the distillation loss and trainer")
    export: ExportConfig = f(ExportConfig, help="ONNX export, graph optimisation, parity")
    quantize: QuantizeConfig = f(QuantizeConfig, help="int8 quantization and its accuracy gate")
    bench: BenchConfig = f(BenchConfig, help="latency/accuracy benchmark")
    bundle: BundleConfig = f(BundleConfig, help="edge bundle: ONNX + tokenizer + predict.py")
    search: SearchConfig = f(SearchConfig, help="student search (off unless enabled)")
    transfer: TransferConfig = f(
        TransferConfig, help="source tasks for cross-task transfer", hash="when_set"
    )
    train: TrainConfig = f(TrainConfig, help="settings shared by the training stages")
    security: SecurityConfig = f(SecurityConfig, help="what untrusted code may run")

    @checks
    def check(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ConfigError(
                f"name: {shown(self.name)} is not a valid run folder name; use letters, digits, '.', '_' "
                "and '-'."
            )
        if self.quantize.teacher and not self.export.teacher:
            raise ConfigError(
                "quantize.teacher: true needs the teacher's ONNX export, but export.teacher is "
                "false; set export.teacher: true, or quantize.teacher: false."
            )
        binary = len(self.task.labels) == 2
        if self.transfer.enabled and self.transfer.target_metric == "f1" and not binary:
            raise ConfigError(
                "transfer.target_metric: f1 is the binary F1 and needs two labels; the target "
                f"has {len(self.task.labels)}. Use target_metric: accuracy."
            )
        refuse_what_is_not_supported(self)
        refuse_what_needs_one_tokenizer(self)


class Refusal(NamedTuple):
    used: Callable[[Recipe], bool]  # does the recipe ask for it?
    where: frozenset[str]  # refused under these task types, and/or "transfer" (a multi-task run)


TRANSFER = "transfer"
TOKEN_STUDENT = "token_student"  # student.init static, cnn or bilstm (distill/token_models.py)
NOT_SINGLE_LABEL = frozenset({"multi_label", "regression", "token_classification"})

# What a run does not do yet, refused before any work with the reason: the task types other than
# single_label (each of these features reads one class prediction per row), and a multi-task run
# (`transfer.sources`: the source tasks are its extra data). A feature that learns a new case
# drops one name from its row; a new refusal is one row. Keys in the order they are checked.
REFUSALS: dict[str, Refusal] = {
    "transfer.sources": Refusal(lambda r: r.transfer.enabled, NOT_SINGLE_LABEL),
    # per-token teacher logits would need aligning word by word across two tokenizations, and
    # the tasks of a multi-task run share one encoder and its tokenizer
    "student.tokenizer own": Refusal(
        lambda r: r.student.tokenizer == "own", frozenset({"token_classification", TRANSFER})
    ),
    # a token-vector student: vectors, one pooling, a head; no layers to match or fake-quantize
    # (INC: skipped by the quantize stage, as for token heads)
    "distill.matches": Refusal(lambda r: bool(r.distill.matches), frozenset({TOKEN_STUDENT})),
    "student.init": Refusal(lambda r: r.student.init in TOKEN_KINDS, NOT_SINGLE_LABEL | {TRANSFER}),
    "distill.qat.epochs": Refusal(
        lambda r: r.distill.qat.epochs > 0, NOT_SINGLE_LABEL | {TRANSFER, TOKEN_STUDENT}
    ),
    "distill.augment.factor": Refusal(
        lambda r: r.distill.augment.factor > 0, NOT_SINGLE_LABEL | {TRANSFER}
    ),
    # unlabelled rows carry label -100, which only the single-label task loss leaves out
    "distill.unlabelled": Refusal(
        lambda r: r.distill.unlabelled is not None, NOT_SINGLE_LABEL | {TRANSFER}
    ),
    # the multi-task variant trains on the source tasks' rows: sized by transfer, not by auto
    "distill.auto": Refusal(lambda r: r.distill.auto, frozenset({TRANSFER})),
    "distill.ablation": Refusal(
        lambda r: r.distill.ablation, NOT_SINGLE_LABEL | {TRANSFER, TOKEN_STUDENT}
    ),
    "distill.two_step": Refusal(
        lambda r: r.distill.two_step > 0, frozenset({TRANSFER, TOKEN_STUDENT})
    ),
    "distill.cache_speedup_steps": Refusal(
        lambda r: bool(r.distill.cache_speedup_steps), NOT_SINGLE_LABEL | {TRANSFER, TOKEN_STUDENT}
    ),
    "search.enabled": Refusal(lambda r: r.search.enabled, NOT_SINGLE_LABEL | {TRANSFER}),
    # the multi-task teacher trains on every row of every task
    "teacher.train_rows": Refusal(
        lambda r: r.teacher.train_rows is not None, frozenset({TRANSFER})
    ),
    # the type's own KD (sigmoid KD, MSE to the teacher) replaces the softmax KD losses; token
    # classification is softmax KD per word, so any kd_loss applies there
    "distill.kd_loss": Refusal(
        lambda r: r.distill.kd_loss != "kl", frozenset({"multi_label", "regression"})
    ),
    # prune builds a …ForSequenceClassification (INC: skipped by the quantize stage)
    "student.init_weights prune": Refusal(
        lambda r: r.student.init == "config" and r.student.init_weights == "prune",
        frozenset({"token_classification"}),
    ),
}


def refuse_what_is_not_supported(recipe: Recipe) -> None:
    """The first row of `REFUSALS` the recipe uses where it is refused: a multi-task run first,
    then the task type."""
    contexts = []
    searched = [k for k in recipe.search.space.kinds if k in TOKEN_KINDS]
    if recipe.student.init in TOKEN_KINDS or (recipe.search.enabled and searched):
        where, fix = (
            (f"student.init {recipe.student.init}", "use a transformer student (init: "
             "teacher_layers or config)")
            if recipe.student.init in TOKEN_KINDS
            else (f"search.space.kinds {shown(searched)} (the search trains them and may pick "
                  "one)", "leave static, cnn and bilstm out of search.space.kinds")
        )  # fmt: skip
        contexts.append(
            (
                TOKEN_STUDENT,
                f"not supported with {where}: a token-vector student has no hidden states or "
                "attentions to match and no layers for NNCF fake-quant; it learns the teacher's "
                f"logits (kd) and the labels (task). Remove the key, or {fix}.",
            )
        )
    if recipe.transfer.enabled:
        contexts.append(
            (
                TRANSFER,
                "not supported with transfer.sources (a multi-task run); the source tasks are "
                "the extra data. Remove the key, or run the target task alone.",
            )
        )
    if recipe.task.type != "single_label":
        contexts.append(
            (
                recipe.task.type,
                f"not supported with task.type {recipe.task.type} yet (single_label only). "
                "Remove the key, or use task.type: single_label.",
            )
        )
    for context, reason in contexts:
        for key, refusal in REFUSALS.items():
            if context in refusal.where and refusal.used(recipe):
                raise ConfigError(f"{key}: {reason}")


class NeedsOneTokenizer(NamedTuple):
    used: Callable[[Recipe], bool]  # does the recipe ask for it?
    why: str  # why it needs teacher and student to read the same token ids


FEEDS_ONE_BATCH = "feeds one batch of token ids to teacher and student"

# What needs teacher and student to read one tokenizer, refused for a student that reads its own
# (`student.tokenizer: own`): only the teacher's logits per row of text reach that student, from
# the cache (`pipelines/stages/distill.py`). Word-level augmentations (ngram, dropout, shuffle,
# mlm) work on raw text, which each model tokenizes its own way, so they are not here.
NEEDS_ONE_TOKENIZER: dict[str, NeedsOneTokenizer] = {
    "distill.matches": NeedsOneTokenizer(
        lambda r: bool(r.distill.matches), "the matches compare the two models token by token"
    ),
    "distill.cache_teacher_logits": NeedsOneTokenizer(
        lambda r: not r.distill.cache_teacher_logits,
        f"false runs the teacher live, which {FEEDS_ONE_BATCH}; leave it true (the teacher's "
        "logits are then computed once, each row read through the teacher's own tokenizer)",
    ),
    "distill.augment.methods": NeedsOneTokenizer(
        lambda r: r.distill.augment.factor > 0 and "mask" in r.distill.augment.methods,
        "'mask' writes the teacher's mask token into the text, which the student's tokenizer "
        "splits into word pieces; list only the methods that work on raw text (ngram, dropout, "
        "shuffle, mlm)",
    ),
    "distill.ablation": NeedsOneTokenizer(
        lambda r: r.distill.ablation, "its variants with matches compare the models token by token"
    ),
    "distill.cache_speedup_steps": NeedsOneTokenizer(
        lambda r: bool(r.distill.cache_speedup_steps),
        f"it times the teacher run live, which {FEEDS_ONE_BATCH}",
    ),
    "search.enabled": NeedsOneTokenizer(
        lambda r: r.search.enabled,
        "its candidates are cut from the teacher and read the teacher's tokenizer",
    ),
}


def refuse_what_needs_one_tokenizer(recipe: Recipe) -> None:
    """The first row of `NEEDS_ONE_TOKENIZER` a recipe uses whose student reads its own tokenizer."""
    if recipe.student.tokenizer != "own":
        return
    for key, row in NEEDS_ONE_TOKENIZER.items():
        if row.used(recipe):
            raise ConfigError(
                f"{key}: needs one tokenizer for teacher and student, and this student reads its "
                f"own (student.tokenizer: own): {row.why}. Remove the key, or use "
                "student.tokenizer: teacher with a student of the teacher's vocabulary."
            )


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    return to_dict(recipe)
