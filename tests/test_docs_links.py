"""Every relative link in README.md and docs/*.md resolves to a file; the front page and the docs pages link each other.

Links inside fenced code blocks and inline code are not links; web links (``http(s)://``, ``mailto:``) and in-page
anchors (``#...``) are not checked. A link's ``#fragment`` is dropped before the file is looked up.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = REPO / "docs"

_FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[(?:[^\]\n]|\][^(\n])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|#)")  # http:, https:, mailto:, ... or an in-page anchor


def markdown_pages() -> list[Path]:
    """README.md and every docs/*.md page."""
    return [README, *sorted(DOCS.glob("*.md"))]


def relative_links(text: str) -> list[str]:
    """The targets of the relative Markdown links and images in ``text``, outside code."""
    text = _FENCE.sub("", text)
    text = _INLINE_CODE.sub("", text)
    return [target for target in _LINK.findall(text) if not _EXTERNAL.match(target)]


def broken_links(page: Path) -> list[str]:
    """``"page: target"`` for every relative link of ``page`` whose file does not exist."""
    broken = []
    for target in relative_links(page.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0]
        if not (page.parent / path).exists():
            broken.append(f"{page.name}: {target}")
    return broken


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_checker_reports_a_broken_link(tmp_path):
    (tmp_path / "there.md").write_text("# there\n")
    page = tmp_path / "page.md"
    page.write_text(
        "See [there](there.md#a-section), [gone](missing/page.md), ![img](no.png), [web](https://example.org), "
        "[anchor](#top) and `[code](not-a-link.md)`.\n\n```\n[fenced](also-not-a-link.md)\n```\n"
    )
    assert broken_links(page) == ["page.md: missing/page.md", "page.md: no.png"]


def test_front_page_links_every_docs_page():
    linked = {(README.parent / t.split("#", 1)[0]).resolve() for t in relative_links(README.read_text("utf-8"))}
    missing = [p.name for p in DOCS.glob("*.md") if p.resolve() not in linked]
    assert missing == [], f"README.md does not link these docs pages: {missing}"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_docs_page_has_title_and_links_back(page):
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# "), f"{page.name}: the first line should be its '# ' title"
    targets = {(page.parent / t.split("#", 1)[0]).resolve() for t in relative_links(text)}
    assert README.resolve() in targets, f"{page.name}: no link back to README.md"
