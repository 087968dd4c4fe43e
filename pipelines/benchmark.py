"""Latency/throughput grid over a run's artifacts, one worker process per (artifact, threads).

    arts = discover_artifacts(Path("runs/demo"))
    rows = run_grid(arts, batch_sizes=[1, 32], seq_lens=[32, 128], threads_list=[1, 2],
                    min_runs=20, min_seconds=1.0, warmup_runs=5)
    rows += gpu_rows(arts, batch_sizes=[1, 32], seq_lens=[128], cache_dir=Path("runs/demo/bench/trt-cache"))

Each (artifact, threads) runs in its own `python -m pipelines.bench_worker` (see that module for
what is timed), so thread pools of PyTorch and ONNX Runtime never meet in one process
(onnxruntime #13808) and a crash costs one row group, not the run: a failed worker yields rows
with `error`. GPU configurations that cannot run here are rows with `skipped`, never dropped;
which execution provider runs which ONNX artifact on the GPU is `pipelines.bench_gpu.onnx_routes`.
`roofline` puts a measured latency against the CPU's assumed peak.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.bench_gpu import ORT_INT8_CUDA as ORT_INT8_CUDA  # re-exported
from pipelines.bench_gpu import TRT_EP, graph_inputs, int8_kind, onnx_routes, trt_provider_options
from pipelines.runs import MANIFEST, cpu_flags

ROOT = Path(__file__).resolve().parents[1]
BACKENDS = ("torch", "onnxruntime", "inc")
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
DEVICES = ("cpu", "cuda")
MODEL_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx", "model.onnx_data")
INC_FILES = ("inc_tensors.safetensors", "fp32/model.safetensors")
DEFAULT_VOCAB = 1000  # used only when an artifact has no config.json to read vocab_size from

log = logging.getLogger("distillery")


@dataclass
class Artifact:
    """One benchmarkable model: how to load it (backend, path) and what it scored."""

    name: str
    backend: str  # torch | onnxruntime | inc
    path: str  # folder (HF save_pretrained, ONNX folder with model.onnx, or INC out_dir)
    precision: str = "fp32"  # fp32 | bf16 | int8
    device: str = "cpu"  # cpu | cuda
    accuracy: float | None = None  # eval accuracy from the stage's manifest
    size_mb: float | None = None  # model file(s) on disk, MiB
    stage: str = ""  # the stage whose manifest listed it

    def __post_init__(self) -> None:
        for field, value, known in (
            ("backend", self.backend, BACKENDS),
            ("precision", self.precision, PRECISIONS),
            ("device", self.device, DEVICES),
        ):
            if value not in known:
                raise ValueError(
                    f"Artifact {self.name!r}: unknown {field} {value!r}; choose from {sorted(known)}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def size_mb(path: Path, files: tuple[str, ...] = MODEL_FILES) -> float | None:
    """MiB of the model file(s) under `path` (weights only; tokenizer and configs left out)."""
    found = [path / f for f in files if (path / f).is_file()]
    return sum(f.stat().st_size for f in found) / 2**20 if found else None


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def discover_artifacts(run_dir: Path | str) -> list[Artifact]:
    """Every model the run's manifests list, in lineage order; stages not yet run are skipped.

    teacher, student (PyTorch fp32); the export manifest's `exports` (ONNX fp32: teacher-onnx,
    student-onnx, student-onnx-<level>, ...); the quantize manifest's `quantized` (int8 ONNX, and
    the INC PT2E model as backend "inc"). Entries the quantize gate rejected are kept (the report
    shows them); entries whose files are missing are left out.
    """
    run_dir = Path(run_dir)
    found: list[Artifact] = []
    for name, stage in (("teacher", "teacher"), ("student", "distill")):
        manifest = _read(run_dir / stage / MANIFEST)
        folder = run_dir / stage
        if manifest is None or size_mb(folder) is None:
            continue
        accuracy = manifest.get("metrics", {}).get("accuracy")
        found.append(
            Artifact(name, "torch", str(folder), "fp32", "cpu", accuracy, size_mb(folder), stage)
        )
    export = _read(run_dir / "export" / MANIFEST) or {}
    for name, entry in export.get("exports", {}).items():
        folder = run_dir / "export" / entry.get("path", name)
        if not (folder / "model.onnx").is_file():
            continue
        accuracy = (entry.get("parity") or {}).get("accuracy_candidate")
        found.append(
            Artifact(
                name, "onnxruntime", str(folder), "fp32", "cpu", accuracy, size_mb(folder), "export"
            )
        )
    quant = _read(run_dir / "quantize" / MANIFEST) or {}
    for name, entry in quant.get("quantized", {}).items():
        folder = run_dir / "quantize" / entry.get("path", name)
        accuracy = entry.get("accuracy")
        if (folder / "model.onnx").is_file():
            found.append(
                Artifact(
                    name,
                    "onnxruntime",
                    str(folder),
                    "int8",
                    "cpu",
                    accuracy,
                    size_mb(folder),
                    "quantize",
                )
            )
        elif (folder / "inc_recipe.json").is_file():
            found.append(
                Artifact(
                    name,
                    "inc",
                    str(folder),
                    "int8",
                    "cpu",
                    accuracy,
                    size_mb(folder, INC_FILES),
                    "quantize",
                )
            )
    return found


def vocab_size(artifact: Artifact) -> int:
    """vocab_size from the artifact's config.json (INC keeps it under fp32/)."""
    for candidate in (
        Path(artifact.path) / "config.json",
        Path(artifact.path) / "fp32" / "config.json",
    ):
        config = _read(candidate)
        if config and config.get("vocab_size"):
            return int(config["vocab_size"])
    return DEFAULT_VOCAB


def _base_row(
    artifact: Artifact, device: str, precision: str, threads: int | None
) -> dict[str, Any]:
    return {
        "artifact": artifact.name,
        "backend": artifact.backend,
        "device": device,
        "precision": precision,
        "threads": threads,
        "accuracy": artifact.accuracy,
        "size_mb": artifact.size_mb,
        "path": artifact.path,
        "mode": "grid",
    }


def _empty_cell(row: dict[str, Any], batch: int | None, seq: int | None) -> dict[str, Any]:
    return {
        **row,
        "batch": batch,
        "seq": seq,
        **{k: None for k in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "runs", "throughput")},
        "peak_rss_mb": None,
        "load_s": None,
    }


def run_worker(job: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run one `pipelines.bench_worker` job in a fresh interpreter; RuntimeError on failure."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[var] = str(job["threads"])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.bench_worker"],
            input=json.dumps(job),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            cwd=ROOT,
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"worker timed out after {timeout_s:g} s") from None
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no stderr)"]
        raise RuntimeError(f"worker exited {done.returncode}: {tail[0]}")
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise RuntimeError(f"worker printed no JSON result: {done.stdout[-200:]!r}") from None


def _rows_from_result(
    artifact: Artifact, job: dict[str, Any], result: dict[str, Any]
) -> list[dict[str, Any]]:
    base = _base_row(artifact, job["device"], job["precision"], job["threads"])
    shared = {
        "peak_rss_mb": result["peak_rss_mb"],
        "load_s": result["load_s"],
        "import_s": result["import_s"],
        **{
            k: result[k]
            for k in ("providers", "io_binding", "compiled", "compile_s")
            if k in result
        },
        **({"accuracy_from": job["accuracy_from"]} if job.get("accuracy_from") else {}),
    }
    rows = []
    for cell in result["cells"]:
        row = {**_empty_cell(base, cell["batch"], cell["seq"]), **shared}
        row.update({k: v for k, v in cell.items() if k not in ("batch", "seq")})
        rows.append(row)
    real = result.get("real_length")
    if real:
        row = {
            **_empty_cell(base, real["batch_size"], real["max_length"]),
            **shared,
            "mode": "real_length",
        }
        row.update(
            {
                "rows": real["rows"],
                "rows_seen": {m: real[m]["rows_seen"] for m in ("bucket", "padded")},
                "rows_unique": {m: real[m]["rows_unique"] for m in ("bucket", "padded")},
                "bucket_sentences_per_s": real["bucket"]["sentences_per_s"],
                "padded_sentences_per_s": real["padded"]["sentences_per_s"],
                "bucket_speedup": real["bucket_speedup"],
                "padding_fraction": real["padded"]["padding_fraction"],
                "bucket_padding_fraction": real["bucket"]["padding_fraction"],
            }
        )
        rows.append(row)
    return rows


def _job(
    artifact: Artifact, device: str, precision: str, threads: int, settings: dict[str, Any]
) -> dict[str, Any]:
    return {
        "artifact": artifact.name,
        "backend": artifact.backend,
        "path": artifact.path,
        "precision": precision,
        "device": device,
        "threads": int(threads),
        "vocab_size": vocab_size(artifact),
        **settings,
    }


def _run_jobs(
    plan: list[tuple[Artifact, dict[str, Any]]], timeout_s: float
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for index, (artifact, job) in enumerate(plan, 1):
        log.info("bench %d/%d: %s, %s threads", index, len(plan), artifact.name, job["threads"])
        try:
            result = run_worker(job, timeout_s)
        except RuntimeError as exc:
            base = _base_row(artifact, job["device"], job["precision"], job["threads"])
            rows += [
                {**_empty_cell(base, b, s), "error": str(exc)}
                for b in job["batch_sizes"]
                for s in job["seq_lens"]
            ]
            continue
        rows += _rows_from_result(artifact, job, result)
    return rows


def run_grid(
    artifacts: list[Artifact],
    batch_sizes: list[int],
    seq_lens: list[int],
    threads_list: list[int],
    min_runs: int = 20,
    min_seconds: float = 1.0,
    warmup_runs: int = 5,
    real_lengths: dict[str, Any] | None = None,
    timeout_s: float = 1800.0,
    inc_compile: bool = True,
) -> list[dict[str, Any]]:
    """One row per artifact × batch × seq × threads on the artifact's device (CPU here).

    real_lengths: {"lengths": [...], "max_length": n, "batch_size": b} adds one row per
    (artifact, threads) with mode "real_length": sentences/s length-bucketed vs padded.
    """
    settings = {
        "batch_sizes": [int(b) for b in batch_sizes],
        "seq_lens": [int(s) for s in seq_lens],
        "min_runs": int(min_runs),
        "min_seconds": float(min_seconds),
        "warmup_runs": int(warmup_runs),
        "real_length": real_lengths,
        "inc_compile": bool(inc_compile),
    }
    plan = [
        (a, _job(a, a.device, a.precision, t, settings)) for a in artifacts for t in threads_list
    ]
    return _run_jobs(plan, timeout_s)


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
    """GPU rows: torch fp32 and bf16 (autocast); ONNX per `bench_gpu.onnx_routes` (CUDA EP fp32
    and fp16 with IO binding, TensorRT EP for s8 QDQ int8); skips recorded with reasons.

    A configuration that cannot run is one row with `skipped` (batch and seq None): no CUDA,
    no onnxruntime-gpu or TensorRT EP, int8 ONNX the CUDA EP must not get (onnxruntime #10267),
    INC (CPU-only). cache_dir: TensorRT engine cache (runs/<name>/bench/trt-cache); None: a
    `trt-cache` folder beside the int8 model. Rows measured at a precision other than the one
    whose accuracy the artifact carries say so in `accuracy_from`.
    """
    reason = cuda_status()
    providers = _ort_providers()
    settings = {
        "batch_sizes": [int(b) for b in batch_sizes],
        "seq_lens": [int(s) for s in seq_lens],
        "min_runs": int(min_runs),
        "min_seconds": float(min_seconds),
        "warmup_runs": int(warmup_runs),
        "real_length": None,
    }
    rows: list[dict[str, Any]] = []
    plan: list[tuple[Artifact, dict[str, Any]]] = []

    def skip(artifact: Artifact, precision: str, why: str) -> None:
        base = _base_row(artifact, "cuda", precision, threads)
        rows.append({**_empty_cell(base, None, None), "skipped": why})

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
                    job = _job(a, "cuda", precision, threads, settings)
                    plan.append((a, {**job, "accuracy_from": measured_as(a, precision)}))
        elif a.backend == "onnxruntime":
            kind = int8_kind(a.path) if a.precision == "int8" else None
            for route in onnx_routes(a.precision, kind, reason, providers):
                if route.skipped:
                    skip(a, route.precision, route.skipped)
                    continue
                job = {
                    **_job(a, "cuda", route.precision, threads, settings),
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
        else:  # inc
            skip(a, a.precision, "INC PT2E int8 (X86InductorQuantizer) runs on CPU only")
    return rows + _run_jobs(plan, timeout_s)


# ---------------------------------------------------------------- roofline


def _cpu_ghz(default: float = 2.0) -> tuple[float, str]:
    try:
        mhz = [
            float(line.split(":", 1)[1])
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("cpu MHz")
        ]
    except (OSError, ValueError):
        mhz = []
    if mhz:
        return max(mhz) / 1000.0, "/proc/cpuinfo 'cpu MHz' (current clock, not max turbo)"
    return default, f"fallback {default} GHz (no 'cpu MHz' in /proc/cpuinfo)"


def flops_per_cycle(flags: set[str], precision: str = "fp32") -> tuple[int, str]:
    """Assumed peak ops per cycle per core, and the assumption in words."""
    if "avx512f" in flags and "fma" in flags:
        fp32, why = 64, "AVX-512: 16 fp32 lanes × 2 (FMA) × 2 FMA ports"
    elif "avx2" in flags and "fma" in flags:
        fp32, why = 32, "AVX2: 8 fp32 lanes × 2 (FMA) × 2 FMA ports"
    else:
        fp32, why = 8, "SSE/NEON-class: 4 fp32 lanes × (mul + add)"
    if precision != "int8":
        return fp32, why
    if flags & {"avx512_vnni", "avx_vnni"}:
        return 4 * fp32, why + "; int8 VNNI (VPDPBUSD) = 4× fp32"
    return 2 * fp32, why + "; int8 without VNNI (VPMADDUBSW+VPMADDWD) ≈ 2× fp32"


def bert_flops(config: Any, batch: int = 1, seq: int = 128) -> tuple[float, str]:
    """FLOPs of one BERT encoder forward and the formula; embeddings and classifier left out."""

    def get(key: str) -> int:
        return int(config[key] if isinstance(config, dict) else getattr(config, key))

    layers, hidden, inter = get("num_hidden_layers"), get("hidden_size"), get("intermediate_size")
    linear = layers * (4 * hidden * hidden + 2 * hidden * inter)
    flops = batch * (2 * linear * seq + 4 * layers * seq * seq * hidden)
    formula = (
        "batch·(2·P_lin·seq + 4·L·seq²·H), P_lin = L·(4·H² + 2·H·I) "
        f"= {batch}·(2·{linear}·{seq} + 4·{layers}·{seq}²·{hidden})"
    )
    return float(flops), formula


def roofline(
    model_config: Any,
    batch: int = 1,
    seq: int = 128,
    cpu: dict[str, Any] | None = None,
    p50_ms: float | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """A BERT forward's FLOPs, the CPU's assumed peak, and (given p50_ms) the fraction achieved.

    cpu: {"cores", "ghz", "flags"} to override detection (cores: this process's affinity).
    """
    cpu = dict(cpu or {})
    flops, formula = bert_flops(model_config, batch, seq)
    flags = set(cpu.get("flags") or cpu.get("isa") or cpu_flags())
    cores = int(cpu.get("cores") or len(os.sched_getaffinity(0)))
    if cpu.get("ghz"):
        ghz, ghz_source = float(cpu["ghz"]), "given"
    else:
        ghz, ghz_source = _cpu_ghz()
    per_cycle, why = flops_per_cycle(flags, precision)
    peak = cores * ghz * 1e9 * per_cycle
    out = {
        "batch": batch,
        "seq": seq,
        "precision": precision,
        "flops": flops,
        "formula": formula,
        "peak_ops_per_s": peak,
        "assumption": (
            f"{cores} cores × {ghz:.2f} GHz ({ghz_source}) × {per_cycle} ops/cycle ({why}); "
            "no AMX, no turbo, no memory limits: an upper bound"
        ),
        "p50_ms": p50_ms,
        "achieved_ops_per_s": None,
        "fraction_of_peak": None,
    }
    if p50_ms:
        achieved = flops / (p50_ms / 1000.0)
        out.update(achieved_ops_per_s=achieved, fraction_of_peak=achieved / peak)
    return out
