"""The README stays short and every document it, or a page under docs/, links exists in the repository."""

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


def test_every_linked_document_exists():
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    missing = [f"{page.relative_to(REPO)} -> {target}" for page in pages for target in _local_links(page)
               if not (page.parent / target).exists()]
    assert not missing
    assert {"docs/operations.md", "docs/metrics.md", "docs/method.md", "docs/factor_quality.md"} <= set(_local_links(REPO / "README.md"))
