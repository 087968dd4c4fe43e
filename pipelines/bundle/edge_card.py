"""The model card's section on the runtimes beyond predict.py: Node, the browser, ORT Mobile.

What each runs, what it was checked to answer (pipelines/bundle/runtimes.py) and how fast, and
how to run it. Written by the bundle stage beside the rest of the card (card.py).
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from pipelines.bundle.agreement import BROWSER_INT8_TOLERANCE, TOLERANCE, flips_note
from pipelines.bundle.node import INSTALL

NAMES = {
    "node": "Node (`predict.mjs`, onnxruntime-node)",
    "browser": "browser (`index.html`, onnxruntime-web WebAssembly, 1 thread)",
    "ort": "ORT Mobile (`model.ort`, run here by onnxruntime)",
}


def js_versions() -> dict[str, str]:
    package = json.loads(
        (resources.files("pipelines.bundle") / "files" / "package.json").read_text()
    )
    return package["dependencies"]


def _row(runtime: str, r: dict[str, Any]) -> str:
    if "skipped" in r:
        return f"| {NAMES[runtime]} | not checked here: {r['skipped']} | | | |"
    if "unsupported" in r:
        return f"| {NAMES[runtime]} | cannot run this bundle: {r['unsupported']} | | | |"
    check = (
        f"{r['rows']} rows, "
        + ("same labels" if not r.get("label_flips") else f"labels{flips_note(r)}")
        + f", max abs. probability difference {r['max_abs_diff']:.1g}"
    )
    cold, steady = r.get("cold_start", {}), r.get("steady_state", {})
    cold_s = cold.get("cold_start_s")
    what = f"{cold_s:.3f} s" if cold_s is not None else "?"
    if runtime == "browser" and cold_s is not None:
        what += f" (page load to first answer; browser launch to report {cold['launch_to_report_s']:.2f} s)"
    per = steady.get("per_sentence_p50_ms")
    single = steady.get("single_p50_ms")
    return f"| {NAMES[runtime]} | {check} | {what} | " + (
        f"{per:.3f} ms | {single:.3f} ms |" if per is not None else " | |"
    )


def edge_section(
    config: dict[str, Any], edge: dict[str, Any], measured: dict[str, Any]
) -> list[str]:
    """Markdown lines: the runtimes table, the int8 note, and how to run each."""
    results = measured.get("runtimes") or {}
    versions = js_versions()
    out = [
        "## Other runtimes: Node, browser, ORT Mobile",
        "",
        "Each is checked against `predict.py` on the eval rows when the bundle is built (and by "
        "`distillery bundle --verify DIR --runtime node|browser|ort`): the same label on every "
        f"row and every probability within {TOLERANCE:g} (the browser on an int8 graph: within "
        f"{BROWSER_INT8_TOLERANCE:g}, its WebAssembly int8 kernels round differently, and a "
        "near-tie that tolerance explains may change sides, counted below). Latency "
        "as for `predict.py` above "
        "(cold start: a fresh process or page to its first answer).",
        "",
        "Files: `predict.mjs` (Node runner), `classifier.mjs` (tokenizer, batching and answers, "
        "shared by Node and the page), `index.html` (the page), `package.json` and "
        "`package-lock.json` (exact npm versions)"
        + (
            ", `model.ort` and `model.required_operators.config` (ORT Mobile)."
            if "ort" in edge
            else "."
        ),
        "",
        "| runtime | checked | cold start | per sentence p50 | one sentence p50 |",
        "|---|---|---|---|---|",
    ]
    out += [_row(name, r) for name, r in results.items()]
    int8 = edge.get("int8_ops") or {}
    if int8:
        ops = ", ".join(f"{k} ×{v}" for k, v in int8.items())
        ok = results.get("browser", {}).get("rows")
        out += [
            "",
            f"int8 operators in `model.onnx`: {ops}. "
            + (
                "onnxruntime-web's WebAssembly build ran them above, to the same answers."
                if ok
                else "Whether onnxruntime-web's WebAssembly build runs them was not checked here."
            ),
        ]
    out += ["", "```bash", f"# Node 18+ and npm ({INSTALL.split('&& ')[-1]})"]
    out += [
        "npm ci --ignore-scripts              # "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        'echo "a sentence to classify" | node predict.mjs     # predict.py\'s options and output',
        "python3 -m http.server 8000 --bind 127.0.0.1        # then open "
        "http://127.0.0.1:8000/index.html",
        "```",
        "",
        "Node and the page answer single-label, multi-label and regression bundles of ONNX "
        "models; token classification needs per-word alignment that the JavaScript tokenizer "
        "lacks, and an OpenVINO IR runs only in OpenVINO: for those, `predict.mjs` and the page "
        "refuse with the reason, and `predict.py` is the way.",
    ]
    if "ort" in edge:
        out += ort_lines(config, edge["ort"])
    return out


def ort_lines(config: dict[str, Any], ort: dict[str, Any]) -> list[str]:
    version = ort["onnxruntime"]
    ops = "; ".join(f"{k}: {', '.join(v)}" for k, v in ort["operators"].items())
    return [
        "",
        "ONNX Runtime Mobile: `model.ort` is `model.onnx` in ORT format, optimised for ARM by "
        f"onnxruntime {version}'s converter (`python -m onnxruntime.tools."
        "convert_onnx_models_to_ort --optimization_style Fixed --target_platform arm`). Android: "
        f"`com.microsoft.onnxruntime:onnxruntime-android:{version}` (Maven); iOS/macOS: the "
        f"`onnxruntime-objc` (Objective-C/Swift) or `onnxruntime-c` pod, {version}. Those full "
        "packages hold every operator; a reduced-operator build "
        "(`build.sh --minimal_build --include_ops_by_config model.required_operators.config`) "
        f"must include this graph's operators: {ops}. The app tokenizes with `tokenizer.json` "
        f"as `predict.py` does (truncation to {config['max_length']} tokens, longest first; right "
        "padding with the true attention mask) and feeds "
        f"{', '.join(config.get('input_names', []))} as int64.",
    ]
