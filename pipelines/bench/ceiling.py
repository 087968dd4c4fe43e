"""The measured GEMM ceiling: what this CPU's int8 / fp32 matrix kernels reach on large matrices.

    python -m pipelines.bench.ceiling --threads 2      # prints {"int8": ops/s, "fp32": ops/s, ...}
    measured_ceiling(threads=2)                        # the same, run in a child process

The roofline's assumed peak is arithmetic from a table (cores × clock × ops per cycle); this is
the machine's answer to the same question: one large square GEMM (M = N = K = 1024) through ONNX
Runtime's own kernels, `MatMulInteger` (uint8 activations × int8 weights, the pair ORT's dynamic
int8 uses) and fp32 `MatMul`, weights constant so ORT prepacks them as it does in a model. The
best of `repeats` timed runs after warm-up is the ceiling a b1/s128 forward could at most reach on
these kernels; achieved ÷ ceiling says how much of it fixed per-op costs leave.

Written here because no library we use measures it: ORT, OpenVINO and NNCF ship no GEMM
microbenchmark, and oneDNN's benchdnn is not on PyPI. It runs in its own process for the reason
every bench worker does (thread pools set before import; none shared with torch).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

SIZE = 1024  # M = N = K; large enough that packing and threading overheads are amortised
REPEATS = 30  # timed runs per precision (the best one counts)
WARMUP = 5


def gemm_model(precision: str, size: int = SIZE):
    """An ONNX model of one size×size GEMM with constant weights; input `a`."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if precision == "int8":
        weights = rng.integers(-128, 128, (size, size), dtype=np.int8)
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        in_type, out_type = TensorProto.UINT8, TensorProto.INT32
    elif precision == "fp32":
        weights = rng.standard_normal((size, size), dtype=np.float32)
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        in_type, out_type = TensorProto.FLOAT, TensorProto.FLOAT
    else:
        raise ValueError(f"precision {precision!r}: expected one of ['fp32', 'int8']")
    graph = helper.make_graph(
        [node],
        f"gemm_{precision}",
        [helper.make_tensor_value_info("a", in_type, [size, size])],
        [helper.make_tensor_value_info("y", out_type, [size, size])],
        [numpy_helper.from_array(weights, "w")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def measure(threads: int, size: int = SIZE, repeats: int = REPEATS) -> dict[str, Any]:
    """Ops/s of the best timed GEMM per precision, in this process (set threads before import)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    out: dict[str, Any] = {"threads": threads, "size": size, "repeats": repeats}
    rng = np.random.default_rng(1)
    for precision in ("int8", "fp32"):
        session = ort.InferenceSession(
            gemm_model(precision, size).SerializeToString(),
            options,
            providers=["CPUExecutionProvider"],
        )
        if precision == "int8":
            a = rng.integers(0, 256, (size, size), dtype=np.uint8)
        else:
            a = rng.standard_normal((size, size), dtype=np.float32)
        for _ in range(WARMUP):
            session.run(None, {"a": a})
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, {"a": a})
            best = min(best, time.perf_counter() - start)
        out[precision] = 2.0 * size**3 / best
        out[f"{precision}_best_ms"] = round(best * 1e3, 6)
    return out


def measured_ceiling(threads: int, size: int = SIZE, timeout_s: float = 120.0) -> dict[str, Any]:
    """`measure` in a child process with `threads` set before ORT loads; {"error": ...} if it fails
    (the roofline then shows the assumed peak alone)."""
    env = {**os.environ, **{k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}}
    cmd = [sys.executable, "-m", "pipelines.bench.ceiling", "--threads", str(threads)]
    cmd += ["--size", str(size)]
    try:
        done = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        return {"threads": threads, "error": f"GEMM ceiling took over {timeout_s:.0f} s"}
    lines = (done.stdout or "").strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr or "").strip().splitlines()[-1:] or ["no output"]
        return {"threads": threads, "error": f"GEMM ceiling failed: {tail[0]}"}
    try:  # a bench whose grid took minutes must not be lost to an unreadable line here
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        return {"threads": threads, "error": f"GEMM ceiling printed no JSON: {lines[-1][:200]}"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads")
    parser.add_argument("--size", type=int, default=SIZE, help="M = N = K of the GEMM")
    parser.add_argument("--repeats", type=int, default=REPEATS, help="timed runs per precision")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.threads, args.size, args.repeats)))


if __name__ == "__main__":
    main()
