"""Report sections from upstream stages' own tables: the student search and the distill ablation.

Each returns markdown lines (empty when the run has no such table); files they point to are
copied next to the report so the folder stands alone.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def search_section(run_dir: Path, manifest: dict[str, Any] | None, out_dir: Path) -> list[str]:
    """The search's pick, why, and its candidate table and plot."""
    if not manifest or not manifest.get("chosen"):
        return []
    folder = run_dir / "search"
    table = folder / "candidates.md"
    plot = folder / "candidates.png"
    chosen, at = manifest["chosen"], manifest.get("measured_at", {})
    lines = [
        "## Student search",
        "",
        f"Picked **{chosen['id']}** ({chosen['why']}); candidates timed as {at.get('backend')} "
        f"int8 at batch {at.get('batch')} × {at.get('seq')} tokens, {at.get('threads')} "
        f"thread(s), {at.get('rounds')} interleaved rounds; accuracies are short-run (see "
        "`search/candidates.md`), the pick's full-run figures are in the tables above.",
        "",
    ]
    if table.is_file():
        lines += [table.read_text().rstrip(), ""]
    if plot.is_file():
        shutil.copy2(plot, out_dir / "search.png")
        lines += ["![search candidates](search.png)", ""]
    return lines


def ablation_section(run_dir: Path, manifest: dict[str, Any] | None) -> list[str]:
    """The distill stage's ablation table (the same student trained several ways)."""
    if not manifest or not manifest.get("ablation"):
        return []
    table = run_dir / "distill" / manifest["ablation"].get("table", "ablation.md")
    if not table.is_file():
        return []
    return [
        "## Distillation ablation (the same student, trained each way)",
        "",
        table.read_text().rstrip(),
        "",
    ]


def tasks_section(manifests: dict[str, dict]) -> list[str]:
    """A transfer run's accuracy per task (columns) for every model and artifact (rows): the
    target through `logits`, each source through its `logits_<task>` output."""
    teacher, student = manifests.get("teacher") or {}, manifests.get("distill") or {}
    if not student.get("tasks"):
        return []
    names = list(student["tasks"])
    target = names[0]
    rows = [
        ("teacher (PyTorch)", teacher.get("tasks") or {}),
        ("student (PyTorch)", student["tasks"]),
    ]
    for name, record in ((manifests.get("export") or {}).get("exports") or {}).items():
        scores = {
            k: {"accuracy": v["accuracy_candidate"]} for k, v in (record.get("tasks") or {}).items()
        }
        scores[target] = {"accuracy": record["parity"]["accuracy_candidate"]}
        rows.append((name, scores))
    for name, record in ((manifests.get("quantize") or {}).get("quantized") or {}).items():
        rows.append(
            (name, {**(record.get("tasks") or {}), target: {"accuracy": record["accuracy"]}})
        )
    header = "| model | " + " | ".join(f"{n} (target)" if n == target else n for n in names) + " |"
    lines = [header, "|---|" + "---:|" * len(names)]
    for label, scores in rows:
        cells = [f"{scores[n]['accuracy']:.4f}" if n in scores else "—" for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return [
        "## Accuracy per task (transfer: one encoder, one head per task)",
        "",
        f"Each head on its own task's eval split; `{target}` is the default output `logits`, "
        "every other task is the output `logits_<task>` of the same graph.",
        "",
        *lines,
        "",
    ]
