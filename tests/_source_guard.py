"""No test writes into the source tree: an autouse guard for the whole suite.

tests/conftest.py imports :func:`source_tree_guard`, so it wraps every test. Two views
of one rule, both reported as the test's error, naming the paths:

* **this process**: an audit hook (:func:`sys.addaudithook`) records every file opened
  for writing, created, renamed, removed or linked inside the repository while a test
  runs, even a file written and removed again;
* **other processes and native code** (a console script a test starts, Ray workers,
  libraries writing through C or Rust such as safetensors): the repository's files
  (path, size, modification time) are compared before and after the test.

Left out: what the tools write for themselves (``.git``, ``.pytest_cache``,
``__pycache__``, ``.mypy_cache``, ``.ruff_cache``); top-level folders git ignores that
exist before the tests start (a ``.venv``, demo data, runs) are checked by the audit
hook only, not walked. ``ELO_GUARD_ROOT`` points the guard
at another folder; tests/test_source_guard.py uses it to check that the guard fails a
test that writes there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = os.path.realpath(os.environ.get("ELO_GUARD_ROOT") or Path(__file__).resolve().parents[1])
#: folders the tools write for themselves
TOOL_DIRS = frozenset({".git", ".pytest_cache", "__pycache__", ".mypy_cache", ".ruff_cache"})
#: audit events that change the file system -> positions of their path arguments
_EVENTS = {
    "open": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.symlink": (1,),
    "os.link": (1,),
    "os.truncate": (0,),
    "shutil.rmtree": (0,),
}
#: positions of the ``dir_fd`` argument that a relative path of these events is
#: relative to (shutil.rmtree removes a tree by names relative to directory descriptors)
_DIR_FDS = {
    "os.mkdir": {0: 2},
    "os.rename": {0: 2, 1: 3},
    "os.remove": {0: 1},
    "os.rmdir": {0: 1},
    "os.symlink": {1: 2},
    "os.link": {0: 2, 1: 3},
}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

#: paths written inside ROOT since the current test started (the audit hook's record)
_seen: list[str] = []


def writes_inside(event: str, args: tuple[Any, ...], root: str = ROOT) -> list[str]:
    """The paths under ``root`` that audit ``event`` with ``args`` writes (or [])."""
    if event not in _EVENTS:
        return []
    if event == "open":
        mode, flags = args[1], args[2]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and bool(flags & _WRITE_FLAGS)
        )
        if not writing:
            return []
    out = []
    for i in _EVENTS[event]:
        path = args[i] if i < len(args) else None
        if isinstance(path, str | bytes | os.PathLike):
            full = _absolute(os.fsdecode(path), _dir_fd(event, args, i))
            inside = full.startswith(root + os.sep) and not (
                TOOL_DIRS & set(full[len(root) + 1 :].split(os.sep))
            )
            if inside:
                out.append(full)
    return out


def _dir_fd(event: str, args: tuple[Any, ...], i: int) -> int | None:
    j = _DIR_FDS.get(event, {}).get(i)
    fd = args[j] if j is not None and j < len(args) else None
    return fd if isinstance(fd, int) and fd >= 0 else None


def _absolute(path: str, dir_fd: int | None) -> str:
    """``path`` made absolute: against the directory ``dir_fd`` names when it is
    given (/proc/self/fd), else against the working directory."""
    if dir_fd is not None and not os.path.isabs(path):
        try:
            return os.path.normpath(os.path.join(os.readlink(f"/proc/self/fd/{dir_fd}"), path))
        except OSError:
            return path  # the directory is unknown: not counted as inside
    return os.path.abspath(path)


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if event in _EVENTS:
        _seen.extend(writes_inside(event, args))


def _unwalked(root: str) -> frozenset[str]:
    """Top-level folders present before the tests that git ignores or that hold a
    virtual environment (a venv, demo data, runs): listed, not walked (the audit hook
    still sees this process's writes there)."""
    import subprocess

    try:
        tops = [e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False)]
    except OSError:
        return frozenset()
    skip = {n for n in tops if os.path.exists(os.path.join(root, n, "pyvenv.cfg"))}
    try:
        proc = subprocess.run(
            ["git", "-C", root, "check-ignore", *tops], capture_output=True, text=True, timeout=30
        )
        skip |= {ln.strip().rstrip("/") for ln in proc.stdout.splitlines() if ln.strip()}
    except (OSError, subprocess.SubprocessError):
        pass
    return frozenset(os.path.join(root, n) for n in skip - TOOL_DIRS)


UNWALKED = _unwalked(ROOT)


def tree(root: str = ROOT, unwalked: frozenset[str] = UNWALKED) -> dict[str, tuple[int, int]]:
    """``{path: (mtime_ns, size)}`` of the files and folders under ``root`` (links not
    followed; a folder's entry is ``(0, 0)``), the tools' own folders and ``unwalked``
    left out of the walk."""
    out: dict[str, tuple[int, int]] = {}
    todo = [root]
    while todo:
        folder = todo.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            if e.name in TOOL_DIRS:
                continue
            if e.is_dir(follow_symlinks=False):
                out[e.path] = (0, 0)
                if e.path not in unwalked:
                    todo.append(e.path)
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            out[e.path] = (st.st_mtime_ns, st.st_size)
    return out


def changes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    """Files created, removed or changed between two :func:`tree` readings."""
    return sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))


sys.addaudithook(_hook)


@pytest.fixture(autouse=True)
def source_tree_guard() -> Iterator[None]:
    """Fail the test that wrote into the repository (module docstring)."""
    before = tree()
    _seen.clear()
    yield
    written = sorted(set(_seen)) + [p for p in changes(before, tree()) if p not in _seen]
    _seen.clear()
    if written:
        shown = ", ".join(os.path.relpath(p, ROOT) for p in written[:5])
        more = f" and {len(written) - 5} more" if len(written) > 5 else ""
        pytest.fail(
            f"the test wrote inside the source tree {ROOT}: {shown}{more}; write under "
            "tmp_path instead",
            pytrace=False,
        )
