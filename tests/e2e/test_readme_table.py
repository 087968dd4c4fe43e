"""The families × task types table (docs/tasks.md, moved there from the README): every cell that
names a test names one the suite collects (so a renamed or dropped test cannot leave a claim
behind)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_table_cell_names_a_collected_test():
    text = (ROOT / "docs" / "tasks.md").read_text()
    blocks = text.split("## Families × task types", 1)[1].split("\n\n")
    table = next(block for block in blocks if block.startswith("| family"))
    cells = re.findall(r"`(test_\w+\.py)\[([\w-]+)\]`", table)
    assert len(cells) >= 18, table  # 7 families; every task type has at least one cell
    files = sorted({f for f, _ in cells})  # named by file name: tests/<tier>/<file>
    paths = [str(p.relative_to(ROOT)) for f in files for p in (ROOT / "tests").rglob(f)]
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    ids = set(re.findall(r"tests/(?:\w+/)*(test_\w+\.py)::\w+\[([\w-]+)\]", collected))
    missing = [f"{f}[{p}]" for f, p in cells if (f, p) not in ids]
    assert not missing, f"docs/tasks.md cells with no such test: {missing}"
    header = table.splitlines()[0]
    for task in ("single-label", "sentence pairs", "multi-label", "regression", "token"):
        assert task in header
