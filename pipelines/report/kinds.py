"""One line per kind of model: the teacher (a transformer), a transformer student, and the
token-vector students (static, cnn, bilstm), each at its most accurate artifact; for a run's
report and for `distillery compare` across runs of different kinds.

    kind_of("student-int8-dynamic", manifests)     # "cnn": the distill manifest's student.init
    kind_lines(compared, manifests, teacher)       # [heading, "", "- **cnn** student: …", …]

A run holds one student, so its kinds are the teacher and that student's; the kind is what the
distill manifest records (`student.init`, the search's pick when there was one).
"""

from __future__ import annotations

from typing import Any

from distill.token_students import TOKEN_KINDS
from pipelines.report.speed import show, speedup
from pipelines.report.tables import fmt

KINDS = ("teacher", "transformer", *TOKEN_KINDS)  # the order of the lines


def kind_of(artifact: str, manifests: dict[str, dict]) -> str | None:
    """The kind of model `artifact` is (a name of KINDS), or None when the manifests do not say
    (rows of `distillery bench`, whose artifacts are whatever folders it was given)."""
    if artifact.startswith("teacher"):
        return "teacher" if "teacher" in manifests else None
    if "distill" not in manifests or not artifact.startswith("student"):
        return None
    init = ((manifests["distill"] or {}).get("student") or {}).get("init")
    return init if init in TOKEN_KINDS else "transformer"


def best_by_kind(compared: list[dict[str, Any]], manifests: dict[str, dict]) -> dict[str, dict]:
    """{kind: its most accurate artifact's row (ties: the fastest)} among the rows the rule
    compares (one shape, one device), baselines left out: they are compared against, never
    shipped."""
    out: dict[str, dict] = {}
    for kind in KINDS:
        rows = [
            r
            for r in compared
            if r.get("role", "model") != "baseline"
            and r.get("accuracy") is not None
            and kind_of(r["artifact"], manifests) == kind
        ]
        if rows:
            out[kind] = max(rows, key=lambda r: (r["accuracy"], -r["p50_ms"]))
    return out


def kind_text(row: dict[str, Any], base: dict[str, Any] | None, teacher: float | None) -> str:
    """'accuracy 0.8512 (`student-onnx`), 96.4% of the teacher, 41.2× the teacher's fp32
    PyTorch, 2.31 MB'."""
    said = f"accuracy {row['accuracy']:.4f} (`{row['artifact']}`)"
    if teacher:
        said += f", {row['accuracy'] / teacher:.1%} of the teacher"
    said += f", {show(speedup(base, row))} the teacher's fp32 PyTorch"
    return said + f", {fmt(row.get('size_mb'), 2)} MB"


def label(kind: str) -> str:
    return "**teacher** (transformer)" if kind == "teacher" else f"**{kind}** student"


def kind_lines(
    compared: list[dict[str, Any]], manifests: dict[str, dict], teacher: float | None
) -> list[str]:
    """The report's block: a heading line, then one line per kind the run holds ([] when the
    manifests name none). `compared`: the rows at the summary's reference cell."""
    lines = side_by_side([("", compared, manifests, teacher)])
    if not lines:
        return []
    first = compared[0]  # every compared row is at the same cell
    threads = first["threads"]
    at = f"batch {first['batch']}, seq {first['seq']}, {threads} thread{'s' * (threads != 1)}"
    return [
        f"**By kind of model** (each at its most accurate artifact; speed-ups at {at}):",
        "",
        *lines,
    ]


Side = tuple[str, list[dict[str, Any]], dict[str, dict], float | None]


def side_by_side(sides: list[Side]) -> list[str]:
    """One line per kind any side holds: '- **cnn** student: B: accuracy …; …'. Each side is
    (its name, '' for a run alone; its compared rows; its manifests; its teacher's accuracy),
    and each figure is taken within its own side (its own teacher, its own bench run)."""
    found = []
    for name, compared, manifests, teacher in sides:
        base = next((r for r in compared if r["artifact"] == "teacher"), None)
        found.append((name, best_by_kind(compared, manifests), base, teacher))
    lines = []
    for kind in KINDS:
        parts = [
            (f"{name}: " if name else "") + kind_text(best[kind], base, teacher)
            for name, best, base, teacher in found
            if kind in best
        ]
        if parts:
            lines.append(f"- {label(kind)}: " + "; ".join(parts) + ".")
    return lines
