"""Keys every training run reads: the task, the data, the training knobs the teacher and
distill sections share, the `train` section, and what untrusted code may do."""

from typing import Literal

from pipelines.core.errors import ConfigError, shown
from pipelines.core.schema import Bool, Float, Int, Section, Str, checks, f


class TaskConfig(Section):
    type: Literal["single_label", "multi_label", "regression", "token_classification"] = f(
        "single_label",
        help="single_label (softmax), multi_label (a sigmoid per label), regression (a number) "
        "or token_classification (a BIO tag per word, e.g. NER)",
        hash="when_set",
    )
    text_columns: list[Str] = f(
        ["text"],
        help="one column, or two for sentence pairs (token_classification: one column of word lists)",
    )
    label_column: Str = f(
        "label",
        help="label column: an index or name; multi_label a list of them; regression a number; "
        "token_classification a list of tags, one per word",
    )
    labels: list[Str] = f(
        ["negative", "positive"], help="label names, in index order (regression: one output name)"
    )

    @checks
    def check(self) -> None:
        if len(self.text_columns) not in (1, 2):
            raise ConfigError(
                f"task.text_columns: {shown(self.text_columns)} has {len(self.text_columns)} columns; "
                "allowed values: one column (single sentence) or two (sentence pair)."
            )
        if self.type == "token_classification":
            self._check_tags()
        if self.type == "regression":
            if len(self.labels) != 1:
                raise ConfigError(
                    f"task.labels: {shown(self.labels)}; a regression task has one output: give its "
                    "name alone, e.g. labels: [score]."
                )
        elif len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ConfigError(
                f"task.labels: {shown(self.labels)}; give at least two distinct label names, in index order."
            )

    def _check_tags(self) -> None:
        from modelkit.entities import bad_tags

        if len(self.text_columns) != 1:
            raise ConfigError(
                f"task.text_columns: {shown(self.text_columns)}; token_classification reads one column "
                "of word lists (sentence pairs are not tagged). Give one column."
            )
        bad = bad_tags(self.labels)
        if bad:
            raise ConfigError(
                f"task.labels: {bad} are not BIO tags; token_classification labels are 'O', "
                "'B-TYPE' and 'I-TYPE' (e.g. [O, B-PER, I-PER, B-LOC, I-LOC])."
            )


class DataConfig(Section):
    source: Str = f(
        help="hub dataset id (glue/sst2), a local folder of split files, or synthetic:NAME"
    )
    subset: Str | None = f(None, help="hub dataset config name, when the id alone is ambiguous")
    train_split: Str = f("train", help="split used for training")
    eval_split: Str = f("validation", help="split used for evaluation")
    eval_fraction: Float = f(0.1, min=0.01, max=0.5, help="held-out share when source is one file")
    max_train_samples: Int | None = f(None, min=1, help="subsample train rows (seeded); null = all")
    max_eval_samples: Int | None = f(None, min=1, help="subsample eval rows (seeded); null = all")
    max_length: Int = f(128, min=8, max=4096, help="truncate tokenized inputs to this many tokens")
    synthetic_rows: Int = f(
        2000, min=16, max=1_000_000, help="train rows for synthetic:NAME sources"
    )


class TrainingKnobs(Section):
    """The optimizer knobs of a training stage, the same keys under `teacher` and `distill`
    (`teacher.learning_rate`, `distill.learning_rate`): both sections inherit them, so a stage
    hands its section whole to `pipelines.train.settings.training_arguments`. A section whose
    default differs declares that one field again (DistillConfig.learning_rate)."""

    epochs: Float = f(3.0, min=0.01, max=100, help="training epochs")
    learning_rate: Float = f(2e-5, min=1e-7, max=1.0, help="peak learning rate")
    batch_size: Int = f(32, min=1, max=4096, help="per-device train batch size")
    eval_batch_size: Int = f(128, min=1, max=4096, help="evaluation batch size")
    warmup_ratio: Float = f(0.06, min=0.0, max=0.5, help="share of steps for linear warm-up")
    weight_decay: Float = f(0.01, min=0.0, max=1.0, help="AdamW weight decay")


class TrainConfig(Section):
    device: Literal["auto", "cpu", "cuda"] = f("auto", help="auto: cuda when available, else cpu")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = f(
        "auto", help="auto: bf16 on CUDA, else fp32"
    )
    save_steps: Int | None = f(
        None, min=1, help="checkpoint interval; null = about a tenth of an epoch"
    )
    save_total_limit: Int = f(2, min=1, max=100, help="checkpoints kept")
    logging_steps: Int = f(50, min=1, help="log loss terms every N steps", hash="never")
    report_to: list[Str] = f(
        [], help="Trainer loggers, e.g. [tensorboard] or [mlflow]", hash="never"
    )
    group_by_length: Bool = f(True, help="batch similar lengths together (less padding, faster)")
    dataloader_num_workers: Int = f(
        0, min=0, max=64, help="DataLoader worker processes", hash="never"
    )
    ddp_find_unused_parameters: Bool = f(
        False, help="DDP only: true if the model has parameters some steps do not use", hash="never"
    )
    optim: Literal["adamw_torch", "adamw_torch_fused"] = f(
        "adamw_torch",
        help="AdamW; fused: one kernel per step, ~22% faster steps on CPU here",
        hash="when_set",
    )


class SecurityConfig(Section):
    trust_remote_code: Bool = f(False, help="allow models whose code comes with the checkpoint")
    allow_pickle: Bool = f(False, help="allow .bin/.pt (pickle) weights; safetensors otherwise")
