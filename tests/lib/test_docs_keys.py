"""docs/recipes.md's table of every recipe key is the code's own list (what `distillery keys`
prints), so a key added, renamed or given a new default cannot leave the page behind.

Rewrite the table after changing a key: `python tests/lib/test_docs_keys.py`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "recipes.md"
START = "<!-- keys: generated from the code by tests/lib/test_docs_keys.py; do not edit by hand -->"
END = "<!-- keys: end -->"


def _cell(text: str) -> str:
    """Table-safe: a pipe would split the cell, and `<name>` would read as an HTML tag."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _default(value: object) -> str:
    if value == "(required)":
        return "required"
    try:  # YAML spelling: null, true, [1, 8, 32]; JSON is YAML
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    except TypeError:
        return f"`{value}`"


def render() -> str:
    """The markdown table of every recipe key: path, type, default, meaning."""
    from pipelines.core.config import Recipe
    from pipelines.core.schema import key_paths

    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, kind, default, help_text in key_paths(Recipe):
        lines.append(
            f"| `{path}` | {_cell(kind)} | {_cell(_default(default))} | {_cell(help_text)} |"
        )
    return "\n".join(lines)


def _split(text: str) -> tuple[str, str, str]:
    before, rest = text.split(START, 1)
    table, after = rest.split(END, 1)
    return before, table.strip("\n"), after


def test_the_key_table_is_what_the_code_lists():
    _, table, _ = _split(PAGE.read_text())
    assert table == render(), (
        "docs/recipes.md's key table differs from the recipe schema; "
        "rewrite it with: python tests/lib/test_docs_keys.py"
    )


def test_every_key_the_cli_lists_has_a_row():
    """The table and `distillery keys` name the same keys, in the same order."""
    import subprocess

    listed = subprocess.run(
        [sys.executable, "-m", "pipelines", "keys"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    cli_keys = [line.split()[0] for line in listed.splitlines() if line.strip()]
    _, table, _ = _split(PAGE.read_text())
    doc_keys = [row.split("`")[1] for row in table.splitlines()[2:]]
    assert doc_keys == cli_keys
    assert len(doc_keys) > 100  # the whole schema, not a section of it


if __name__ == "__main__":
    before, _, after = _split(PAGE.read_text())
    PAGE.write_text(f"{before}{START}\n{render()}\n{END}{after}")
    print(f"rewrote the key table in {PAGE.relative_to(ROOT)}")
