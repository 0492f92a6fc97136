"""Tests never write into the source tree (issue 14): the test files that drop task
modules run in a child process whose every file opened for writing is recorded by an
audit hook; none may lie inside the repository."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

GUARD = r"""
import json, os, sys
repo, out, args = sys.argv[1], sys.argv[2], sys.argv[3:]
writes = []

def hook(event, a):
    if event == "open" and isinstance(a[0], (str, bytes, os.PathLike)):
        mode, flags = a[1], a[2]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR)
        )
        if writing:
            path = os.path.abspath(os.fsdecode(a[0]))
            if path.startswith(repo + os.sep):
                writes.append(path)

sys.addaudithook(hook)
import pytest
rc = pytest.main(["-q", "-p", "no:cacheprovider", *args])
with open(out, "w") as fh:  # outside the repository
    json.dump({"rc": int(rc), "writes": writes}, fh)
"""


def test_task_drop_tests_leave_the_source_tree_alone(tmp_path: Path) -> None:
    out = tmp_path / "writes.json"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    tests = [
        "tests/test_registry.py::test_discovers_a_task_file_dropped_into_tasks",
        "tests/test_tutorial_task.py::test_dropped_task_joins_the_search_space",
    ]
    proc = subprocess.run(
        [sys.executable, "-c", GUARD, str(REPO), str(out), *tests],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["rc"] == 0, proc.stdout[-2000:]
    assert result["writes"] == []
