"""The bundle outside Python: Node (predict.mjs on onnxruntime-node), a real browser (index.html
on onnxruntime-web's WebAssembly build, in headless Chromium) and ONNX Runtime Mobile (model.ort).

Each is checked, not assumed: on the same rows, predict.mjs and the page must give predict.py's
answers (the same keys in the same order, the same label on every row, probabilities within
TOLERANCE), and model.ort, run by onnxruntime through predict.py itself, the same. The bundle
stage runs every check it can and writes the numbers into the model card;
`distillery bundle --verify DIR --runtime node|browser|ort` repeats one. Without Node, npm or
Chromium a check is skipped with the command that installs them, never failed; npm packages go
to a cache outside the bundle (~/.cache/distillery/node/<hash of package.json and its lock>).
Finding Node/npm/Chromium and the npm cache: node.py; Chromium's run: browser.py; the .ort:
mobile.py; latency: latency.py; the model card's section: edge_card.py (all in pipelines/bundle/).
"""

from __future__ import annotations

import json
import shutil
import statistics
from importlib import resources
from pathlib import Path
from typing import Any

from pipelines.bundle.agreement import (  # noqa: F401  (TOLERANCE: re-exported for the tests)
    INT8_OPS,
    TOLERANCE,
    compare,
    flips_note,
    tolerance_for,
)
from pipelines.bundle.node import (
    RuntimeSkipped,
    find_tools,
    node_modules,
    run_node,
    staged,
    tool_version,
)
from pipelines.bundle.verify import BundleError, settings_name

RUNTIMES = ("node", "browser", "ort")  # what --runtime accepts; "python" is predict.py itself
JS_FILES = ("classifier.mjs", "predict.mjs", "index.html", "package.json", "package-lock.json")
JS_TASK_TYPES = ("single_label", "multi_label", "regression")  # classifier.mjs's TASK_TYPES


class RuntimeUnsupported(BundleError):
    """The runtime cannot run this bundle's artifact or task type; the message says why."""


def unsupported(config: dict[str, Any], runtime: str) -> str | None:
    """Why `runtime` cannot run this bundle's artifact, or None when it can."""
    if config.get("engine", "onnxruntime") != "onnxruntime":
        return (
            "an OpenVINO IR (model.xml) runs only in OpenVINO; Node, browsers and ORT Mobile run "
            "ONNX: bundle an ONNX artifact (--artifact student-onnx-O2 or an int8 one)"
        )
    kind = config.get("task_type", "single_label")
    if runtime in ("node", "browser") and kind not in JS_TASK_TYPES:
        return (
            f"task_type {kind}: tags are read per word (predict.py's Encoding.word_ids), which "
            "the JavaScript tokenizer (@huggingface/tokenizers) does not expose; use predict.py"
        )
    return None


def js_source(name: str) -> str:
    return (resources.files("pipelines.bundle") / "files" / name).read_text()


def write_js_files(out: Path) -> None:
    """predict.mjs, classifier.mjs, index.html, package.json and its lock into the bundle."""
    for name in JS_FILES:
        (out / name).write_text(js_source(name))


def check_runtime(
    bundle: Path,
    runtime: str,
    rows_path: Path,
    expected: list[dict[str, Any]],
    *,
    batch_size: int,
    order: str = "input",
    timing: dict[str, Any] | None = None,
    path: str | None = None,
) -> dict[str, Any]:
    """The rows at `rows_path` through `runtime`, compared with predict.py's answers `expected`
    (same batch size and order); with `timing` ({"sample": rows file, "cold_start_runs",
    "repeats", "threads"}) also its cold start and steady-state latency. RuntimeUnsupported,
    RuntimeSkipped (nothing to run it with) or BundleError (it disagrees)."""
    config = json.loads((bundle / settings_name(bundle)).read_text())
    why = unsupported(config, runtime)
    if why:
        raise RuntimeUnsupported(f"{runtime}: {why}")
    if runtime == "ort":
        return _check_ort(bundle, rows_path, expected, batch_size, order, timing)
    tools = find_tools(runtime, path)
    modules = node_modules(bundle, tools["npm"])
    with staged(bundle, modules) as copy:
        if runtime == "node":
            return _check_node(copy, tools["node"], rows_path, expected, batch_size, order, timing)
        return _check_browser(
            copy, tools["chromium"], rows_path, expected, batch_size, order, timing
        )


def _check_node(copy, node, rows_path, expected, batch_size, order, timing) -> dict[str, Any]:
    from pipelines.bundle.latency import measure_cold_start, measure_steady_state

    args = ["--input", str(rows_path), "--order", order, "--batch-size", str(batch_size)]
    result = compare(expected, run_node(copy, node, args), "node")
    if timing:
        runner = [node, str(copy / "predict.mjs")]
        first = timing["sample"].read_text().splitlines()[0]
        threads, runs = timing["threads"], timing["cold_start_runs"]
        result["cold_start"] = measure_cold_start(copy, first, runs, threads, runner)
        result["steady_state"] = measure_steady_state(
            copy, timing["sample"], timing["repeats"], threads, runner
        )
    return result | {"version": tool_version(node)}


def _check_browser(copy, chromium, rows_path, expected, batch_size, order, timing) -> dict:
    """The page predicts the rows (and, with timing, benchmarks the sample); further fresh
    launches time its cold start alone."""
    from pipelines.bundle.browser import run_page

    shutil.copy2(rows_path, copy / "__rows.jsonl")
    query = {"check": "__rows.jsonl", "batch": str(batch_size), "order": order}
    runs = []
    if timing:
        shutil.copy2(timing["sample"], copy / "__sample.jsonl")
        query |= {"bench": "__sample.jsonl", "repeats": str(timing["repeats"])}
    report = run_page(copy, chromium, query)
    tolerance = tolerance_for("browser", copy / "model.onnx")
    result = compare(expected, report["answers"], "browser", tolerance)
    if timing:
        runs = [report] + [
            run_page(copy, chromium, {}) for _ in range(timing["cold_start_runs"] - 1)
        ]
        result["cold_start"] = {
            key.replace("_ms", "_s"): statistics.median(r["cold"][key] / 1000 for r in runs)
            for key in ("ready_ms", "first_prediction_ms", "cold_start_ms")
        } | {
            "launch_to_report_s": statistics.median(r["launch_to_report_s"] for r in runs),
            "runs": len(runs),
        }
        result["steady_state"] = report["benchmark"]
        result["page_bytes"] = report.get("served_bytes")
    return result | {"version": tool_version(chromium)}


def _check_ort(bundle, rows_path, expected, batch_size, order, timing) -> dict[str, Any]:
    from pipelines.bundle.latency import measure_cold_start, measure_steady_state
    from pipelines.bundle.mobile import ORT_FILES, ort_as_model
    from pipelines.bundle.verify import run_predict

    if not (bundle / ORT_FILES[0]).is_file():
        raise BundleError(
            f"{bundle}: no {ORT_FILES[0]} (a bundle built before ORT Mobile support); rebuild "
            "it with `distillery bundle RECIPE --force`."
        )
    with ort_as_model(bundle) as copy:
        got = run_predict(copy, rows_path, order=order, batch_size=batch_size)
        result = compare(expected, got, "ort")
        if timing:
            first = timing["sample"].read_text().splitlines()[0]
            threads, runs = timing["threads"], timing["cold_start_runs"]
            result["cold_start"] = measure_cold_start(copy, first, runs, threads)
            result["steady_state"] = measure_steady_state(
                copy, timing["sample"], timing["repeats"], threads
            )
    return result


def check_runtimes(
    bundle: Path,
    runtimes: list[str],
    rows_path: Path,
    expected: list[dict[str, Any]],
    *,
    batch_size: int,
    order: str = "input",
    timing: dict[str, Any] | None = None,
    echo=print,
    strict: bool = True,
) -> dict[str, dict[str, Any]]:
    """{runtime: its result, or {"skipped": why} / {"unsupported": why}}, echoing each line.
    strict (--verify --runtime X, asked for by name): an unsupported runtime is an error."""
    results = {}
    for runtime in runtimes:
        try:
            results[runtime] = check_runtime(
                bundle,
                runtime,
                rows_path,
                expected,
                batch_size=batch_size,
                order=order,
                timing=timing,
            )
        except RuntimeSkipped as skip:
            echo(f"{bundle}: SKIP {runtime}: {skip}")
            results[runtime] = {"skipped": str(skip)}
            continue
        except RuntimeUnsupported as why:
            if strict:
                raise
            results[runtime] = {"unsupported": str(why).split(": ", 1)[1]}
            continue
        r = results[runtime]
        echo(
            f"{bundle}: {runtime}: same predictions as predict.py on {r['rows']} rows "
            f"(argmax agreement {r['agreement']:.1%}: labels{flips_note(r) or ' agree'}, max |probability "
            f"difference| {r['max_abs_diff']:.2g} <= {r['tolerance']:g})"
        )
    return results


def write_edge_files(out: Path, config: dict[str, Any]) -> dict[str, Any]:
    """The bundle stage's part: the JavaScript runner, page and package files in every bundle
    (they refuse an artifact they cannot run, saying why); model.ort and its operator config
    for ONNX ones. Returns what the card reports: the .ort build and the graph's int8 ops."""
    from modelkit.onnx_graph import op_counts
    from pipelines.bundle.mobile import build_ort

    write_js_files(out)
    if unsupported(config, "ort"):
        return {}
    ops = op_counts(out / "model.onnx")
    return {"ort": build_ort(out), "int8_ops": {k: v for k, v in ops.items() if k in INT8_OPS}}


def check_all(
    out: Path, rows_path: Path, batch_size: int, timing: dict[str, Any], echo
) -> dict[str, dict[str, Any]]:
    """Every runtime on the bundle's eval rows against predict.py (input order, the recorded
    batch size), with latency: the bundle stage's check. Unsupported or unavailable runtimes
    are recorded with the reason; a disagreement raises BundleError."""
    from pipelines.bundle.verify import run_predict

    expected = run_predict(out, rows_path, order="input", batch_size=batch_size)
    return check_runtimes(
        out,
        list(RUNTIMES),
        rows_path,
        expected,
        batch_size=batch_size,
        timing=timing,
        echo=echo,
        strict=False,
    )


def verify_also(folder: Path, runtimes: list[str], echo=print):
    """`verify_bundle(..., also=...)` for `--verify DIR --runtime X`: the rows verify reads, in
    each runtime, held to predict.py's answers with the bundle's recorded batching."""
    reference = json.loads((Path(folder) / "reference.json").read_text())

    def also(rows_path: Path, expected: list[dict[str, Any]]) -> None:
        check_runtimes(
            Path(folder),
            runtimes,
            rows_path,
            expected,
            batch_size=reference["batch_size"],
            order=reference["order"],
            echo=echo,
        )

    return also
