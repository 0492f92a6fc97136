"""README, docs and comments describe the code as it is; history lives in git. No issue
numbers, no "this session", no "an earlier version" in README.md, docs/ (docs/results.md,
the dated measurement log, may name an earlier run but no issue), the packages, the
benchmarks and the tests."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HISTORY = re.compile(r"\bissues?[ -]?#?\d+|\bthis session\b|\ban earlier version\b", re.I)
FOLDERS = ("elo", "tasks", "modalities", "search", "baselines", "configs", "benchmarks", "tests")


def _texts() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    for folder in FOLDERS:
        for p in sorted((ROOT / folder).rglob("*")):
            if p.suffix in (".py", ".yaml", ".md", ".sh") and "__pycache__" not in p.parts:
                if folder == "elo" and p.relative_to(ROOT / "elo").parts[0] in FOLDERS:
                    continue  # a link to a folder read on its own
                files.append(p)
    return [p for p in files if p != Path(__file__).resolve()]


def test_the_pattern_finds_what_it_should() -> None:
    found = ["(issue 18)", "Issue 13 found", "issue-13 measurements", "issues 22"]
    for text in [*found, "in this session", "An earlier version of this README"]:
        assert HISTORY.search(text), text
    for text in ("an issue with the cache", "an earlier run wrote", "reissue 3"):
        assert not HISTORY.search(text), text


def test_no_history_in_readme_docs_or_comments() -> None:
    found = []
    for p in _texts():
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if HISTORY.search(line):
                found.append(f"{p.relative_to(ROOT)}:{n}: {line.strip()[:80]}")
    assert not found, "\n".join(found)


def test_readme_is_a_short_page_whose_links_resolve() -> None:
    """README.md: at most 250 lines, links the measured results, and every relative link
    names a file or folder of the repository."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert "docs/results.md" in local and "docs/usage.md" in local
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, missing
