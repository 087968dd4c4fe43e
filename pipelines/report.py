"""Benchmark report: results.json (schema-checked), README.md with a model card, two plots.

    out = write_report(Path("runs/demo/report"), rows, manifests, machine(), RecommendRule())
    print(terminal_table(rows))

`rows` come from `pipelines.benchmark.run_grid` / `gpu_rows`; `manifests` maps stage name
(teacher, distill, export, quantize) to its manifest. The recommended artifact is the fastest
(p50) at `rule.batch` × `rule.seq` (the largest measured seq when that one was not) and the most
threads measured, among those keeping `rule.min_retained` of the teacher's accuracy.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.benchmark import BACKENDS, DEVICES, PRECISIONS
from pipelines.runs import atomic_write_json, atomic_write_text

NULLABLE_NUMBER = ["number", "null"]
RESULTS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "distillery benchmark results",
    "type": "array",
    "items": {
        "type": "object",
        "required": [
            "artifact",
            "backend",
            "device",
            "precision",
            "batch",
            "seq",
            "threads",
            "p50_ms",
            "p90_ms",
            "p99_ms",
            "throughput",
            "accuracy",
            "size_mb",
        ],
        "properties": {
            "artifact": {"type": "string", "minLength": 1},
            "backend": {"type": "string", "enum": list(BACKENDS)},
            "device": {"type": "string", "enum": list(DEVICES)},
            "precision": {"type": "string", "enum": list(PRECISIONS)},
            "mode": {"type": "string", "enum": ["grid", "real_length"]},
            "batch": {"type": ["integer", "null"], "minimum": 1},
            "seq": {"type": ["integer", "null"], "minimum": 1},
            "threads": {"type": ["integer", "null"], "minimum": 1},
            "p50_ms": {"type": NULLABLE_NUMBER, "minimum": 0},
            "p90_ms": {"type": NULLABLE_NUMBER, "minimum": 0},
            "p99_ms": {"type": NULLABLE_NUMBER, "minimum": 0},
            "mean_ms": {"type": NULLABLE_NUMBER, "minimum": 0},
            "runs": {"type": ["integer", "null"], "minimum": 1},
            "throughput": {"type": NULLABLE_NUMBER, "minimum": 0},
            "accuracy": {"type": NULLABLE_NUMBER, "minimum": 0, "maximum": 1},
            "size_mb": {"type": NULLABLE_NUMBER, "minimum": 0},
            "peak_rss_mb": {"type": NULLABLE_NUMBER, "minimum": 0},
            "load_s": {"type": NULLABLE_NUMBER, "minimum": 0},
            "error": {"type": "string"},
            "skipped": {"type": "string"},
        },
    },
}
MEASURED = ("p50_ms", "p90_ms", "p99_ms", "throughput")  # required numbers on a measured grid row
_TYPES = {
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
    "null": type(None),
    "object": dict,
    "array": list,
}


def _type_ok(value: Any, kinds: str | list[str]) -> bool:
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if isinstance(value, bool):  # bool is an int in Python, not in JSON
        return "boolean" in kinds
    return any(isinstance(value, _TYPES[k]) for k in kinds)


def _check(value: Any, schema: dict[str, Any]) -> str | None:
    """The first problem of `value` against a (flat) property schema, or None."""
    if "type" in schema and not _type_ok(value, schema["type"]):
        return f"expected {schema['type']}, got {type(value).__name__} {value!r}"
    if value is None:
        return None
    if "enum" in schema and value not in schema["enum"]:
        return f"{value!r} is not one of {schema['enum']}"
    if "minimum" in schema and value < schema["minimum"]:
        return f"{value!r} < minimum {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return f"{value!r} > maximum {schema['maximum']}"
    if "minLength" in schema and len(value) < schema["minLength"]:
        return f"{value!r} is shorter than {schema['minLength']}"
    return None


def validate_results(rows: list[dict[str, Any]]) -> None:
    """Check rows against RESULTS_SCHEMA plus p50 ≤ p90 ≤ p99 on measured rows.

    Raises ValueError naming the row (index and artifact) and the field.
    """
    if not isinstance(rows, list):
        raise ValueError(f"results: expected a list of rows, got {type(rows).__name__}")
    item = RESULTS_SCHEMA["items"]
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"results row {i}: expected an object, got {type(row).__name__}")
        where = f"results row {i} (artifact {row.get('artifact')!r})"
        for field in item["required"]:
            if field not in row:
                raise ValueError(f"{where}: field {field!r} is missing")
        for field, schema in item["properties"].items():
            if field in row:
                problem = _check(row[field], schema)
                if problem:
                    raise ValueError(f"{where}: field {field!r}: {problem}")
        if row.get("mode", "grid") != "grid" or row.get("error") or row.get("skipped"):
            continue
        for field in (*MEASURED, "batch", "seq"):
            if row[field] is None:
                raise ValueError(
                    f"{where}: field {field!r} is null on a measured row; a row without numbers "
                    "needs 'error' or 'skipped' saying why"
                )
        if not row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]:
            raise ValueError(
                f"{where}: field 'p90_ms': percentiles out of order "
                f"(p50 {row['p50_ms']}, p90 {row['p90_ms']}, p99 {row['p99_ms']})"
            )


# ---------------------------------------------------------------- selection


@dataclass
class RecommendRule:
    """Fastest p50 at batch × seq keeping min_retained of the teacher's accuracy, on `device`."""

    min_retained: float = 0.99  # fraction of the teacher's accuracy to keep, (0, 1]
    batch: int = 1  # latency-bound serving: one request at a time
    seq: int | None = 128  # None or unmeasured: the largest measured seq
    device: str = "cpu"  # cpu | cuda

    def __post_init__(self) -> None:
        if not 0 < self.min_retained <= 1:
            raise ValueError(f"min_retained must be in (0, 1], got {self.min_retained}")

    def describe(self) -> str:
        return (
            f"fastest p50 on {self.device} at batch {self.batch}, seq {self.seq or 'max'} (or the "
            f"largest measured), most threads, keeping ≥ {self.min_retained:.0%} of the "
            "teacher's accuracy"
        )


def _rule(rule: RecommendRule | dict | None) -> RecommendRule:
    if rule is None:
        return RecommendRule()
    if isinstance(rule, dict):
        return RecommendRule(**rule)
    return rule


def _measured(rows: list[dict[str, Any]], device: str | None = None) -> list[dict[str, Any]]:
    return [
        r
        for r in rows
        if r.get("mode", "grid") == "grid"
        and not r.get("error")
        and not r.get("skipped")
        and r.get("p50_ms") is not None
        and (device is None or r["device"] == device)
    ]


def _shape(rows: list[dict[str, Any]], seq: int | None = None) -> tuple[int | None, int | None]:
    """(seq, threads) used for comparisons: `seq` if measured else the largest; most threads."""
    seqs = sorted({r["seq"] for r in rows})
    threads = max((r["threads"] for r in rows), default=None)
    if not seqs:
        return None, threads
    return (seq if seq in seqs else seqs[-1]), threads


def _pick_batch(rows: list[dict[str, Any]], wanted: int, largest: bool = False) -> int | None:
    batches = sorted({r["batch"] for r in rows})
    if not batches:
        return None
    if wanted in batches:
        return wanted
    return batches[-1] if largest else batches[0]


def teacher_accuracy(rows: list[dict[str, Any]], manifests: dict[str, dict]) -> float | None:
    for r in rows:
        if r["artifact"] == "teacher" and r.get("accuracy") is not None:
            return float(r["accuracy"])
    acc = (manifests.get("teacher") or {}).get("metrics", {}).get("accuracy")
    return None if acc is None else float(acc)


def recommend(
    rows: list[dict[str, Any]], manifests: dict[str, dict], rule: RecommendRule | dict | None = None
) -> dict[str, Any] | None:
    """The row the rule picks (with `reason`), or None when nothing measured qualifies."""
    rule = _rule(rule)
    measured = _measured(rows, rule.device)
    seq, threads = _shape(measured, rule.seq)
    batch = _pick_batch(measured, rule.batch)
    at = [r for r in measured if (r["batch"], r["seq"], r["threads"]) == (batch, seq, threads)]
    teacher = teacher_accuracy(rows, manifests)
    if teacher is None:
        keep, floor = [r for r in at if r.get("accuracy") is not None] or at, None
    else:
        floor = teacher * rule.min_retained
        keep = [r for r in at if r.get("accuracy") is not None and r["accuracy"] >= floor - 1e-12]
    if not keep:
        return None
    best = min(keep, key=lambda r: r["p50_ms"])
    floor_text = "no teacher accuracy known" if floor is None else f"accuracy ≥ {floor:.4f}"
    return {
        **best,
        "reason": (
            f"fastest p50 ({best['p50_ms']:.3f} ms) at batch {batch}, seq {seq}, {threads} "
            f"threads on {rule.device} among {len(keep)} of {len(at)} artifacts with {floor_text}"
        ),
        "rule": asdict(rule),
    }


# ---------------------------------------------------------------- tables


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}g}" if value < 1 else f"{value:.{digits}f}"


def summary_table(
    rows: list[dict[str, Any]], device: str
) -> tuple[str, list[str], list[list[str]]]:
    """(title, header, lines) for one device: one line per (artifact, precision)."""
    on_device = [r for r in rows if r["device"] == device and r.get("mode", "grid") == "grid"]
    measured = _measured(on_device)
    seq, threads = _shape(measured)
    small, large = _pick_batch(measured, 1), _pick_batch(measured, 32, largest=True)
    batches = [b for b in dict.fromkeys([small, large]) if b is not None]
    header = ["artifact", "backend", "precision", "accuracy", "size MB"]
    for b in batches:
        header += [f"b{b} p50/p99 ms", f"b{b} speed-up"]
    if not batches:  # nothing measured on this device: one column for the skip reasons
        header.append("status")

    def cell(artifact: str, precision: str, batch: int) -> dict[str, Any] | None:
        for r in on_device:
            if (r["artifact"], r["precision"], r["batch"], r["seq"], r["threads"]) == (
                artifact,
                precision,
                batch,
                seq,
                threads,
            ):
                return r
        return None

    lines = []
    keys = list(dict.fromkeys((r["artifact"], r["precision"]) for r in on_device))
    for artifact, precision in keys:
        group = [r for r in on_device if (r["artifact"], r["precision"]) == (artifact, precision)]
        first = group[0]
        line = [
            artifact,
            first["backend"],
            precision,
            _fmt(first.get("accuracy"), 4),
            _fmt(first.get("size_mb"), 2),
        ]
        skipped = next((r["skipped"] for r in group if r.get("skipped")), None)
        failed = next((r["error"] for r in group if r.get("error")), None)
        if skipped:
            lines.append(line + [f"skipped: {skipped}"] + [""] * (len(header) - len(line) - 1))
            continue
        if not batches:
            lines.append(line + [f"error: {failed[:60]}" if failed else "–"])
            continue
        for b in batches:
            r, base = cell(artifact, precision, b), cell("teacher", "fp32", b)
            if r is None:
                line += [f"error: {failed[:60]}" if failed else "–", "–"]
            elif r.get("error"):
                line += [f"error: {r['error'][:60]}", "–"]
            else:
                ok = base is not None and base.get("p50_ms") and r.get("p50_ms")
                speed = f"{base['p50_ms'] / r['p50_ms']:.2f}×" if ok else "–"
                line += [f"{_fmt(r['p50_ms'])} / {_fmt(r['p99_ms'])}", speed]
        lines.append(line)
    title = f"{device}: seq {seq}, {threads} threads; speed-up = teacher fp32 PyTorch p50 ÷ p50"
    if not batches:
        title = f"{device}: nothing measured"
    return title, header, lines


def _devices(rows: list[dict[str, Any]]) -> list[str]:
    return [d for d in ("cpu", "cuda") if any(r["device"] == d for r in rows)]


def markdown_table(header: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in lines]
    return "\n".join(out)


def terminal_table(rows: list[dict[str, Any]]) -> str:
    """The README's per-device tables as aligned plain text."""
    blocks = []
    for device in _devices(rows):
        title, header, lines = summary_table(rows, device)
        widths = [max(len(x) for x in col) for col in zip(header, *lines, strict=False)]
        text = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=False))]
        text.append("  ".join("-" * w for w in widths))
        text += [
            "  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)).rstrip()
            for line in lines
        ]
        blocks.append("\n".join(text))
    return "\n\n".join(blocks)


def real_length_table(rows: list[dict[str, Any]]) -> str | None:
    real = [r for r in rows if r.get("mode") == "real_length" and not r.get("error")]
    if not real:
        return None
    header = [
        "artifact",
        "device",
        "threads",
        "batch",
        "bucketed sent/s",
        "padded sent/s",
        "speed-up",
        "padding",
    ]
    lines = [
        [
            r["artifact"],
            r["device"],
            str(r["threads"]),
            str(r["batch"]),
            _fmt(r.get("bucket_sentences_per_s"), 1),
            _fmt(r.get("padded_sentences_per_s"), 1),
            f"{r['bucket_speedup']:.2f}×" if r.get("bucket_speedup") else "–",
            f"{r.get('padding_fraction', 0):.0%}",
        ]
        for r in real
    ]
    return markdown_table(header, lines)


# ---------------------------------------------------------------- model card


def _load_snippet(row: dict[str, Any], manifests: dict[str, dict]) -> str:
    entry = (manifests.get("quantize") or {}).get("quantized", {}).get(row["artifact"], {})
    if entry.get("load_with"):
        return entry["load_with"]
    path = row.get("path", "PATH")
    if row["backend"] == "torch":
        return f"transformers.AutoModelForSequenceClassification.from_pretrained('{path}')"
    if row["backend"] == "inc":
        return f"quantize.inc.load_inc_model('{path}')"
    return (
        f"optimum.onnxruntime.ORTModelForSequenceClassification.from_pretrained('{path}', "
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
    steps.append(f"teacher: hash `{teacher.get('hash', '?')}`, accuracy {_fmt(acc, 4)}")
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
            f"{_fmt(m.get('accuracy'), 4)}, retained {_fmt(m.get('retained'), 4)} of the teacher"
        )
    if source in exports:
        export = manifests["export"]
        steps.append(
            f"export `{source}`: hash `{export.get('hash', '?')}`, opset "
            f"{exports[source].get('opset')}, parity vs PyTorch: {_parity(exports[source].get('parity'))}"
        )
    if quant:
        q = manifests["quantize"]
        preset = (quant.get("preset") or {}).get("name") or (q.get("preset") or {}).get("name")
        steps.append(
            f"quantize `{artifact}` ({quant.get('method', 'inc')}, preset {preset}): hash "
            f"`{q.get('hash', '?')}`, parity vs fp32: {_parity(quant.get('parity'))}"
        )
    return steps


def model_card(best: dict[str, Any], manifests: dict[str, dict], rule: RecommendRule) -> str:
    out = [
        f"## Model card: `{best['artifact']}`",
        "",
        f"Recommended by the rule: {rule.describe()}. {best['reason']}.",
        "",
        f"- backend {best['backend']}, precision {best['precision']}, device {best['device']}",
        f"- accuracy {_fmt(best.get('accuracy'), 4)}, size {_fmt(best.get('size_mb'), 2)} MB",
        f"- p50 {_fmt(best['p50_ms'])} ms, p99 {_fmt(best['p99_ms'])} ms, "
        f"{_fmt(best['throughput'], 1)} sequences/s at batch {best['batch']}, seq {best['seq']}",
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


# ---------------------------------------------------------------- plots


def pareto_points(
    rows: list[dict[str, Any]], batch: int = 1, device: str = "cpu"
) -> list[dict[str, Any]]:
    """One point per artifact (accuracy vs p50 at `batch`, largest seq, most threads), front marked."""
    measured = _measured(rows, device)
    seq, threads = _shape(measured)
    batch = _pick_batch(measured, batch)
    points = [
        {
            "artifact": r["artifact"],
            "precision": r["precision"],
            "p50_ms": r["p50_ms"],
            "accuracy": r["accuracy"],
        }
        for r in measured
        if (r["batch"], r["seq"], r["threads"]) == (batch, seq, threads)
        and r.get("accuracy") is not None
    ]
    best = -float("inf")
    for p in sorted(points, key=lambda p: (p["p50_ms"], -p["accuracy"])):
        p["pareto"] = p["accuracy"] > best
        best = max(best, p["accuracy"])
    for p in points:
        p.update(batch=batch, seq=seq, threads=threads)
    return points


def plot_pareto(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter([p["p50_ms"] for p in points], [p["accuracy"] for p in points], zorder=3)
    for i, p in enumerate(sorted(points, key=lambda p: p["p50_ms"])):
        ax.annotate(  # labels staggered vertically: neighbours in latency often share accuracy
            p["artifact"],
            (p["p50_ms"], p["accuracy"]),
            fontsize=7,
            xytext=(4, 4 + 9 * (i % 4)),
            textcoords="offset points",
        )
    front = sorted((p for p in points if p["pareto"]), key=lambda p: p["p50_ms"])
    if front:
        ax.step(
            [p["p50_ms"] for p in front],
            [p["accuracy"] for p in front],
            where="post",
            color="C3",
            marker="o",
            markerfacecolor="none",
            markersize=10,
            label="Pareto front",
        )
        ax.legend(loc="lower right")
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency (ms, log scale)")
    ax.set_ylabel("accuracy")
    if points:
        p = points[0]
        ax.set_title(
            f"accuracy vs latency, batch {p['batch']}, seq {p['seq']}, {p['threads']} threads"
        )
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latency_series(
    rows: list[dict[str, Any]], batch: int = 1, device: str = "cpu"
) -> dict[str, list[tuple[int, float]]]:
    measured = _measured(rows, device)
    _, threads = _shape(measured)
    batch = _pick_batch(measured, batch)
    series: dict[str, list[tuple[int, float]]] = {}
    for r in measured:
        if r["batch"] == batch and r["threads"] == threads:
            series.setdefault(r["artifact"], []).append((r["seq"], r["p50_ms"]))
    return {k: sorted(v) for k, v in series.items()}


def plot_latency(series: dict[str, list[tuple[int, float]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, points in series.items():
        ax.plot([s for s, _ in points], [ms for _, ms in points], marker="o", label=name)
    ax.set_xlabel("sequence length (tokens)")
    ax.set_ylabel("p50 latency (ms)")
    ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    if series:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------- report


def write_report(
    out_dir: Path | str,
    rows: list[dict[str, Any]],
    manifests: dict[str, dict],
    machine: dict[str, Any],
    recommended_rule: RecommendRule | dict | None = None,
    roofline: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write results.json, README.md, pareto.png and latency.png under out_dir.

    Returns {"recommended": name or None, "recommended_path", "results", "readme", "pareto",
    "latency" (paths), "pareto_points", "latency_series", "reason"}.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rule = _rule(recommended_rule)
    validate_results(rows)
    paths = {
        name: out_dir / name for name in ("results.json", "README.md", "pareto.png", "latency.png")
    }
    atomic_write_json(paths["results.json"], rows)

    points = pareto_points(rows, rule.batch, rule.device)
    plot_pareto(points, paths["pareto.png"])
    series = latency_series(rows, rule.batch, rule.device)
    batch = _pick_batch(_measured(rows, rule.device), rule.batch)
    plot_latency(
        series, paths["latency.png"], f"p50 vs sequence length, batch {batch}, {rule.device}"
    )

    best = recommend(rows, manifests, rule)
    text = ["# Benchmark report", ""]
    text += [
        f"Machine: {machine.get('cpu', '?')} ({machine.get('arch', '?')}), {machine.get('cores')} cores, "
        f"ISA {', '.join(machine.get('isa', [])) or '?'}"
        + (f", GPU {', '.join(machine['gpu'])}" if machine.get("gpu") else ""),
        "",
    ]
    for device in _devices(rows):
        title, header, lines = summary_table(rows, device)
        text += [f"## {title}", "", markdown_table(header, lines), ""]
    real = real_length_table(rows)
    if real:
        text += [
            "## Real lengths: length-bucketed vs padded to max_length (each eval row once)",
            "",
            real,
            "",
        ]
    if roofline:
        text += ["## Roofline", ""]
        for r in roofline:
            frac = r.get("fraction_of_peak")
            text += [
                f"- {r.get('artifact', '')} batch {r['batch']}, seq {r['seq']}, {r['precision']}: "
                f"{r['flops'] / 1e9:.3g} GFLOP ({r['formula']}); peak {r['peak_ops_per_s'] / 1e9:.1f} "
                f"GOP/s assuming {r['assumption']}"
                + (
                    f"; achieved {r['achieved_ops_per_s'] / 1e9:.2f} GOP/s = {frac:.1%} of peak"
                    if frac
                    else ""
                )
            ]
        text.append("")
    text += [
        "![accuracy vs latency](pareto.png)",
        "",
        "![latency vs sequence length](latency.png)",
        "",
    ]
    if best:
        text += [model_card(best, manifests, rule), ""]
    else:
        text += [f"No artifact meets the rule: {rule.describe()}.", ""]
    atomic_write_text(paths["README.md"], "\n".join(text))
    return {
        "recommended": best["artifact"] if best else None,
        "recommended_path": best.get("path") if best else None,
        "reason": best["reason"] if best else None,
        "results": str(paths["results.json"]),
        "readme": str(paths["README.md"]),
        "pareto": str(paths["pareto.png"]),
        "latency": str(paths["latency.png"]),
        "pareto_points": points,
        "latency_series": series,
    }


def load_results(path: Path | str) -> list[dict[str, Any]]:
    """Read and validate a results.json."""
    rows = json.loads(Path(path).read_text())
    validate_results(rows)
    return rows
