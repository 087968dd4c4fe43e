"""What a run has to benchmark: every model its manifests list, with how to load it.

arts = discover_artifacts(Path("runs/demo"))   # teacher, student, ONNX exports, int8, ...
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from modelkit.files import size_mb
from pipelines.bench.backends import BACKENDS, get_backend
from pipelines.core.runs import MANIFEST

ROLES = ("model", "baseline")  # baseline: the peer path (optimum-cli), what the report compares to
OV_FILES = BACKENDS["openvino"].files  # what the bundle copies of an OpenVINO artifact
PRECISIONS = ("fp32", "bf16", "fp16", "int8")
DEVICES = ("cpu", "cuda")
DEFAULT_VOCAB = 1000  # used only when an artifact has no config.json to read vocab_size from


@dataclass
class Artifact:
    """One benchmarkable model: how to load it (backend, path) and what it scored."""

    name: str
    backend: str  # a key of pipelines.bench.backends.BACKENDS: torch | onnxruntime | inc | openvino
    path: str  # folder (HF save_pretrained, ONNX folder with model.onnx, OpenVINO IR, INC out_dir)
    precision: str = "fp32"  # fp32 | bf16 | int8
    device: str = "cpu"  # cpu | cuda
    accuracy: float | None = None  # eval accuracy from the stage's manifest
    size_mb: float | None = None  # model file(s) on disk, MiB
    stage: str = ""  # the stage whose manifest listed it
    role: str = "model"  # model | baseline

    def __post_init__(self) -> None:
        for field, value, known in (
            ("backend", self.backend, BACKENDS),
            ("role", self.role, ROLES),
            ("precision", self.precision, PRECISIONS),
            ("device", self.device, DEVICES),
        ):
            if value not in known:
                raise ValueError(
                    f"Artifact {self.name!r}: unknown {field} {value!r}; choose from {sorted(known)}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def discover_artifacts(run_dir: Path | str) -> list[Artifact]:
    """Every model the run's manifests list, in lineage order; stages not yet run are skipped.

    teacher, student (PyTorch fp32); the export manifest's `exports` (ONNX fp32: teacher-onnx,
    student-onnx, student-onnx-<level>, ...); the quantize manifest's `quantized` (int8), each on
    the backend its entry records as `bench_backend` (`legacy_backend` for runs made before).
    Entries the quantize gate rejected are kept (the report shows them); entries whose files are
    missing are left out.
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
        backend = entry.get("bench_backend") or legacy_backend(folder)
        if backend is None or not (folder / get_backend(backend).marker).is_file():
            continue
        found.append(
            Artifact(
                name,
                backend,
                str(folder),
                "int8",
                "cpu",
                entry.get("accuracy"),
                size_mb(folder, BACKENDS[backend].files),
                "quantize",
                entry.get("role", "model"),
            )
        )
    return found


def legacy_backend(folder: Path) -> str | None:
    """The backend of a quantize manifest entry written before entries recorded theirs
    (`bench_backend`): read from the files in its folder, the rule of those runs; None when no
    artifact is there. (Their INC entries hold the library's own `backend` text, not a name.)"""
    if (folder / "model.xml").is_file():
        return "openvino"
    if (folder / "model.onnx").is_file():
        return "onnxruntime"
    if (folder / "inc_recipe.json").is_file():
        return "inc"
    return None


def absent_artifacts(run_dir: Path | str) -> dict[str, tuple[str, str]]:
    """{artifact: (why it was not made, its backend)} for methods the quantize stage skipped (a
    missing extra, a graph its runtime refused). Manifests written before the backend was
    recorded (`skipped_backends`) get the rule of those runs: OpenVINO when the name says so."""
    quant = _read(Path(run_dir) / "quantize" / MANIFEST) or {}
    backends = quant.get("skipped_backends") or {}
    return {
        name: (why, backends.get(name) or ("openvino" if "openvino" in name else "onnxruntime"))
        for name, why in (quant.get("skipped") or {}).items()
    }


def model_config(path: str | Path) -> dict[str, Any]:
    """The HF config.json of the model at `path` (a folder, INC's fp32/ under it, or the folder
    beside a model file), or {}."""
    path = Path(path)
    folder = path.parent if path.is_file() else path
    for candidate in (folder / "config.json", folder / "fp32" / "config.json"):
        config = _read(candidate)
        if config:
            return config
    return {}


def embedding_rows(path: str | Path, table: str) -> int | None:
    """Rows of the graph's `table` embedding ("word_embeddings", "position_embeddings") in an
    ONNX graph or OpenVINO IR at `path`, for a model without a config.json beside it; or None."""
    import re

    path = Path(path)
    for model in (path, path / "model.onnx", path / "model.xml"):
        if model.suffix == ".onnx" and model.is_file():
            from modelkit.onnx_graph import load_graph

            for init in load_graph(model).graph.initializer:
                if table in init.name and len(init.dims) == 2:
                    return int(init.dims[0])
        if model.suffix == ".xml" and model.is_file():
            pattern = rf'name="[^"]*{table}[^"]*" type="Const"[^>]*>\s*<data [^>]*shape="(\d+),'
            found = re.search(pattern, model.read_text(errors="replace"))
            if found:
                return int(found.group(1))
    return None


def vocab_size(artifact: Artifact) -> int:
    """vocab_size from the artifact's config.json (INC keeps it under fp32/), else the rows of
    its graph's word embeddings, else DEFAULT_VOCAB."""
    vocab = model_config(artifact.path).get("vocab_size")
    vocab = vocab or embedding_rows(artifact.path, "word_embeddings")
    return int(vocab) if vocab else DEFAULT_VOCAB
