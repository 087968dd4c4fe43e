"""GPU inference paths of the benchmark, and `make bench-gpu` (the GPU part alone).

    python -m pipelines.bench_gpu recipes/demo.yaml [--set bench.min_seconds=0.5] [--runs-dir runs]

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

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
INT8_KINDS = ("qdq-s8", "qdq-u8", "dynamic", "unknown")


@dataclass(frozen=True)
class Route:
    """One GPU row of an artifact: which EP runs it at which precision, or why it cannot run."""

    precision: str  # fp32 | fp16 | bf16 | int8: what the row measures
    provider: str | None  # ORT execution provider (None: not ONNX Runtime)
    skipped: str | None = None  # why this row has no numbers
    fp16: bool = False  # convert the fp32 graph to fp16 when loading


def int8_kind(onnx_path: str | Path) -> str:
    """How an int8 ONNX graph is quantized: qdq-s8 | qdq-u8 | dynamic | unknown (see INT8_KINDS).

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


def graph_inputs(onnx_path: str | Path) -> list[str]:
    """The graph's input names (the ones TensorRT profiles must name)."""
    import onnx

    path = Path(onnx_path)
    path = path / "model.onnx" if path.is_dir() else path
    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {t.name for t in graph.initializer}
    return [i.name for i in graph.input if i.name not in initializers]


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


# ---------------------------------------------------------------- make bench-gpu


def main(argv: list[str] | None = None) -> int:
    """Measure the GPU rows of a run's artifacts; exit 0 with a message where there is no CUDA."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.bench_gpu",
        description="GPU rows only (torch fp32/bf16, ORT CUDA fp32/fp16, TensorRT int8) for RECIPE.",
    )
    parser.add_argument("recipe", help="the recipe whose run folder holds the artifacts")
    parser.add_argument("--set", action="append", nargs="+", metavar="KEY=VALUE", default=[])
    parser.add_argument("--runs-dir", default="runs")
    args = parser.parse_args(argv)

    from pipelines.benchmark import cuda_status, discover_artifacts, gpu_rows
    from pipelines.config import load_recipe
    from pipelines.errors import DistilleryError
    from pipelines.report import terminal_table
    from pipelines.runs import RunDir, atomic_write_json

    reason = cuda_status()
    if reason:
        print(f"bench-gpu: skipped, no CUDA here: {reason}. Nothing to measure; exit 0.")
        return 0
    try:
        recipe = load_recipe(args.recipe, [item for group in args.set for item in group])
    except DistilleryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = RunDir(Path(args.runs_dir), recipe.name)
    artifacts = discover_artifacts(run.path)
    b = recipe.bench
    if b.artifacts:
        artifacts = [a for a in artifacts if a.name in b.artifacts]
    if not artifacts:
        print(
            f"bench-gpu: no artifacts under {run.path}; run the pipeline first "
            f"(distillery run {args.recipe} --stage quantize).",
            file=sys.stderr,
        )
        return 2
    rows = gpu_rows(
        artifacts,
        b.batch_sizes,
        b.seq_lens,
        min_runs=b.min_runs,
        min_seconds=b.min_seconds,
        warmup_runs=b.warmup_runs,
        timeout_s=min(b.timeout_s, WORKER_TIMEOUT_S),
        cache_dir=run.stage("bench") / TRT_CACHE,
    )
    out = run.stage("bench") / GPU_ROWS_FILE
    atomic_write_json(out, {"rows": rows})
    print(terminal_table(rows))
    measured = sum(1 for r in rows if r.get("p50_ms") is not None)
    skipped = sorted(
        {f"{r['artifact']} {r['precision']}: {r['skipped']}" for r in rows if r.get("skipped")}
    )
    errors = sorted(
        {f"{r['artifact']} {r['precision']}: {r['error']}" for r in rows if r.get("error")}
    )
    for line in skipped:
        print(f"skipped  {line}")
    for line in errors:
        print(f"error    {line}")
    print(
        f"bench-gpu: {measured} cells measured, {len(skipped)} skipped, {len(errors)} errors → {out}"
    )
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
