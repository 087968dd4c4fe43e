"""The model card of the recommended artifact: what it is, how it scored, where it came from.

`lineage` (teacher → student → export → quantize, with every manifest hash) is shared with the
bundle's own card (`pipelines.bundle.card`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.report.noise import Evidence
from pipelines.report.recommend import RecommendRule
from pipelines.report.selection import task_type_name
from pipelines.report.tables import fmt


def _load_snippet(row: dict[str, Any], manifests: dict[str, dict]) -> str:
    entry = (manifests.get("quantize") or {}).get("quantized", {}).get(row["artifact"], {})
    if entry.get("load_with"):
        return entry["load_with"]
    from modelkit.task_types import TASK_TYPES

    path, head = row.get("path", "PATH"), TASK_TYPES[task_type_name(manifests)].head
    if row["backend"] == "torch":
        return f"transformers.AutoModelFor{head}.from_pretrained('{path}')"
    if row["backend"] == "inc":
        return f"quantize.inc.load_inc_model('{path}')"
    return (
        f"optimum.onnxruntime.ORTModelFor{head}.from_pretrained('{path}', "
        "file_name='model.onnx')  # or onnxruntime.InferenceSession(f'{path}/model.onnx')"
    )


def _parity(parity: dict[str, Any] | None) -> str:
    if not parity:
        return "no parity recorded"
    return (
        f"max |Δlogit| {parity.get('max_abs_diff', float('nan')):.3g}, agreement "
        f"{parity.get('agreement', float('nan')):.4f}, accuracy "
        f"{parity.get('accuracy_reference', float('nan')):.4f} → "
        f"{parity.get('accuracy_candidate', float('nan')):.4f} over {parity.get('rows')} rows"
    )


def lineage(artifact: str, manifests: dict[str, dict]) -> list[str]:
    """teacher → student → export → quantize steps that produced `artifact`, with hashes."""
    steps = []
    teacher = manifests.get("teacher") or {}
    acc = teacher.get("metrics", {}).get("accuracy")
    steps.append(f"teacher: hash `{teacher.get('hash', '?')}`, accuracy {fmt(acc, 4)}")
    quant = (manifests.get("quantize") or {}).get("quantized", {}).get(artifact)
    exports = (manifests.get("export") or {}).get("exports", {})
    source = artifact
    if quant and quant.get("source"):
        source = Path(quant["source"]).parent.name
    elif quant:
        source = "student"  # INC quantizes the PyTorch student
    if artifact.startswith("student") or source.startswith("student"):
        distill = manifests.get("distill") or {}
        m = distill.get("metrics", {})
        steps.append(
            f"student (distill): hash `{distill.get('hash', '?')}`, accuracy "
            f"{fmt(m.get('accuracy'), 4)}, retained {fmt(m.get('retained'), 4)} of the teacher"
        )
    if source in exports:
        export = manifests["export"]
        steps.append(
            f"export `{source}`: hash `{export.get('hash', '?')}`, opset "
            f"{exports[source].get('opset')}, parity vs PyTorch: {_parity(exports[source].get('parity'))}"
        )
    if quant:
        q = manifests["quantize"]
        preset = _preset_name(quant.get("preset")) or _preset_name(q.get("preset"))
        steps.append(
            f"quantize `{artifact}` ({quant.get('method', 'inc')}, preset {preset}): hash "
            f"`{q.get('hash', '?')}`, parity vs fp32: {_parity(quant.get('parity'))}"
        )
    return steps


def recommended_card(
    best: dict[str, Any],
    manifests: dict[str, dict],
    rule: RecommendRule,
    evidence: Evidence | None = None,
) -> str:
    """The card's markdown; the accuracy with its 95% interval when `evidence` has one."""
    evidence = evidence or Evidence(rows=None)
    out = [
        f"## Model card: `{best['artifact']}`",
        "",
        f"Recommended by the rule: {rule.describe()}. {best['reason']}.",
        "",
        f"- backend {best['backend']}, precision {best['precision']}, device {best['device']}",
        f"- accuracy {evidence.text(best.get('accuracy'))}, size {fmt(best.get('size_mb'), 2)} MB",
        f"- p50 {fmt(best['p50_ms'])} ms, p99 {fmt(best['p99_ms'])} ms, "
        f"{fmt(best['throughput'], 1)} sequences/s at batch {best['batch']}, seq {best['seq']}",
        f"- path `{best.get('path')}`",
        "",
        "### Lineage",
        "",
    ]
    out += [f"{i}. {step}" for i, step in enumerate(lineage(best["artifact"], manifests), 1)]
    out += [
        "",
        "### How to load",
        "",
        "```python",
        _load_snippet(best, manifests),
        "```",
        "",
        "Pad on the right (fused Attention in O2+ graphs reads the mask as per-row lengths).",
    ]
    return "\n".join(out)


def _preset_name(preset) -> str | None:
    """A preset recorded as a dict with a name (ORT presets) or as a plain name (NNCF's)."""
    return preset.get("name") if isinstance(preset, dict) else preset
