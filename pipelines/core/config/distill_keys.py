"""The `distill` section: the combined loss, its schedules, the augmented transfer set and
unlabelled text, the defaults sized to the data (`auto`), the two-step and quantization-aware
phases, the ablation."""

from typing import Literal

from distill.augment import METHODS as AUGMENT_METHODS
from distill.layer_map import LAYER_MAPS
from distill.losses import KD_LOSSES, MATCH_LOSSES
from distill.weights import DEFAULT_WEIGHTS
from pipelines.core.config.run_keys import TrainingKnobs
from pipelines.core.errors import ConfigError, shown
from pipelines.core.schema import Bool, Float, Int, Section, Str, checks, f, names, suggest

TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # recipe name → torch


# The distill ablation's variants (built in pipelines/distillation/ablation.py, which imports this
# module; the names live here so the schema can validate them without it).
ABLATION_VARIANTS = ("labels_only", "logits_kd", "kd_augment", "kd_matches", "two_step", "minilm")
DEFAULT_ABLATION_VARIANTS = ("labels_only", "logits_kd", "kd_augment", "kd_matches")


class ScheduleConfig(Section):
    kind: Literal["constant", "linear"] = f(
        "constant", help="constant, or linear from start to end"
    )
    end: Float | None = f(None, min=0.0, help="value at the last step for kind: linear")

    @checks
    def check(self) -> None:
        if self.kind == "linear" and self.end is None:
            raise ConfigError("schedule: kind 'linear' needs an 'end' value.")


class AugmentConfig(Section):
    """Augmented transfer set (distill/augment.py): new rows the teacher labels."""

    factor: Float = f(0.0, min=0.0, max=100.0, help="new rows per training row; 0 = off")
    methods: list[names(*AUGMENT_METHODS)] = f(
        ["mask", "ngram", "dropout", "shuffle"], help="picked at random, one per new row"
    )
    p_mask: Float = f(0.1, min=0.0, max=1.0, help="mask: chance a word becomes [MASK]")
    max_ngram: Int = f(5, min=1, max=64, help="ngram: longest sampled n-gram, in words")
    p_drop: Float = f(0.1, min=0.0, max=1.0, help="dropout: chance a word is dropped")
    window: Int = f(3, min=2, max=64, help="shuffle: words shuffled within windows this long")
    p_mlm: Float = f(0.3, min=0.0, max=1.0, help="mlm: chance a word is replaced")
    top_k: Int = f(15, min=1, max=100, help="mlm: replacement drawn from the top k guesses")
    p_replace: Float = f(
        0.1,
        min=0.0,
        max=1.0,
        help="replace, tang: chance a word becomes another word of the training text",
        hash="when_set",
    )
    p_ngram: Float = f(
        0.25, min=0.0, max=1.0, help="tang: chance the row is cut to an n-gram", hash="when_set"
    )
    mlm_model: Str | None = f(
        None, help="mlm: masked LM (hub id or folder); null = the teacher's if it has an MLM head"
    )
    max_rows: Int | None = f(None, min=1, help="cap on new rows; null = factor × train rows")
    chunk_rows: Int = f(20000, min=100, help="rows made and labelled per resumable chunk")

    @checks
    def check(self) -> None:
        if not self.methods:
            raise ConfigError("distill.augment.methods: give at least one method.")


class QATConfig(Section):
    """Quantization-aware distillation: int8 fake-quant (NNCF) after the distillation."""

    epochs: Float = f(0.0, min=0.0, max=100.0, help="epochs of QAT after distilling; 0 = off")
    learning_rate: Float = f(2e-5, min=1e-8, max=1.0, help="QAT learning rate (small)")
    calibration_samples: Int = f(256, min=1, max=100_000, help="rows for the initial ranges")


class DistillConfig(TrainingKnobs):
    """The distillation; its training knobs are `TrainingKnobs`', with a higher learning rate."""

    learning_rate: Float = f(5e-5, min=1e-7, max=1.0, help="peak learning rate")
    temperature: Float = f(2.0, min=0.05, max=100.0, help="softmax temperature T for logit KD")
    temperature_schedule: ScheduleConfig = f(ScheduleConfig, help="T over training")
    kd_loss: names(*KD_LOSSES) = f("kl", help="logit KD loss (registry distill.losses.KD_LOSSES)")
    label_smoothing: Float = f(0.0, min=0.0, max=0.5, help="task cross-entropy label smoothing")
    matches: list[names(*MATCH_LOSSES)] = f(
        [], help="intermediate matches (registry distill.losses.MATCH_LOSSES)"
    )
    weights: dict[Str, Float] = f(
        dict(DEFAULT_WEIGHTS), min=0.0, help="task, kd, one per match (distill/weights.py)"
    )
    weight_schedules: dict[Str, ScheduleConfig] = f(
        {}, help="per-weight schedules, same keys as weights"
    )
    layer_map: names("auto", *LAYER_MAPS) | list[list[Int]] = f(
        "auto", help="auto, uniform, last, skip, or [[student_layer, teacher_layer], ...]"
    )
    cache_teacher_logits: Bool = f(
        True, help="precompute teacher logits when no match needs the teacher"
    )
    ablation: Bool = f(False, help="also train the same student other ways and write a table")
    ablation_variants: list[names(*ABLATION_VARIANTS)] = f(
        list(DEFAULT_ABLATION_VARIANTS),
        help="ablation rows (pipelines/distillation/ablation.py); +qat is added with distill.qat",
        hash="when_set",
    )
    cache_speedup_steps: Int = f(
        0, min=0, help="time N steps cached vs recomputed teacher; 0 = off"
    )
    augment: AugmentConfig = f(AugmentConfig, help="augmented transfer set", hash="when_set")
    two_step: Float = f(
        0.0,
        min=0.0,
        max=100.0,
        help="TinyBERT: epochs of intermediate matches alone before the logits; 0 = one step",
        hash="when_set",
    )
    qat: QATConfig = f(
        QATConfig, help="quantization-aware distillation (student-int8-qat)", hash="when_set"
    )
    auto: Bool = f(
        False,
        help="size the keys the recipe leaves unset to the data: under 20,000 train rows, an "
        "augmented transfer set, hidden-state matches and at least 1,500 steps (docs/recipes.md, "
        "small data)",
        hash="when_set",
    )
    unlabelled: Str | None = f(
        None,
        help="unlabelled text the teacher labels for the student: .txt (a text per line), "
        ".jsonl/.csv/.tsv with the text column(s), or a folder of them",
        hash="when_set",
    )
    teacher_dtype: names("auto", *TORCH_DTYPES) = f(
        "fp32",
        help="frozen teacher's dtype; auto = train precision; bf16/fp16 need CUDA",
        hash="when_set",
    )

    @checks
    def check(self) -> None:
        allowed = {"task", "kd", *self.matches}
        for name in list(self.weights) + list(self.weight_schedules):
            if name not in allowed:
                raise ConfigError(
                    f"distill.weights.{name}: unknown weight.{suggest(name, sorted(allowed))} "
                    f"Allowed keys: {', '.join(sorted(allowed))} (matches come from distill.matches)."
                )
        if isinstance(self.layer_map, list):
            for pair in self.layer_map:
                if len(pair) != 2:
                    raise ConfigError(
                        f"distill.layer_map: {shown(pair)} is not a [student_layer, teacher_layer] pair."
                    )
