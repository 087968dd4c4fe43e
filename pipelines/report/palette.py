"""Artifact families and their colours, for the plots: one colour and marker per kind of
artifact (the teacher, fp32 PyTorch, fp32 ONNX, int8 by runtime, the peer path), the same in
every plot.

    family_of({"artifact": "student-int8-static", "backend": "onnxruntime", "precision": "int8"})
    # Family(label='int8 ONNX Runtime', colour='tab:orange', marker='D')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Family:
    label: str
    colour: str
    marker: str


FAMILIES = {
    "teacher": Family("teacher fp32 (PyTorch)", "black", "*"),
    "pytorch": Family("fp32 PyTorch", "tab:blue", "o"),
    "onnx": Family("fp32 ONNX Runtime", "tab:cyan", "s"),
    "ort-int8": Family("int8 ONNX Runtime", "tab:orange", "D"),
    "openvino": Family("int8 OpenVINO", "tab:green", "^"),
    "inc": Family("int8 Neural Compressor", "tab:purple", "v"),
    "peer": Family("int8 peer path (optimum-cli)", "tab:red", "X"),
}
SPARE = [("tab:brown", "P"), ("tab:pink", "h"), ("tab:olive", "p"), ("tab:gray", "8")]


def family_of(row: dict[str, Any]) -> Family:
    """The artifact's family; a backend or precision no family names gets its own (a spare
    colour chosen from its name, so it is the same in both plots)."""
    backend, precision = row.get("backend"), row.get("precision")
    if row.get("role") == "baseline":
        return FAMILIES["peer"]
    if row["artifact"] == "teacher":
        return FAMILIES["teacher"]
    key = {
        ("torch", "fp32"): "pytorch",
        ("onnxruntime", "fp32"): "onnx",
        ("onnxruntime", "int8"): "ort-int8",
        ("openvino", "int8"): "openvino",
        ("inc", "int8"): "inc",
    }.get((backend, precision))
    if key:
        return FAMILIES[key]
    colour, marker = SPARE[sum(map(ord, f"{backend}{precision}")) % len(SPARE)]
    return Family(f"{precision} {backend}", colour, marker)


def hollow(row: dict[str, Any]) -> bool:
    """The teacher's derived artifacts (ONNX, int8) are drawn hollow, the students' filled."""
    return row["artifact"].startswith("teacher") and row["artifact"] != "teacher"
