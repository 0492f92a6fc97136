"""README, docs and code comments describe the code as it is; its history lives in git.

The prose a reader meets (README.md, docs/*.md, and every docstring, comment and other
string literal of the Python files under elo/, its linked sub-packages, benchmarks/ and
tests/) never cites an issue number and never says "this session" or "an earlier
version". docs/results.md is a dated measurement log: it may say "this session" or
"an earlier version", but cites no issue number either.
"""

from __future__ import annotations

import io
import os
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: "issue 13", "Issue #14", "issues 13 and 18", "issue-13" (a URL's ``issues/123`` is not)
ISSUE = re.compile(r"\bissues?[ \t#-]*\d+", re.IGNORECASE)
#: wording that tells history instead of the code as it is
HISTORY = re.compile(r"\bthis session\b|\ban earlier version\b", re.IGNORECASE)
PROSE_TOKENS = {tokenize.COMMENT, tokenize.STRING}
PROSE_TOKENS |= {getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}  # Python >= 3.12


def _hits(text: str, first_line: int, patterns: list[re.Pattern[str]]) -> Iterator[int]:
    """Line numbers (counting from ``first_line``) of every match in ``text``."""
    for pattern in patterns:
        for m in pattern.finditer(text):
            yield first_line + text.count("\n", 0, m.start())


def markdown_offences(path: Path, patterns: list[re.Pattern[str]]) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [
        f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{n}: {lines[n - 1]}"
        for n in sorted(set(_hits("\n".join(lines), 1, patterns)))
    ]


def python_offences(path: Path, patterns: list[re.Pattern[str]]) -> list[str]:
    """Matches in the comments and string literals (docstrings, help texts) of ``path``."""
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    found: set[int] = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in PROSE_TOKENS:
            found.update(_hits(tok.string, tok.start[0], patterns))
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    return [f"{shown}:{n}: {lines[n - 1].strip()}" for n in sorted(found)]


def python_files(*folders: str) -> list[Path]:
    """Every ``.py`` file under ``folders``, following the symlinked sub-packages of elo/."""
    files: set[Path] = set()
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(ROOT / folder, followlinks=True):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            files.update(Path(dirpath, f).resolve() for f in filenames if f.endswith(".py"))
    return sorted(files)


def test_readme_and_docs_cite_no_issue_and_tell_no_history() -> None:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert len(docs) > 5, docs  # README plus the docs pages were found
    bad: list[str] = []
    for path in docs:
        patterns = [ISSUE] if path.name == "results.md" else [ISSUE, HISTORY]
        bad += markdown_offences(path, patterns)
    assert not bad, "history or issue numbers in the docs:\n" + "\n".join(bad)


def test_docstrings_and_comments_cite_no_issue_and_tell_no_history() -> None:
    files = python_files("elo", "benchmarks", "tests")
    names = {p.relative_to(ROOT).parts[0] for p in files}
    assert {"elo", "tasks", "search", "modalities", "baselines", "benchmarks"} <= names
    this = Path(__file__).resolve()
    bad = [hit for p in files if p != this for hit in python_offences(p, [ISSUE, HISTORY])]
    assert not bad, "history or issue numbers in docstrings / comments:\n" + "\n".join(bad)


def test_the_scan_reports_each_offending_line(tmp_path: Path) -> None:
    """The scan itself: every wording it forbids is reported with its file and line,
    in a comment, a docstring and a help string; names in code are not prose."""
    py = tmp_path / "m.py"
    py.write_text(
        '"""Scoring.\n\nMeasured for Issue #18 on two cores."""\n'
        "issue_13 = 1  # fine: a name, and this comment is clean\n"
        "x = 2  # as in an earlier version\n"
        "HELP = 'resume this session'\n"
        "URL = 'https://github.com/ray-project/ray/issues/123'\n",
        encoding="utf-8",
    )
    found = python_offences(py, [ISSUE, HISTORY])
    assert [line.split(":")[1] for line in found] == ["3", "5", "6"], found
    assert found[0].startswith(f"{py}:3: Measured for Issue #18"), found
    md = tmp_path / "page.md"
    md.write_text("# Title (issue 22)\n\nclean\nissues 13 and 18 in this session\n")
    assert [line.split(":")[1] for line in markdown_offences(md, [ISSUE, HISTORY])] == [
        "1",
        "4",
    ]
    assert [line.split(":")[1] for line in markdown_offences(md, [ISSUE])] == ["1", "4"]
    md.write_text("measured in this session; an earlier version of the run\n")
    assert markdown_offences(md, [ISSUE]) == []
    assert len(markdown_offences(md, [ISSUE, HISTORY])) == 1


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
