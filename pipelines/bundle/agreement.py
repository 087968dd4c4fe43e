"""Whether another runtime gives predict.py's answers: the same keys, label(s) and tags on every
row, every probability (or regression value) within a tolerance; the tolerance per runtime and
graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.bundle.verify import BundleError

INT8_OPS = ("DynamicQuantizeLinear", "MatMulInteger", "QuantizeLinear", "DequantizeLinear")
TOLERANCE = 1e-4  # abs, on every probability (and regression value) against predict.py's
# The browser on an int8 graph: onnxruntime-web's WebAssembly int8 kernels (DynamicQuantizeLinear,
# MatMulInteger, QuantizeLinear) are not the x86 ones predict.py and Node run, and their rounding
# differs; the differences compound over the layers. On the SST-2 student (3 layers × 384, 872
# rows) every label agreed, but |Δprobability| reached 0.092 (p99 0.009, median 3e-6) on the ORT
# dynamic int8 graph and 0.105 on one row of the static QDQ graph. So: every label (but the
# near-ties below), and probabilities within 0.25 (a wrong softmax, label order or tokenization is
# far outside it); fp32 graphs and Node stay at TOLERANCE.
BROWSER_INT8_TOLERANCE = 0.25
# Under that tolerance a near-tie may change sides: on the SST-2 MiniLM teacher's dynamic int8
# graph (6 layers; once bundled by recipes/sst2-minilm-cnn.yaml) 6 of 872 browser labels differed,
# each on a row predict.py scored under 0.56, the browser's probability of predict.py's label
# within 0.09 of predict.py's. Such a flip passes when the tolerance explains it (the browser's
# probability of predict.py's label within the tolerance of predict.py's) and is counted; more
# than MAX_LABEL_FLIPS of the rows is a runtime that computes something else. Under TOLERANCE
# (fp32 graphs, Node) no label may differ.
MAX_LABEL_FLIPS = 0.02


def tolerance_for(runtime: str, model: Path) -> float:
    """How far `runtime`'s probabilities may be from predict.py's on `model` (an ONNX file)."""
    from modelkit.onnx_graph import op_counts

    if runtime == "browser" and any(op in INT8_OPS for op in op_counts(model)):
        return BROWSER_INT8_TOLERANCE
    return TOLERANCE


def compare(
    expected: list[dict], got: list[dict], runtime: str, tolerance: float = TOLERANCE
) -> dict[str, Any]:
    """predict.py's answers against another runtime's, row by row; BundleError on any
    difference of keys, label(s), or a probability/value off by more than `tolerance`."""
    if len(got) != len(expected):
        raise BundleError(f"{runtime}: {len(got)} answers for {len(expected)} rows")
    bad, flips, worst = [], [], 0.0
    for i, (a, b) in enumerate(zip(expected, got, strict=True)):
        if tolerance > TOLERANCE and _near_tie(a, b, tolerance):
            flips.append(i)
            worst = max(worst, abs(a["score"] - b["probabilities"][a["label"]]))
            continue
        if "score" in a and "probabilities" not in a:  # the page always adds every label's
            b = {k: v for k, v in b.items() if k != "probabilities"}
        pa, pb = a.get("probabilities", {}), b.get("probabilities", {})
        floats = [k for k in ("value", "score") if k in a]  # regression; single-label's top
        numbers = [(pa[k], pb.get(k)) for k in pa] + [(a[k], b.get(k)) for k in floats]
        diffs = [abs(x - y) if isinstance(y, int | float) else float("inf") for x, y in numbers]
        worst = max([worst, *diffs])
        # everything but the floats exactly: line, label(s), tags and entities, key order
        exact = [
            {k: v for k, v in r.items() if k not in ("probabilities", "value", "score")}
            for r in (a, b)
        ]
        same = list(a) == list(b) and list(pa) == list(pb) and exact[0] == exact[1]
        if not same or (diffs and max(diffs) > tolerance):
            bad.append(i)
    if len(flips) > MAX_LABEL_FLIPS * len(expected):
        bad = flips + bad
    if bad:
        i = bad[0]
        raise BundleError(
            f"{runtime} disagrees with predict.py on {len(bad)} of {len(expected)} rows (first: "
            f"row {i}: predict.py {json.dumps(expected[i])}, {runtime} {json.dumps(got[i])}; "
            f"probabilities must agree within {tolerance:g}). Its runner or runtime does not "
            "compute what predict.py does: the bundle's JavaScript or .ort is not usable as built."
        )
    return {
        "rows": len(expected),
        "agreement": 1.0 - len(flips) / max(len(expected), 1),
        "label_flips": len(flips),
        "max_abs_diff": worst,
        "tolerance": tolerance,
    }


def flips_note(result: dict[str, Any]) -> str:
    """ " agree but for N near-ties (within the tolerance)" for a result with label flips, else
    "": it follows "labels" in the card and the echo."""
    n = result.get("label_flips", 0)
    return f" agree but for {n} near-tie{'s' * (n != 1)} (within the tolerance)" if n else ""


def _near_tie(a: dict, b: dict, tolerance: float) -> bool:
    """A single-label row whose label differs and whose probabilities the tolerance covers: the
    other runtime's probability of predict.py's label within `tolerance` of predict.py's score,
    every other key the same."""
    pb = b.get("probabilities") or {}
    if "score" not in a or a.get("label") == b.get("label") or a.get("label") not in pb:
        return False
    rest = [
        {k: v for k, v in r.items() if k not in ("label", "score", "probabilities")} for r in (a, b)
    ]
    return rest[0] == rest[1] and abs(a["score"] - pb[a["label"]]) <= tolerance
