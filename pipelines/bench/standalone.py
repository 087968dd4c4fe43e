"""`distillery bench PATH…`: any ONNX file, OpenVINO IR or Hugging Face model folder, timed the
way the bench stage times a run's artifacts (one worker process per model, interleaved rounds,
warm-up, percentiles, the machine and its load recorded).

    result = bench_paths(["model.onnx", "ov-int8/"], Path("bench-out"), peer="peer-int8.onnx")

The backend comes from what is at each path (`find_backend`); a path holding none of them is one
clear error naming what was looked for. Speed-ups are taken within each round against the first
path (the reference) and against the peer when one is given (role `baseline`, as the run's peer
path). With `texts`, each model also serves those texts at their real lengths, length-bucketed.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from modelkit.errors import InputError
from modelkit.files import size_mb
from pipelines.bench.artifacts import Artifact, embedding_rows, model_config
from pipelines.bench.backends import BACKENDS
from pipelines.bench.grid import watched_grid

RESULTS_FILE, TABLE_FILE = "results.json", "results.md"
# ONNX ops that only an int8 graph holds (ORT dynamic and static, QDQ, the peer's)
INT8_OPS = {
    "MatMulInteger",
    "DynamicQuantizeLinear",
    "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat",
    "QLinearMatMul",
    "QuantizeLinear",
    "QAttention",
}
LOOKED_FOR = (
    "an .onnx file, an OpenVINO .xml, or a folder holding model.onnx, model.xml (OpenVINO IR) or "
    "a Hugging Face model (config.json with model.safetensors)"
)


def find_backend(path: Path) -> tuple[str, str]:
    """(backend, precision) of the model at `path`, or an InputError naming what was looked for."""
    if not path.exists():
        raise InputError(f"{path}: no such file or folder; give {LOOKED_FOR}.")
    if path.is_file():
        kind = {".onnx": "onnxruntime", ".xml": "openvino"}.get(path.suffix.lower())
        if kind is None:
            raise InputError(f"{path}: not a model file this bench runs; give {LOOKED_FOR}.")
    elif (path / "model.xml").is_file():
        kind = "openvino"
    elif (path / "model.onnx").is_file():
        kind = "onnxruntime"
    elif (path / "config.json").is_file() and (path / "model.safetensors").is_file():
        kind = "torch"
    elif (path / "config.json").is_file() and (path / "pytorch_model.bin").is_file():
        raise InputError(
            f"{path}: a PyTorch pickle (pytorch_model.bin); this project loads safetensors only. "
            "Convert it (model.save_pretrained(dir, safe_serialization=True)) and bench that."
        )
    else:
        raise InputError(f"{path}: no model found; give {LOOKED_FOR}.")
    extra = BACKENDS[kind].extra
    if extra and importlib.util.find_spec(BACKENDS[kind].module) is None:
        raise InputError(
            f"{path}: {BACKENDS[kind].label} is not installed; pip install -e .[{extra}]"
        )
    return kind, _precision(kind, path)


def _precision(backend: str, path: Path) -> str:
    """int8 when the graph holds quantized ops (ONNX) or FakeQuantize nodes (OpenVINO IR)."""
    if backend == "onnxruntime":
        from modelkit.onnx_graph import op_counts

        return "int8" if INT8_OPS & set(op_counts(path)) else "fp32"
    if backend == "openvino":
        xml = path / "model.xml" if path.is_dir() else path
        return "int8" if "FakeQuantize" in xml.read_text(errors="replace") else "fp32"
    return "fp32"


def artifacts_for(paths: list[str | Path], peer: str | Path | None = None) -> list[Artifact]:
    """One Artifact per path (the peer last, as a baseline), named by its file or folder name;
    every bad path is reported at once."""
    given = [(Path(p), "model") for p in paths] + ([(Path(peer), "baseline")] if peer else [])
    found, problems, names = [], [], set()
    for path, role in given:
        try:
            backend, precision = find_backend(path)
        except InputError as exc:
            problems.append(str(exc))
            continue
        name = path.stem if path.is_file() and path.stem != "model" else path.resolve().name
        if path.is_file() and path.stem == "model":
            name = path.resolve().parent.name
        while name in names:
            name = f"{name}-{len(names)}"
        names.add(name)
        files = BACKENDS[backend].files
        if path.is_file():  # an IR's weights are the .bin beside its .xml
            files = (path.name, path.with_suffix(".bin").name if backend == "openvino" else "")
        size = size_mb(path.parent if path.is_file() else path, tuple(f for f in files if f))
        found.append(Artifact(name, backend, str(path), precision, "cpu", None, size, "", role))
    if problems:
        raise InputError("\n".join(problems))
    return found


def text_lengths(texts: Path, artifacts: list[Artifact], max_length: int) -> list[int]:
    """Token lengths of the texts in `texts` (one per line), by the tokenizer beside the first
    model folder that has one (tokenizer.json or tokenizer_config.json)."""
    lines = [line for line in texts.read_text().splitlines() if line.strip()]
    if not lines:
        raise InputError(f"--texts {texts}: no text in it (one text per line).")
    for artifact in artifacts:
        folder = Path(artifact.path)
        folder = folder if folder.is_dir() else folder.parent
        if any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
            from transformers import AutoTokenizer  # trust_remote_code stays off

            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            ids = tokenizer(lines, truncation=True, max_length=max_length)["input_ids"]
            return [len(row) for row in ids]
    raise InputError(
        f"--texts {texts}: none of the models has a tokenizer beside it (tokenizer.json or "
        "tokenizer_config.json in its folder) to measure the texts' lengths with."
    )


def bench_paths(
    paths: list[str | Path],
    out: Path,
    peer: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    texts: Path | None = None,
) -> dict[str, Any]:
    """Time every model at `paths` (and the peer), write results.json and results.md to `out`.

    `settings`: bench section keys (grid, batch_sizes, seq_lens, threads, rounds, min_runs,
    min_seconds, warmup_runs, real_length_batch, timeout_s), defaults as in a recipe, plus
    `max_length` (the real-length cap, 128). Returns {"rows", "table", "results", "markdown"}.
    """
    from pipelines.bench.model_table import bench_table
    from pipelines.core.config import BenchConfig
    from pipelines.core.machine import machine
    from pipelines.core.runs import atomic_write_json, atomic_write_text
    from pipelines.core.schema import build

    settings = dict(settings or {})
    max_length = int(settings.pop("max_length", 128))
    b = build(BenchConfig, settings, "bench")
    artifacts = artifacts_for(paths, peer)
    longest = [
        model_config(a.path).get("max_position_embeddings")
        or embedding_rows(a.path, "position_embeddings")
        for a in artifacts
    ]
    # no cell past a position table: the quick grid's seq and the texts' cap stay within it
    max_length = min([max_length, *(n for n in longest if n)])
    real = None
    if texts is not None:
        real = {
            "lengths": text_lengths(Path(texts), artifacts, max_length),
            "max_length": max_length,
            "batch_size": b.real_length_batch,
        }
    rows, conditions = watched_grid(artifacts, b, max_length, real)
    table = bench_table(rows)
    out.mkdir(parents=True, exist_ok=True)
    results = {
        "rows": rows,
        "machine": machine(),
        "conditions": conditions,
        "settings": {**b.model_dump(), "max_length": max_length},
        "artifacts": [a.to_dict() for a in artifacts],
    }
    atomic_write_json(out / RESULTS_FILE, results)
    atomic_write_text(out / TABLE_FILE, table + "\n")
    return {
        "rows": rows,
        "table": table,
        "results": out / RESULTS_FILE,
        "markdown": out / TABLE_FILE,
    }
