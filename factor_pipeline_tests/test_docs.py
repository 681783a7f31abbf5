"""The README stays short, no page names an issue number, and every document the README or a page under docs/ links exists."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def _local_links(page: Path) -> list[str]:
    return [target for target in LINK.findall(page.read_text()) if not re.match(r"[a-z]+:", target)]


def test_the_readme_is_at_most_200_lines_without_issue_numbers_or_commit_hashes():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    assert not re.search(r"\bissues? \d+|#\d+\b", text)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    assert not re.search(r"\b[0-9a-f]{7,40}\b", prose)


def test_no_document_names_an_issue_number():
    """Issue numbers mean nothing to a reader: docs say what changed and when, not which ticket asked for it."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    named = [f"{page.relative_to(REPO)}: {match.group(0)}" for page in pages
             for match in re.finditer(r"\b[Ii]ssues? \d+|#\d+\b", page.read_text())]
    assert not named


def test_every_linked_document_exists():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    missing = [f"{page.relative_to(REPO)} -> {target}" for page in pages for target in _local_links(page)
               if not (page.parent / target).exists()]
    assert not missing
    assert {"docs/operations.md", "docs/metrics.md", "docs/method.md", "docs/factor_quality.md"} <= set(_local_links(REPO / "README.md"))
