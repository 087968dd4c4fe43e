"""The markdown pages (the repo root's and docs/) point at things that exist: every relative link
resolves to a file (and its #anchor to a heading of that file), and every test a page names as
`test_file.py::test_name` is defined in a test file of that name. A moved page or a renamed test
breaks here, not in front of a reader."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").glob("*.md")])
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")  # [text](target), images left out
NAMED_TEST = re.compile(r"`(test_\w+\.py)::(test_\w+)")


def _prose(text: str) -> str:
    """The page without fenced code blocks, where brackets are code, not links."""
    return re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", _prose(page.read_text()), flags=re.MULTILINE)
    return {_anchor(h) for h in headings}


def _broken(page: Path, root: Path = ROOT) -> list[str]:
    """Each relative link of `page` whose file, or whose #anchor in a markdown file, is missing."""
    broken = []
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check offline
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target} (no {dest.relative_to(root)})")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target} (no heading #{anchor} in {dest.relative_to(root)})")
    return broken


def test_the_pages_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "docs/recipes.md", "docs/reliability.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page):
    assert not _broken(page), f"{page.relative_to(ROOT)}: broken links {_broken(page)}"


def test_the_checker_catches_a_broken_link_and_anchor(tmp_path):
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# A heading, with punctuation\n")
    page.write_text(
        "[ok](there.md#a-heading-with-punctuation) [gone](missing.md) [bad](there.md#nope)\n"
        "```\n[code](not-a-link.md)\n```\n![img](https://example.com/x.png) [web](https://x.org)\n"
    )
    assert _broken(page, root=tmp_path) == [
        "missing.md (no missing.md)",
        "there.md#nope (no heading #nope in there.md)",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_named_test_exists(page):
    """`test_x.py::test_y` on a page names a test defined in a tests/**/test_x.py (any tier)."""
    missing = []
    for file, name in NAMED_TEST.findall(page.read_text()):
        sources = [p.read_text() for p in (ROOT / "tests").rglob(file)]
        if not any(re.search(rf"^\s*def {name}\(", s, flags=re.MULTILINE) for s in sources):
            missing.append(f"{file}::{name}")
    assert not missing, f"{page.relative_to(ROOT)} names tests that do not exist: {missing}"
