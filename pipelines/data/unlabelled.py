"""Unlabelled text for the distill stage (`distill.unlabelled`): rows with no label, which the
teacher labels and the student learns from (pipelines/distillation/augmented_set.py).

    rows = read_unlabelled(Path("reviews.txt"), ["text"])   # ["a text", "another", ...]

A source is one file or a folder of them (read in name order, not recursively):
- `.txt`: one text per line, blank lines skipped (single-text tasks only);
- `.jsonl`: one JSON object per line holding the task's text column(s);
- `.csv` / `.tsv`: a header row naming the task's text column(s).
Pairs (`task.text_columns` of two) come out as tuples. Every problem is one `DataError` naming
the key, the file, the line and the fix. Read with the standard library, not `datasets`: the
messages name lines (as pipelines/data/lines.py explains), and `distillery validate` reads it
without loading a backend.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

from pipelines.core.errors import DataError
from pipelines.core.user_files import kind_of
from pipelines.data.lines import DIALECTS, first_non_utf8

KEY = "distill.unlabelled"
SUFFIXES = (".txt", ".jsonl", ".csv", ".tsv")
Row = str | tuple[str, ...]


def unlabelled_files(path: Path) -> list[Path]:
    """The file, or the folder's files with a known suffix in name order; DataError otherwise."""
    kind = kind_of(path)
    if kind == "missing":
        raise DataError(f"{KEY} {path}: no such file or folder; check the path.")
    if kind == "folder":
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in SUFFIXES)
        if not files:
            raise DataError(
                f"{KEY} {path}: the folder holds no {', '.join(SUFFIXES)} file; put the "
                "unlabelled text in one (a .txt: one text per line)."
            )
        return files
    if kind != "file":
        raise DataError(f"{KEY} {path}: is a {kind}, not a file or folder; give a file.")
    if path.suffix not in SUFFIXES:
        raise DataError(
            f"{KEY} {path}: unsupported file type '{path.suffix}'. Allowed: "
            f"{', '.join(SUFFIXES)}, or a folder of them."
        )
    return [path]


def read_unlabelled(path: Path, columns: list[str]) -> list[Row]:
    """Every row of every file under `path`: strings, or tuples for sentence pairs."""
    rows: list[Row] = []
    for file in unlabelled_files(path):
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise DataError(f"{KEY} {file}: {first_non_utf8(file)}; save it as UTF-8.") from None
        read = _txt if file.suffix == ".txt" else _jsonl if file.suffix == ".jsonl" else _table
        found = [row for row in read(file, text, columns) if _has_text(row)]
        if not found:
            raise DataError(f"{KEY} {file}: no text in it; fill it or leave it out.")
        rows += found
    return rows


def unlabelled_digest(path: Path) -> str:
    """sha256 over the files' names and bytes: the distill stage's hash follows their content."""
    digest = hashlib.sha256()
    for file in unlabelled_files(path):
        digest.update(f"{file.name}\n".encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _has_text(row: Row) -> bool:
    return any(side.strip() for side in ((row,) if isinstance(row, str) else row))


def _txt(file: Path, text: str, columns: list[str]) -> list[Row]:
    if len(columns) != 1:
        raise DataError(
            f"{KEY} {file}: a .txt holds one text per line, and this task reads sentence pairs "
            f"({', '.join(columns)}); give a .jsonl or .csv with those columns."
        )
    return [line.strip() for line in text.splitlines() if line.strip()]


def _jsonl(file: Path, text: str, columns: list[str]) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{KEY} {file}: line {number} is not valid JSON ({exc.msg}); fix or remove it."
            ) from None
        if not isinstance(value, dict):
            raise DataError(f"{KEY} {file}: line {number} is not a JSON object ({{...}} a line).")
        rows.append(_row(file, number, value, columns, list(value)))
    return rows


def _table(file: Path, text: str, columns: list[str]) -> list[Row]:
    reader = csv.reader(text.splitlines(), **DIALECTS[file.suffix.lstrip(".")])
    header = next(reader, None) or []
    rows: list[Row] = []
    for row in reader:
        if not row:
            continue
        if len(row) != len(header):
            raise DataError(
                f"{KEY} {file}: line {reader.line_num} has {len(row)} fields, the header has "
                f"{len(header)}; quote fields that hold the delimiter."
            )
        rows.append(
            _row(file, reader.line_num, dict(zip(header, row, strict=True)), columns, header)
        )
    return rows


def _row(file: Path, line: int, value: dict, columns: list[str], found: list[str]) -> Row:
    missing = [c for c in columns if c not in value]
    if missing:
        raise DataError(
            f"{KEY} {file}: line {line} has no column {', '.join(map(repr, missing))} (it has "
            f"{', '.join(map(repr, found)) or 'none'}); the unlabelled rows need the task's text "
            f"column(s) {columns}: rename the column, or use a .txt with one text per line."
        )
    texts = [value[c] for c in columns]
    bad = [c for c, t in zip(columns, texts, strict=True) if not isinstance(t, str)]
    if bad:
        raise DataError(f"{KEY} {file}: line {line}: column {bad[0]!r} is not text.")
    return texts[0] if len(texts) == 1 else tuple(texts)
