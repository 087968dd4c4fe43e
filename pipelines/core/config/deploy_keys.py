"""What happens to the trained student: ONNX export, int8 quantization, the benchmark and the
edge bundle."""

from typing import Literal

from export.optimize import LEVELS
from pipelines.core.errors import ConfigError
from pipelines.core.schema import Bool, Float, Int, Section, Str, checks, f, field_validator, names
from quantize.inc_configs import INC_CONFIGS
from quantize.methods import check_method, recipe_methods
from quantize.openvino import PRESETS as OV_PRESETS
from quantize.presets import AUTO, CALIBRATION_METHODS, PRESETS


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
        ["static_minmax", "static_kl", "dynamic"], nonempty=True, help="INC configs tried in order"
    )
    calibration_samples: Int = f(128, min=1, max=100_000, help="training rows for INC calibration")


class OpenVINOConfig(Section):
    preset: names(*OV_PRESETS) = f(
        "performance", help="NNCF preset: performance (symmetric activations, fastest) or mixed"
    )


class QuantizeConfig(Section):
    methods: list[Str] = f(
        ["dynamic", "static", "inc", "openvino"],
        help=f"any of {', '.join(recipe_methods())} (registry quantize.methods.METHODS): ORT "
        "dynamic, ORT static (QDQ), Neural Compressor (PyTorch), OpenVINO + NNCF (needs the "
        "[openvino] extra; without it the method is skipped with the reason)",
    )

    @field_validator("methods")
    @classmethod
    def registered_methods(cls, methods: list[str]) -> list[str]:
        """Read from the registry at validation: a method registered after import is allowed."""
        return [check_method(name) for name in methods]

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
    teacher: Bool = f(
        True, help="also quantize the teacher (quantize.teacher_methods), for the report"
    )
    teacher_methods: list[Str] | None = f(
        None,
        help="methods the teacher is quantized by too, the report's int8-teacher baseline (e.g. "
        "the list in methods); null = dynamic only, as runs made before this key",
        hash="when_set",
    )

    @field_validator("teacher_methods")
    @classmethod
    def registered_teacher_methods(cls, methods: list[str] | None) -> list[str] | None:
        return None if methods is None else [check_method(name) for name in methods]


class BenchConfig(Section):
    grid: Literal["quick", "full"] = f(
        "quick",
        help="quick: batch 1 at seq min(128, data.max_length), all cores, plus the real-length "
        "cell (what the recommendation needs); full: batch_sizes × seq_lens × threads. A recipe "
        "that sets batch_sizes or seq_lens gets its grid whatever this says",
        hash="when_set",
    )
    batch_sizes: list[Int] | None = f(
        None,
        min=1,
        max=4096,
        nonempty=True,
        help="latency grid: batch sizes; null = by bench.grid (quick [1], full [1, 8, 32])",
        hash="when_set",
    )
    seq_lens: list[Int] | None = f(
        None,
        min=1,
        max=4096,
        nonempty=True,
        help="latency grid: sequence lengths; null = by bench.grid (quick [min(128, "
        "data.max_length)], full [16, 64, 128])",
        hash="when_set",
    )
    threads: list[Int] | None = f(
        None,
        min=1,
        max=1024,
        nonempty=True,
        help="thread counts; null = [all cores] (quick grid) or [1, all cores]",
    )
    serve: Literal["latency", "throughput"] = f(
        "latency",
        help="what you serve, so what the report recommends by: latency = p50 at batch 1; "
        "throughput = sentences/s over the eval rows, length-bucketed (bench.real_length_batch)",
        hash="when_set",
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
        hash="when_set",
    )
    bucket: Bool = f(True, help="also time the eval split at real lengths, bucketed vs padded")
    real_length_batch: Int = f(32, min=1, help="batch size of the real-length measurement")
    artifacts: list[str] | None = f(
        None, nonempty=True, help="artifact names to measure; null = all found"
    )
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
    load_sample_s: Float = f(
        2.0,
        min=0.0,
        max=60.0,
        help="seconds the CPUs are watched for other work before the grid (the report's 'busy' "
        "verdict); 0 = not watched",
        hash="when_set",
    )
    ceiling_size: Int = f(
        1024,
        min=0,
        max=8192,
        help="M = N = K of the GEMM that measures this CPU's int8/fp32 ceiling for the "
        "roofline (pipelines/bench/ceiling.py); 0 = not measured",
    )


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
