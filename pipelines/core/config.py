"""The recipe: typed config sections, validated on load and on every `--set` override.

Key paths are a public interface (README "Recipe keys"); rename none without a deprecation.
Names that come from a registry (losses, matches, layer maps, presets, INC configs, ONNX
optimisation levels) are validated against that registry, so `distill.kd_loss: kll` fails at
`distillery validate`, not after the teacher has trained.
Relative local paths in a recipe file resolve against the recipe's folder, so a recipe runs from any
working directory; paths given with `--set` resolve against the current directory.

(No `from __future__ import annotations` here: pydantic reads these annotations at run time.)

Why one module: this is the recipe, every section in the order a recipe file lists them, each key
with its type, default, bounds and help line. Reading it top to bottom is reading the recipe
format; split by section it would be many tiny files that always change together.
"""

import re
from pathlib import Path
from typing import Any, Literal

import yaml

from distill.augment import METHODS as AUGMENT_METHODS
from distill.layer_map import LAYER_MAPS
from distill.losses import KD_LOSSES, MATCH_LOSSES
from distill.student import EMBEDDING_INITS, check_layer_count
from distill.weights import DEFAULT_WEIGHTS
from export.optimize import LEVELS
from modelkit.errors import InputError
from pipelines.core.errors import ConfigError
from pipelines.core.schema import (
    Bool,
    Float,
    Int,
    Section,
    Str,
    all_key_paths,
    build,
    checks,
    f,
    names,
    suggest,
    to_dict,
)
from quantize.inc_configs import INC_CONFIGS
from quantize.openvino import PRESETS as OV_PRESETS
from quantize.presets import AUTO, CALIBRATION_METHODS, PRESETS

TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}  # recipe name → torch


# The distill ablation's variants (built in pipelines/distillation/ablation.py, which imports this
# module; the names live here so the schema can validate them without it).
ABLATION_VARIANTS = ("labels_only", "logits_kd", "kd_augment", "kd_matches", "two_step", "minilm")
DEFAULT_ABLATION_VARIANTS = ("labels_only", "logits_kd", "kd_augment", "kd_matches")
LAYER_CHOICES = ("uniform", "bottom")  # student search: pipelines/search/space.py


class ModelShape(Section):
    """Shape of a BERT built from scratch (demo teacher, `config` students)."""

    num_hidden_layers: Int = f(4, min=1, max=48, help="transformer layers")
    hidden_size: Int = f(256, min=8, max=8192, help="width; divisible by num_attention_heads")
    num_attention_heads: Int = f(4, min=1, max=128, help="attention heads")
    intermediate_size: Int = f(1024, min=8, max=32768, help="feed-forward width")

    @checks
    def check(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ConfigError(
                f"hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}; pick a head count that divides the width."
            )


class TaskConfig(Section):
    type: Literal["single_label", "multi_label", "regression", "token_classification"] = f(
        "single_label",
        help="single_label (softmax), multi_label (a sigmoid per label), regression (a number) "
        "or token_classification (a BIO tag per word, e.g. NER)",
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
                f"task.text_columns: {self.text_columns!r} has {len(self.text_columns)} columns; "
                "allowed values: one column (single sentence) or two (sentence pair)."
            )
        if self.type == "token_classification":
            self._check_tags()
        if self.type == "regression":
            if len(self.labels) != 1:
                raise ConfigError(
                    f"task.labels: {self.labels!r}; a regression task has one output: give its "
                    "name alone, e.g. labels: [score]."
                )
        elif len(self.labels) < 2 or len(set(self.labels)) != len(self.labels):
            raise ConfigError(
                f"task.labels: {self.labels!r}; give at least two distinct label names, in index order."
            )

    def _check_tags(self) -> None:
        from modelkit.entities import bad_tags

        if len(self.text_columns) != 1:
            raise ConfigError(
                f"task.text_columns: {self.text_columns!r}; token_classification reads one column "
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


class TeacherConfig(Section):
    model: Str | None = f(None, help="hub id or local HF folder; null with init: config")
    init: Literal["pretrained", "config"] = f(
        "pretrained", help="pretrained weights or a fresh BERT"
    )
    config: ModelShape = f(ModelShape, help="shape when init: config")
    tokenizer: Str | None = f(
        None, help="tokenizer folder; default: the model's, or trained on the data"
    )
    finetune: Bool = f(True, help="false: the model is already fine-tuned, only evaluate it")
    epochs: Float = f(3.0, min=0.01, max=100, help="training epochs")
    learning_rate: Float = f(2e-5, min=1e-7, max=1.0, help="peak learning rate")
    batch_size: Int = f(32, min=1, max=4096, help="per-device train batch size")
    eval_batch_size: Int = f(128, min=1, max=4096, help="evaluation batch size")
    warmup_ratio: Float = f(0.06, min=0.0, max=0.5, help="share of steps for linear warm-up")
    weight_decay: Float = f(0.01, min=0.0, max=1.0, help="AdamW weight decay")
    train_rows: Int | None = f(
        None, min=1, help="fine-tune on this many train rows (seeded sample); null = all"
    )

    @checks
    def check(self) -> None:
        if self.init == "pretrained" and not self.model:
            raise ConfigError(
                "teacher.model: missing; give a hub id or local folder, or set teacher.init: config."
            )


class StudentConfig(Section):
    init: Literal["teacher_layers", "config", "pretrained"] = f(
        "teacher_layers", help="copy teacher layers, fresh BERT from config, or a checkpoint"
    )
    layers: list[Int] = f([0, 2, 4], min=0, help="teacher layers copied when init: teacher_layers")
    config: ModelShape = f(ModelShape, help="shape when init: config")
    init_embeddings: names(*EMBEDDING_INITS) = f(
        "truncate",
        help="config students: teacher embeddings truncated, or PCA-projected, to the width",
    )
    init_weights: Literal["random", "prune"] = f(
        "random",
        help="config students: random init, or cut from the teacher (most active channels, "
        "heads, neurons of student.layers; distill/prune.py)",
    )
    prune_rows: Int = f(
        512, min=1, max=100000, help="training rows the teacher runs on to rank what to keep"
    )
    model: Str | None = f(
        None, help="checkpoint when init: pretrained (same vocabulary as teacher)"
    )

    @checks
    def check(self) -> None:
        if self.init == "pretrained" and not self.model:
            raise ConfigError("student.model: required when student.init is 'pretrained'.")
        if self.init_weights == "prune":
            if self.init != "config":
                raise ConfigError(
                    f"student.init_weights: 'prune' applies to init: config students; this one "
                    f"is init: {self.init}. Remove init_weights or set init: config."
                )
            if self.init_embeddings != "truncate":
                raise ConfigError(
                    f"student.init_embeddings: {self.init_embeddings!r} conflicts with "
                    "init_weights: prune, which cuts the embeddings with the same channels as the "
                    "layers; remove init_embeddings."
                )
            try:
                check_layer_count(self.layers, self.config.num_hidden_layers)
            except InputError as exc:
                raise ConfigError(f"{exc} (init_weights: prune)") from None
        if self.init == "teacher_layers":
            if not self.layers:
                raise ConfigError(
                    "student.layers: give at least one teacher layer index, e.g. [0, 2, 4]."
                )
            if sorted(set(self.layers)) != self.layers:
                raise ConfigError(
                    f"student.layers: {self.layers!r} must be distinct and increasing, e.g. [0, 2, 4]."
                )


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


class DistillConfig(Section):
    epochs: Float = f(3.0, min=0.01, max=100, help="training epochs")
    learning_rate: Float = f(5e-5, min=1e-7, max=1.0, help="peak learning rate")
    batch_size: Int = f(32, min=1, max=4096, help="per-device train batch size")
    eval_batch_size: Int = f(128, min=1, max=4096, help="evaluation batch size")
    warmup_ratio: Float = f(0.06, min=0.0, max=0.5, help="share of steps for linear warm-up")
    weight_decay: Float = f(0.01, min=0.0, max=1.0, help="AdamW weight decay")
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
    )
    cache_speedup_steps: Int = f(
        0, min=0, help="time N steps cached vs recomputed teacher; 0 = off"
    )
    augment: AugmentConfig = f(AugmentConfig, help="augmented transfer set")
    two_step: Float = f(
        0.0,
        min=0.0,
        max=100.0,
        help="TinyBERT: epochs of intermediate matches alone before the logits; 0 = one step",
    )
    qat: QATConfig = f(QATConfig, help="quantization-aware distillation (student-int8-qat)")
    teacher_dtype: names("auto", *TORCH_DTYPES) = f(
        "fp32", help="frozen teacher's dtype; auto = train precision; bf16/fp16 need CUDA"
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
                        f"distill.layer_map: {pair!r} is not a [student_layer, teacher_layer] pair."
                    )


class ExportConfig(Section):
    opset: Int | None = f(None, min=11, max=23, help="ONNX opset; null = optimum's default (18)")
    optimize: names("none", *LEVELS) = f(
        "O2", help="ORTOptimizer level for the fused copy; O4 (fp16) needs device: cuda"
    )
    device: Literal["cpu", "cuda"] = f("cpu", help="export for CPU, or CUDA (fp16 with O4)")
    feature_extraction: Bool = f(False, help="also export the encoder (last_hidden_state)")
    teacher: Bool = f(True, help="also export the teacher, for the benchmark's comparison")
    atol: Float = f(1e-4, min=0.0, help="max |logit difference| of the plain export vs PyTorch")
    optimized_atol: Float = f(1e-3, min=0.0, help="same for the fused graph (fused GELU/attention)")
    min_agreement: Float = f(0.999, min=0.0, max=1.0, help="min argmax agreement with PyTorch")
    batch_size: Int = f(32, min=1, max=4096, help="parity batch size (mixed lengths, right-padded)")

    @checks
    def check(self) -> None:
        if self.optimize == "O4" and self.device != "cuda":
            raise ConfigError(
                "export.optimize: 'O4' converts to fp16, which only pays off on a GPU; set "
                "export.device: cuda, or use O1, O2 or O3 for the CPU."
            )


class CalibrationConfig(Section):
    samples: Int = f(256, min=1, max=100_000, help="training rows fed to static calibration")
    method: names(*CALIBRATION_METHODS) = f("minmax", help="activation range method")
    batch_size: Int = f(8, min=1, max=1024, help="rows per calibration batch (bounds memory)")


class IncConfig(Section):
    tolerable_loss: Float = f(
        0.01, min=0.0, max=0.99, help="relative accuracy loss autotune accepts"
    )
    configs: list[names(*INC_CONFIGS)] = f(
        ["static_minmax", "static_kl", "dynamic"], help="INC configs tried in order"
    )
    calibration_samples: Int = f(128, min=1, max=100_000, help="training rows for INC calibration")


class OpenVINOConfig(Section):
    preset: names(*OV_PRESETS) = f(
        "performance", help="NNCF preset: performance (symmetric activations, fastest) or mixed"
    )


class QuantizeConfig(Section):
    methods: list[Literal["dynamic", "static", "inc", "openvino"]] = f(
        ["dynamic", "static", "inc", "openvino"],
        help="ORT dynamic, ORT static (QDQ), Neural Compressor (PyTorch), OpenVINO + NNCF "
        "(needs the [openvino] extra; without it the method is skipped with the reason)",
    )
    peer: Bool = f(
        True,
        help="also quantize student and teacher as optimum-cli would (the report's baseline)",
    )
    preset: names(AUTO, *PRESETS) = f(
        "auto", help="int8 settings for the target; auto reads this CPU's flags"
    )
    dynamic_graph: Literal["plain", "fused"] = f(
        "plain",
        help="quantize the plain export, or the ORT-fused one (QAttention; slower on Zen 5)",
    )
    per_channel: Bool | None = f(None, help="per-channel weights; null = the preset's choice")
    nodes_to_exclude: list[Str] = f([], help="ONNX node names kept in fp32")
    operators_to_quantize: list[str] | None = f(None, help="ONNX op types; null = ORT's default")
    calibration: CalibrationConfig = f(CalibrationConfig, help="static calibration")
    inc: IncConfig = f(IncConfig, help="Neural Compressor autotune")
    openvino: OpenVINOConfig = f(OpenVINOConfig, help="OpenVINO int8 (NNCF post-training)")
    max_drop: Float = f(
        1.0, min=0.0, max=100.0, help="accuracy drop (points) over which an artifact is rejected"
    )
    teacher: Bool = f(True, help="also quantize the teacher (dynamic), for the report")


class BenchConfig(Section):
    batch_sizes: list[Int] = f([1, 8, 32], min=1, max=4096, help="latency grid: batch sizes")
    seq_lens: list[Int] = f([16, 64, 128], min=1, max=4096, help="latency grid: sequence lengths")
    threads: list[Int] | None = f(
        None, min=1, max=1024, help="thread counts; null = [1, all cores]"
    )
    min_runs: Int = f(20, min=1, help="timed runs per cell, at least")
    min_seconds: Float = f(1.0, min=0.0, help="timed seconds per cell, at least")
    warmup_runs: Int = f(5, min=0, help="untimed runs before timing (in every round)")
    rounds: Int = f(
        3, min=1, max=100, help="interleaved rounds: every artifact timed once per round"
    )
    withhold_noisy: Bool = f(
        True,
        help="no recommendation from noisy cells or a busy machine (false: recommend, and warn)",
    )
    bucket: Bool = f(True, help="also time the eval split at real lengths, bucketed vs padded")
    real_length_batch: Int = f(32, min=1, help="batch size of the real-length measurement")
    artifacts: list[str] | None = f(None, help="artifact names to measure; null = all found")
    gpu: Bool = f(True, help="GPU rows (or their skip reasons) too")
    inc_compile: Bool = f(
        True, help="torch.compile the Neural Compressor int8 model (eager runs at fp32 speed)"
    )
    min_retained: Float = f(
        0.99,
        min=0.0,
        max=1.0,
        help="recommended: fastest keeping this share of the teacher's accuracy",
    )
    timeout_s: Float = f(1800.0, min=1.0, help="per-worker timeout")
    ceiling_size: Int = f(
        1024,
        min=0,
        max=8192,
        help="M = N = K of the GEMM that measures this CPU's int8/fp32 ceiling for the "
        "roofline (pipelines/bench/ceiling.py); 0 = not measured",
    )


class SearchSpaceConfig(Section):
    """Candidate students (pipelines/search/space.py): every combination of these."""

    depths: list[Int] = f([2, 3, 4], min=1, max=48, help="student layers")
    widths: list[Int] | None = f(
        None, min=8, help="hidden sizes; null = the teacher's only (then layers can be copied)"
    )
    head_size: Int | None = f(None, min=8, help="width per head; null = the teacher's")
    ffn_ratios: list[Float] = f([4.0], min=0.25, max=16.0, help="intermediate size ÷ width")
    layer_choices: list[names(*LAYER_CHOICES)] = f(
        ["uniform", "bottom"],
        help="teacher layers each student takes: uniform (evenly spaced from 0) or bottom",
    )
    init: Literal["auto", "teacher_layers", "prune"] = f(
        "auto",
        help="auto: copy teacher layers when the shape is the teacher's, else cut (prune) them",
    )


class SearchConfig(Section):
    """Student search (`distillery search`): the fastest student over an accuracy floor, or the
    most accurate one under a latency budget. Off unless enabled."""

    enabled: Bool = f(False, help="run the search stage; its pick becomes the run's student")
    floor: Float = f(0.99, min=0.0, max=1.0, help="accuracy floor, as a share of the teacher's")
    budget_ms: Float | None = f(
        None, min=0.0, help="latency budget (p50 ms); set = most accurate under it, not floor"
    )
    batch_size: Int = f(1, min=1, max=4096, help="latency measured at this batch size")
    seq_len: Int = f(128, min=1, max=4096, help="... and this sequence length")
    threads: Int = f(2, min=1, max=1024, help="... with this many threads")
    backend: Literal["onnxruntime", "openvino"] = f(
        "onnxruntime", help="deployment backend timed: ORT dynamic int8 or OpenVINO int8"
    )
    space: SearchSpaceConfig = f(SearchSpaceConfig, help="the candidates")
    max_trained: Int = f(4, min=1, max=100, help="candidates given the short distillation, at most")
    short_rows: Int = f(20000, min=16, help="training rows of the short distillation")
    short_epochs: Float = f(1.0, min=0.01, max=100.0, help="epochs of the short distillation")
    slack_points: Float = f(
        0.5,
        min=0.0,
        max=100.0,
        help="a short run within this many points of the floor counts as meeting it (the full "
        "run trains longer)",
    )
    rounds: Int = f(3, min=1, max=20, help="interleaved latency rounds")
    min_runs: Int = f(30, min=1, help="timed runs per candidate, at least")
    min_seconds: Float = f(1.0, min=0.0, help="timed seconds per candidate, at least")


TASK_NAME = r"[a-z][a-z0-9_]{0,31}"  # becomes an ONNX output name (logits_<name>) and a CLI value
SAMPLING_RULES = ("proportional", "temperature", "round_robin")  # distill/multitask.py


class SourceTaskConfig(Section):
    """One source task of a transfer recipe: its own data, columns, labels, metric and λ."""

    name: Str = f(help="task name: head name, ONNX output logits_<name>, predict.py --task")
    task: TaskConfig = f(help="columns and labels of this task")
    data: DataConfig = f(help="where this task's data comes from")
    weight: Float = f(1.0, min=0.0, max=100.0, help="λ: this task's loss weight (joint mode)")
    weight_schedule: ScheduleConfig = f(ScheduleConfig, help="λ over training")
    metric: Literal["accuracy", "f1"] = f("accuracy", help="headline metric of this task")


class TransferConfig(Section):
    """Transfer across tasks: the recipe's own task/data is the target (the artifact's default
    head); `sources` are the other tasks. L = Σ_t λ_t·L_t over the tasks (joint), or source
    tasks first and then the target (sequential)."""

    target: Str = f("target", help="name of the recipe's own task (its head, its report column)")
    target_weight: Float = f(1.0, min=0.0, max=100.0, help="λ of the target task (joint mode)")
    target_weight_schedule: ScheduleConfig = f(ScheduleConfig, help="λ of the target over training")
    target_metric: Literal["accuracy", "f1"] = f("accuracy", help="headline metric of the target")
    sources: list[SourceTaskConfig] = f([], help="source tasks; empty = a single-task recipe")
    mode: Literal["joint", "sequential"] = f(
        "joint", help="joint: one λ-weighted multi-task run; sequential: sources, then target"
    )
    sampling: names(*SAMPLING_RULES) = f(
        "proportional", help="which task each batch comes from (joint mode)"
    )
    sampling_temperature: Float = f(
        2.0, min=1.0, max=100.0, help="sampling: temperature, p_t ∝ rows_t^(1/T)"
    )
    source_epochs: Float = f(
        1.0, min=0.01, max=100, help="sequential: teacher epochs over each source task"
    )

    @checks
    def check(self) -> None:
        names_ = [self.target] + [s.name for s in self.sources]
        for name in names_:
            if not re.fullmatch(TASK_NAME, name):
                raise ConfigError(
                    f"transfer: task name {name!r} is not allowed; use lower-case letters, digits "
                    "and '_', starting with a letter (it names an ONNX output and a --task value)."
                )
        if len(set(names_)) != len(names_):
            raise ConfigError(
                f"transfer: task names {names_} repeat; give each task (target and sources) its "
                "own name."
            )
        for i, source in enumerate(self.sources):
            if source.metric == "f1" and len(source.task.labels) != 2:
                raise ConfigError(
                    f"transfer.sources[{i}].metric: f1 is the binary F1 and needs two labels; "
                    f"{source.name} has {len(source.task.labels)}. Use metric: accuracy."
                )

    @property
    def enabled(self) -> bool:
        return bool(self.sources)


class BundleConfig(Section):
    """The edge bundle: one ONNX artifact with its tokenizer, a predict.py and a model card."""

    artifact: Str | None = f(
        None,
        help="artifact shipped, by its report name (student-int8-dynamic); null = recommended",
    )
    include_eval: Bool = f(True, help="ship the eval split as eval.jsonl, for --verify DIR alone")
    batch_size: Int = f(32, min=1, max=4096, help="predict.py's default batch (rows by length)")
    threads: Int | None = f(
        None, min=1, max=1024, help="threads for the latency measurements; null = ORT's default"
    )
    cold_start_runs: Int = f(3, min=1, max=50, help="fresh processes timed for the cold start")
    latency_sentences: Int = f(64, min=1, max=100_000, help="eval sentences per steady-state pass")
    latency_repeats: Int = f(10, min=1, max=10_000, help="timed passes (p50) for steady state")


class TrainConfig(Section):
    device: Literal["auto", "cpu", "cuda"] = f("auto", help="auto: cuda when available, else cpu")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = f(
        "auto", help="auto: bf16 on CUDA, else fp32"
    )
    save_steps: Int | None = f(
        None, min=1, help="checkpoint interval; null = about a tenth of an epoch"
    )
    save_total_limit: Int = f(2, min=1, max=100, help="checkpoints kept")
    logging_steps: Int = f(50, min=1, help="log loss terms every N steps")
    report_to: list[Str] = f([], help="Trainer loggers, e.g. [tensorboard] or [mlflow]")
    group_by_length: Bool = f(True, help="batch similar lengths together (less padding, faster)")
    dataloader_num_workers: Int = f(0, min=0, max=64, help="DataLoader worker processes")
    ddp_find_unused_parameters: Bool = f(
        False, help="DDP only: true if the model has parameters some steps do not use"
    )
    optim: Literal["adamw_torch", "adamw_torch_fused"] = f(
        "adamw_torch", help="AdamW; fused: one kernel per step, ~22% faster steps on CPU here"
    )


class SecurityConfig(Section):
    trust_remote_code: Bool = f(False, help="allow models whose code comes with the checkpoint")
    allow_pickle: Bool = f(False, help="allow .bin/.pt (pickle) weights; safetensors otherwise")


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
    transfer: TransferConfig = f(TransferConfig, help="source tasks for cross-task transfer")
    train: TrainConfig = f(TrainConfig, help="settings shared by the training stages")
    security: SecurityConfig = f(SecurityConfig, help="what untrusted code may run")

    @checks
    def check(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", self.name):
            raise ConfigError(
                f"name: {self.name!r} is not a valid run folder name; use letters, digits, '.', '_' "
                "and '-'."
            )
        if self.quantize.teacher and not self.export.teacher:
            raise ConfigError(
                "quantize.teacher: true needs the teacher's ONNX export, but export.teacher is "
                "false; set export.teacher: true, or quantize.teacher: false."
            )
        if self.transfer.enabled:
            self._check_transfer()
        if self.task.type != "single_label":
            self._check_task_type()

    def _check_task_type(self) -> None:
        """What multi-label, regression and token-classification runs do not do yet (each reads
        one class prediction per row), refused before any work with the reason."""
        tokens = self.task.type == "token_classification"
        refused = {
            "transfer.sources": self.transfer.enabled,
            "distill.qat.epochs": self.distill.qat.epochs > 0,
            "distill.augment.factor": self.distill.augment.factor > 0,
            "distill.ablation": self.distill.ablation,
            "distill.cache_speedup_steps": bool(self.distill.cache_speedup_steps),
            "search.enabled": self.search.enabled,
            # the type's own KD (sigmoid KD, MSE to the teacher) replaces the softmax KD losses;
            # token classification is softmax KD per word, so any kd_loss applies
            "distill.kd_loss": self.distill.kd_loss != "kl" and not tokens,
            # prune builds a …ForSequenceClassification (INC: skipped by the quantize stage)
            "student.init_weights prune": tokens
            and self.student.init == "config"
            and self.student.init_weights == "prune",
        }
        for key, used in refused.items():
            if used:
                raise ConfigError(
                    f"{key}: not supported with task.type {self.task.type} yet (single_label "
                    "only). Remove the key, or use task.type: single_label."
                )

    def _check_transfer(self) -> None:
        """What a multi-task run does not do yet, refused before any work with the reason."""
        if self.transfer.target_metric == "f1" and len(self.task.labels) != 2:
            raise ConfigError(
                "transfer.target_metric: f1 is the binary F1 and needs two labels; the target has "
                f"{len(self.task.labels)}. Use target_metric: accuracy."
            )
        refused = {
            "distill.qat.epochs": self.distill.qat.epochs > 0,
            "distill.augment.factor": self.distill.augment.factor > 0,
            "distill.ablation": self.distill.ablation,
            "distill.two_step": self.distill.two_step > 0,
            "distill.cache_speedup_steps": bool(self.distill.cache_speedup_steps),
            "search.enabled": self.search.enabled,
            "teacher.train_rows": self.teacher.train_rows is not None,  # multi-task: all rows
        }
        for key, used in refused.items():
            if used:
                raise ConfigError(
                    f"{key}: not supported with transfer.sources (a multi-task run); the source "
                    "tasks are the extra data. Remove the key, or run the target task alone."
                )


# Keys whose string value may be a local path (else a hub id).
PATH_KEYS = ("data.source", "teacher.model", "teacher.tokenizer", "student.model")


def _looks_local(value: str, base: Path) -> bool:
    return value.startswith(("/", "./", "../", "~")) or (base / value).exists()


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    transfer = raw.get("transfer")
    if isinstance(transfer, dict) and isinstance(transfer.get("sources"), list):
        for source in transfer["sources"]:  # each source task's data.source, like data.source
            if isinstance(source, dict) and isinstance(source.get("data"), dict):
                _resolve_paths({"data": source["data"]}, base)
    for key in PATH_KEYS:
        section, leaf = key.split(".")
        node = raw.get(section)
        if isinstance(node, dict) and isinstance(node.get(leaf), str):
            value = node[leaf]
            if not value.startswith("synthetic:") and _looks_local(value, base):
                node[leaf] = str((base / Path(value).expanduser()).resolve())


def parse_override(item: str) -> tuple[list[str], Any]:
    """`teacher.epochs=2` → (['teacher', 'epochs'], 2); the value is parsed as YAML."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key.path=value, e.g. teacher.epochs=2.")
    key, _, text = item.partition("=")
    key = key.strip()
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"--set {key}: cannot parse value {text!r} ({exc}).") from None
    parts = key.split(".")
    valid = all_key_paths(Recipe)
    prefixes = {".".join(p.split(".")[:i]) for p in valid for i in range(1, p.count(".") + 2)}
    dict_parents = ("distill.weights", "distill.weight_schedules")
    if key not in prefixes and not key.startswith(tuple(p + "." for p in dict_parents)):
        raise ConfigError(f"--set {key}: unknown key.{suggest(key, valid)} See `distillery keys`.")
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str], cwd: Path) -> dict[str, Any]:
    for item in overrides:
        parts, value = parse_override(item)
        node = raw
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
        sub = {parts[0]: {parts[1]: value}} if len(parts) == 2 else {}
        if sub:
            _resolve_paths(sub, cwd)
            if isinstance(value, str):
                node[parts[-1]] = sub[parts[0]][parts[1]]
    return raw


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key that appears twice in one mapping (PyYAML keeps the
    last silently, so `epochs: 3` ... `epochs: 1` would train one epoch without a word)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} appears twice in one mapping (first on line {seen[key]}); "
                    "keep one",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    """Read, override, resolve and validate a recipe file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"recipe {path}: no such file. Recipes live in recipes/, e.g. recipes/demo.yaml."
        )
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"recipe {path}: line {line} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x}); "
            "save the recipe as UTF-8."
        ) from None
    try:
        raw = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        raise ConfigError(f"recipe {path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"recipe {path}: expected a mapping of keys at the top level.")
    _resolve_paths(raw, path.parent.resolve())
    apply_overrides(raw, overrides or [], Path.cwd())
    try:
        return build(Recipe, raw)
    except ConfigError as exc:
        raise ConfigError(f"recipe {path}: {exc}") from None


def recipe_to_dict(recipe: Recipe) -> dict[str, Any]:
    return to_dict(recipe)
