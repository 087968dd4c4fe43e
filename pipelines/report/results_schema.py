"""results.json: the schema every benchmark row satisfies, checked before a report is written.

`validate_results(rows)` raises ValueError naming the row (index and artifact) and the field;
`load_results(path)` reads and validates. Backends, precisions and devices come from the bench
registries, so a new backend is a new enum value here without another edit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipelines.bench.artifacts import DEVICES, PRECISIONS, ROLES
from pipelines.bench.backends import BACKENDS

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
            "role": {"type": "string", "enum": list(ROLES)},
            "noisy": {"type": "string"},
            "rounds": {"type": ["integer", "null"], "minimum": 1},
            "round_p50_ms": {"type": "array"},
            "round_drift": {"type": "array"},
            "round_spread": {"type": NULLABLE_NUMBER, "minimum": 1},
            "precision_hint": {"type": "string"},
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


def load_results(path: Path | str) -> list[dict[str, Any]]:
    """Read and validate a results.json."""
    rows = json.loads(Path(path).read_text())
    validate_results(rows)
    return rows
