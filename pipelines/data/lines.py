"""Where each row of a text data file starts, and the first row a reader would choke on.

`datasets` reads CSV and JSON lines with arrow's readers, which report neither the line of a
malformed row nor the physical line of a row (a quoted field may hold newlines, so row 150 can
start on line 200). The messages promise "the file and line", so these read the file again with
the standard library: `row_lines` for every row's first line, `first_bad_row` after the reader
failed, to name the line and what is wrong with it; `first_non_utf8` for a file that is not
UTF-8.
"""

from __future__ import annotations

import csv
import json
from array import array
from pathlib import Path

DIALECTS = {"csv": {}, "tsv": {"delimiter": "\t", "quoting": csv.QUOTE_NONE}}


def row_lines(path: Path, ext: str) -> array:
    """The 1-based line on which each data row starts (the header and blank lines skipped, as
    the readers skip them); an array of ints, 4 bytes a row."""
    starts = array("I")
    with path.open(encoding="utf-8", newline="") as handle:
        if ext == "jsonl":
            starts.extend(n for n, line in enumerate(handle, 1) if line.strip())
            return starts
        reader = csv.reader(handle, **DIALECTS[ext])
        next(reader, None)  # the header
        previous = reader.line_num
        for row in reader:
            if row:
                starts.append(previous + 1)
            previous = reader.line_num
    return starts


def first_bad_row(path: Path, ext: str, split: str) -> str | None:
    """'<file>: line N ...' for the first row that is not valid JSON, has a number of fields
    other than the header's, or 'no rows' for a split with a header alone; None if none found."""
    with path.open(encoding="utf-8", newline="") as handle:
        if ext == "jsonl":
            rows = 0
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    value = json.loads(line)
                except json.JSONDecodeError as exc:
                    return f"{path}: line {number} is not valid JSON ({exc.msg}); fix or remove it."
                if not isinstance(value, dict):
                    return f"{path}: line {number} is not a JSON object; each line holds one row."
                rows += 1
            return _no_rows(path, split) if rows == 0 else None
        if ext not in DIALECTS:
            return None
        reader = csv.reader(handle, **DIALECTS[ext])
        header = next(reader, None)
        if header is None:
            return _no_rows(path, split)
        rows, previous = 0, reader.line_num
        for row in reader:
            if row and len(row) != len(header):
                return (
                    f"{path}: line {previous + 1} has {len(row)} fields, the header has "
                    f"{len(header)}; quote fields that hold the delimiter."
                )
            rows += bool(row)
            previous = reader.line_num
        return _no_rows(path, split) if rows == 0 else None


def _no_rows(path: Path, split: str) -> str:
    return (
        f"split '{split}' ({path}) has no rows. Fill it, or name another split in "
        "data.train_split / data.eval_split."
    )


def first_non_utf8(path: Path) -> str:
    with path.open("rb") as handle:
        for number, line in enumerate(handle, 1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number} is not UTF-8 (byte 0x{line[exc.start]:02x} at column {exc.start + 1})"
    return "not UTF-8"
