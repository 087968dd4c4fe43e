"""GPU inference paths of the benchmark (`make bench-gpu` runs them alone).

    distillery bench-gpu recipes/demo.yaml [--set bench.min_seconds=0.5] [--runs-dir runs]

Which execution provider runs which ONNX artifact on a GPU (`onnx_routes`, a pure decision table):

| artifact            | graph                           | GPU rows                                         |
|---------------------|---------------------------------|--------------------------------------------------|
| ONNX fp32           | any                             | CUDA EP fp32; CUDA EP fp16 (converted at load)   |
| ONNX int8           | static QDQ, s8, zero-point 0    | TensorRT EP int8 (explicit quantization)         |
| ONNX int8           | static QDQ with u8 activations  | skipped: TensorRT takes signed int8 only         |
| ONNX int8           | dynamic (MatMulInteger, ...)    | skipped: no CUDA kernels, no TensorRT support    |

int8 ONNX never goes to the CUDA EP (onnxruntime #10267: its quantized ops fall back to the CPU).
Every row that cannot run here (no CUDA, no onnxruntime-gpu, no TensorRT EP) is a row whose
`skipped` says why. ORT rows on the GPU use IO binding: inputs are copied to the device once per
cell, outside the timed runs, and logits stay on the device, so a run times the model alone.

fp16: `to_fp16` converts the fp32 graph with ONNX Runtime's own converter
(`onnxruntime.transformers.float16`, `keep_io_types=True`: int64 ids in, fp32 logits out) inside
the bench worker, in memory. It needs no GPU, so no fp16 artifact has to be exported on one.

TensorRT: `trt_provider_options` gives the EP explicit shape profiles, the min/max of the recipe's
`bench.batch_sizes` × `bench.seq_lens` (opt at the largest), and an engine and timing cache under
`runs/<name>/bench/trt-cache`: one engine covers the whole grid and is built once, not per shape
or per run (with dynamic shapes and no profile TensorRT rebuilds as shapes change,
onnxruntime #13559). A changed grid changes the profile, which builds a new engine.

This module imports nothing heavy at the top: bench workers (which never import torch for ORT)
and the parent both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modelkit.onnx_graph import graph_inputs
from pipelines.bench.artifacts import Artifact
from pipelines.bench.backends import get_backend
from pipelines.bench.jobs import base_row, empty_cell, grid_settings, make_job, run_jobs

CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"
TRT_CACHE = "trt-cache"  # under runs/<name>/bench/
GPU_ROWS_FILE = "gpu-rows.json"  # what `make bench-gpu` writes under runs/<name>/bench/
# make bench-gpu: a worker (one artifact × precision) that hangs costs at most this. Estimate, not
# a measurement: a worker is start-up + load + 9 cells of >= 1 s on sst2-minilm's grid, ~20 s, and
# that recipe has ~12 GPU workers (4 torch, 8 ORT; int8 skipped or 1 TensorRT), so ~4-5 minutes.
WORKER_TIMEOUT_S = 300.0
NO_CUDA_EP = f"onnxruntime has no {CUDA_EP}: pip install -e .[gpu] (onnxruntime-gpu)"
ORT_INT8_CUDA = (
    "int8 ONNX is not sent to the CUDA EP: most quantized ops (MatMulInteger, QAttention, "
    "DynamicQuantizeLinear) have no CUDA kernel and fall back to CPU (onnxruntime #10267); "
    "use the TensorRT EP for int8 on GPU"
)
# ONNX ops of ORT's dynamic (and QOperator) int8 graphs; TensorRT takes none of them.
DYNAMIC_INT8_OPS = frozenset(
    {
        "DynamicQuantizeLinear",
        "MatMulInteger",
        "DynamicQuantizeMatMul",
        "QAttention",
        "QLinearMatMul",
        "QGemm",
        "QLinearAdd",
        "QEmbedLayerNormalization",
    }
)


@dataclass(frozen=True)
class Route:
    """One GPU row of an artifact: which EP runs it at which precision, or why it cannot run."""

    precision: str  # fp32 | fp16 | bf16 | int8: what the row measures
    provider: str | None  # ORT execution provider (None: not ONNX Runtime)
    skipped: str | None = None  # why this row has no numbers
    fp16: bool = False  # convert the fp32 graph to fp16 when loading


def int8_kind(onnx_path: str | Path) -> str:
    """How an int8 ONNX graph is quantized: qdq-s8 | qdq-u8 | dynamic | unknown .

    qdq-s8: QuantizeLinear/DequantizeLinear whose zero-points are all int8 (TensorRT's explicit
    quantization); qdq-u8: some zero-point is uint8 (ORT's CPU presets quantize activations so).
    """
    import onnx

    path = Path(onnx_path)
    path = path / "model.onnx" if path.is_dir() else path
    graph = onnx.load(str(path), load_external_data=False).graph
    ops = {n.op_type for n in graph.node}
    if ops & DYNAMIC_INT8_OPS:
        return "dynamic"
    if "QuantizeLinear" not in ops:
        return "unknown"
    types = {t.name: t.data_type for t in graph.initializer}
    zero_points = [
        types.get(n.input[2])
        for n in graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2
    ]
    if any(t == onnx.TensorProto.UINT8 for t in zero_points):
        return "qdq-u8"
    return "qdq-s8"


def onnx_routes(
    precision: str, kind: str | None, cuda_reason: str | None, providers: list[str]
) -> list[Route]:
    """The GPU rows of one ONNX artifact: the decision table in the module docstring.

    precision: the artifact's (fp32 | int8); kind: `int8_kind` of an int8 graph; cuda_reason:
    `benchmark.cuda_status()` (None when torch sees a GPU); providers: ORT's available EPs.
    """
    if precision != "int8":
        rows = []
        for wanted in ("fp32", "fp16"):
            fp16 = wanted == "fp16"
            if cuda_reason:
                rows.append(Route(wanted, CUDA_EP, cuda_reason, fp16))
            elif CUDA_EP not in providers:
                rows.append(Route(wanted, CUDA_EP, NO_CUDA_EP, fp16))
            else:
                rows.append(Route(wanted, CUDA_EP, None, fp16))
        return rows
    if kind == "dynamic":
        why = (
            "; this graph is dynamic int8 (DynamicQuantizeLinear/MatMulInteger), which TensorRT "
            "does not take either"
        )
        return [Route("int8", None, ORT_INT8_CUDA + why)]
    if kind == "qdq-u8":
        why = (
            "; TensorRT takes QDQ with signed int8 and zero-point 0 only, and this graph has "
            "uint8 activations: quantize with quantize.preset: tensorrt"
        )
        return [Route("int8", None, ORT_INT8_CUDA + why)]
    if kind != "qdq-s8":
        return [Route("int8", None, ORT_INT8_CUDA + f"; int8 graph of kind {kind!r}")]
    if cuda_reason:
        return [Route("int8", TRT_EP, cuda_reason)]
    if TRT_EP not in providers:
        why = (
            f"; no {TRT_EP} in this onnxruntime (it needs onnxruntime-gpu with TensorRT "
            "libraries on the library path)"
        )
        return [Route("int8", TRT_EP, ORT_INT8_CUDA + why)]
    return [Route("int8", TRT_EP)]


def _shapes(names: list[str], batch: int, seq: int) -> str:
    return ",".join(f"{name}:{batch}x{seq}" for name in names)


def trt_provider_options(
    input_names: list[str], batch_sizes: list[int], seq_lens: list[int], cache_dir: str | Path
) -> dict[str, Any]:
    """TensorRT EP options for an int8 QDQ model over a bench grid (see the module docstring)."""
    if not input_names or not batch_sizes or not seq_lens:
        raise ValueError("trt_provider_options needs input names, batch sizes and sequence lengths")
    low, high = (min(batch_sizes), min(seq_lens)), (max(batch_sizes), max(seq_lens))
    cache = str(Path(cache_dir))
    return {
        "trt_int8_enable": True,  # run the QDQ nodes as int8 (scales from the graph, no calibration)
        "trt_fp16_enable": True,  # layers left in float (softmax, layer norm) run in fp16
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": True,
        "trt_timing_cache_path": cache,
        "trt_profile_min_shapes": _shapes(input_names, *low),
        "trt_profile_opt_shapes": _shapes(input_names, *high),
        "trt_profile_max_shapes": _shapes(input_names, *high),
    }


def to_fp16(onnx_path: str | Path):
    """The fp32 graph converted to fp16 (an `onnx.ModelProto`): int64 inputs, fp32 logits kept.

    ONNX Runtime's converter leaves the ops in its block list (shape arithmetic and the like) in
    fp32 and inserts casts around them. Weights over 2 GB cannot be held in one ModelProto.
    """
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    path = Path(onnx_path)
    path = path / "model.onnx" if path.is_dir() else path
    return convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)


# ---------------------------------------------------------------- GPU rows


def cuda_status() -> str | None:
    """None when torch sees a CUDA device, else why not."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        build = "CPU-only torch build" if torch.version.cuda is None else "no CUDA device visible"
        return f"torch.cuda.is_available() is False ({build}, torch {torch.__version__})"
    return None


def _ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return list(ort.get_available_providers())


def gpu_rows(
    artifacts: list[Artifact],
    batch_sizes: list[int],
    seq_lens: list[int],
    threads: int = 1,
    min_runs: int = 20,
    min_seconds: float = 1.0,
    warmup_runs: int = 5,
    timeout_s: float = 1800.0,
    cache_dir: Path | str | None = None,
) -> list[dict[str, Any]]:
    """GPU rows: torch fp32 and bf16 (autocast); ONNX per `onnx_routes` (CUDA EP fp32
    and fp16 with IO binding, TensorRT EP for s8 QDQ int8); skips recorded with reasons.

    A configuration that cannot run is one row with `skipped` (batch and seq None): no CUDA,
    no onnxruntime-gpu or TensorRT EP, int8 ONNX the CUDA EP must not get (onnxruntime #10267),
    INC and OpenVINO (CPU-only). cache_dir: TensorRT engine cache (runs/<name>/bench/trt-cache); None: a
    `trt-cache` folder beside the int8 model. Rows measured at a precision other than the one
    whose accuracy the artifact carries say so in `accuracy_from`.
    """
    reason = cuda_status()
    providers = _ort_providers()
    settings = grid_settings(batch_sizes, seq_lens, min_runs, min_seconds, warmup_runs)
    rows: list[dict[str, Any]] = []
    plan: list[tuple[Artifact, dict[str, Any]]] = []

    def skip(artifact: Artifact, precision: str, why: str) -> None:
        base = base_row(artifact, "cuda", precision, threads)
        rows.append({**empty_cell(base, None, None), "skipped": why})

    def measured_as(artifact: Artifact, precision: str) -> str | None:
        if precision == artifact.precision:
            return None
        return f"{artifact.name} {artifact.precision} (eval split); not re-measured in {precision}"

    for a in artifacts:
        if a.backend == "torch":
            for precision in ("fp32", "bf16"):
                if reason:
                    skip(a, precision, reason)
                else:
                    job = make_job(a, "cuda", precision, threads, settings)
                    plan.append((a, {**job, "accuracy_from": measured_as(a, precision)}))
        elif a.backend == "onnxruntime":
            kind = int8_kind(a.path) if a.precision == "int8" else None
            for route in onnx_routes(a.precision, kind, reason, providers):
                if route.skipped:
                    skip(a, route.precision, route.skipped)
                    continue
                job = {
                    **make_job(a, "cuda", route.precision, threads, settings),
                    "provider": route.provider,
                    "fp16": route.fp16,
                    "io_binding": True,
                    "accuracy_from": measured_as(a, route.precision),
                }
                if route.provider == TRT_EP:
                    cache = Path(cache_dir) if cache_dir else Path(a.path) / "trt-cache"
                    cache.mkdir(parents=True, exist_ok=True)
                    job["provider_options"] = trt_provider_options(
                        graph_inputs(a.path), batch_sizes, seq_lens, cache
                    )
                    job["accuracy_from"] = f"{a.name} int8 on the CPU EP (eval split)"
                plan.append((a, job))
        elif a.backend == "inc":
            skip(a, a.precision, "INC PT2E int8 (X86InductorQuantizer) runs on CPU only")
        elif a.backend == "openvino":
            skip(
                a,
                a.precision,
                "OpenVINO runs on the CPU here: its GPU plugin (Intel GPUs only) is not used "
                "for NVIDIA cards",
            )
        else:  # a backend with no GPU route here
            skip(a, a.precision, f"the {get_backend(a.backend).label} backend runs on the CPU here")
    return rows + run_jobs(plan, timeout_s)
