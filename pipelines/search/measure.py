"""Stage 1 of the search: each candidate built untrained, exported, quantized for the deployment
backend, then all timed together in interleaved rounds (bench workers, one process each).

An untrained candidate runs exactly as fast as the trained one: the graph, its shapes and its
int8 ops do not depend on the weights' values. Each candidate's files live in
`search/candidates/<id>/` with `built.json` written last, so a killed search rebuilds only what it
had not finished. The timing is one interleaved run over every candidate (and the teacher's fp32
PyTorch, the reference of the speed-ups); it is redone whole when interrupted, since ratios are
only fair within one run.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from pathlib import Path

from pipelines.bench.artifacts import Artifact
from pipelines.bench.jobs import make_job, run_jobs
from pipelines.core.runs import atomic_write_json, damaged_files, file_digests
from pipelines.search.space import Candidate

log = logging.getLogger("distillery")
BUILT = "built.json"


def build_candidate(
    cand: Candidate, folder: Path, key: str, recipe, teacher, tokenizer, train_set
) -> dict:
    """Untrained student → model/ (safetensors), int8/ (the deployment artifact); the record.
    `key` names what decides the build (teacher, candidate, backend): a folder left by another
    config is rebuilt."""
    import torch

    from pipelines.distillation.ablation import plain_onnx
    from pipelines.distillation.student_choice import build_student
    from quantize.ort_dynamic import quantize_dynamic

    done = folder / BUILT
    if done.is_file():
        try:
            record = json.loads(done.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            record = {}
        damaged = damaged_files(folder, record) if record.get("key") == key else []
        if record.get("key") == key and not damaged:
            return _public(record)
        if damaged:  # a candidate whose files changed is rebuilt, never timed broken or dropped
            log.warning("search: %s rebuilt: %s", cand.id, damaged[0])
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    r = recipe.model_copy(update={"student": type(recipe.student)(**cand.student_section())})
    torch.manual_seed(recipe.seed)
    student, _ = build_student(r, teacher, tokenizer, train_set)
    student.eval()
    student.save_pretrained(folder / "model", safe_serialization=True)
    tokenizer.save_pretrained(folder / "model")
    with tempfile.TemporaryDirectory(prefix="distillery-search-") as tmp:
        plain_onnx(student, folder / "model", Path(tmp) / "onnx")  # a token kind: torch.onnx
        if recipe.search.backend == "openvino":
            from pipelines.search.openvino_candidate import quantize_for_openvino

            quantize_for_openvino(
                recipe, Path(tmp) / "onnx" / "model.onnx", folder / "int8", train_set, tokenizer
            )
        else:
            onnx = Path(tmp) / "onnx" / "model.onnx"
            quantize_dynamic(onnx, folder / "int8" / "model.onnx", "auto")
    shutil.copy2(folder / "model" / "config.json", folder / "int8" / "config.json")
    record = {
        "key": key,
        **cand.to_dict(),
        "parameters": sum(p.numel() for p in student.parameters()),
        "int8_mb": round(sum(f.stat().st_size for f in (folder / "int8").iterdir()) / 2**20, 2),
        "files": file_digests(folder),  # checked on resume: a damaged file means a rebuild
    }
    atomic_write_json(done, record)
    return _public(record)


def _public(record: dict) -> dict:
    """The build record as the search table shows it (the file digests stay in built.json)."""
    return {k: v for k, v in record.items() if k != "files"}


def time_candidates(
    folders: dict[str, Path], teacher_dir: Path, s, timeout_s: float = 1800.0
) -> dict[str, dict]:
    """{id or "teacher": bench row} at (s.batch_size, s.seq_len, s.threads), interleaved rounds."""
    backend = "openvino" if s.backend == "openvino" else "onnxruntime"
    settings = {
        "batch_sizes": [s.batch_size],
        "seq_lens": [s.seq_len],
        "min_runs": s.min_runs,
        "min_seconds": s.min_seconds,
        "warmup_runs": 5,
    }
    plan = [
        (
            art,
            make_job(art, "cpu", art.precision, s.threads, settings),
        )
        for art in [
            Artifact("teacher", "torch", str(teacher_dir), "fp32"),
            *(Artifact(cid, backend, str(f / "int8"), "int8") for cid, f in folders.items()),
        ]
    ]
    rows = run_jobs(plan, timeout_s, rounds=s.rounds)
    return {row["artifact"]: row for row in rows if row.get("mode") == "grid"}
