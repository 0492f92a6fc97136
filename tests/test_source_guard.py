"""The suite's guard against writes into the source tree (tests/_source_guard.py): what
counts as a write, and a child pytest in which the guard fails the tests that write into
its root, in the test's own process (written and removed again) or from a process the
test starts, and passes the one that does not."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _source_guard import TOOL_DIRS, changes, tree, writes_inside

TESTS = Path(__file__).resolve().parent

PROBE = """
import os, subprocess, sys

ROOT = os.environ["ELO_GUARD_ROOT"]


def test_writes_and_removes_in_process():
    path = os.path.join(ROOT, "in_process.txt")
    with open(path, "w") as fh:
        fh.write("x")
    os.remove(path)


def test_a_child_process_writes():
    code = f"open({os.path.join(ROOT, 'child.txt')!r}, 'w').write('x')"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reads_only():
    assert "kept.txt" in os.listdir(ROOT)
    assert open(os.path.join(ROOT, "kept.txt")).read() == "source"
"""


def test_what_counts_as_a_write(tmp_path: Path) -> None:
    root = str(tmp_path)
    inside = os.path.join(root, "a.py")
    assert writes_inside("open", (inside, "w", 0), root) == [inside]
    assert writes_inside("open", (inside, "rb+", 0), root) == [inside]
    assert writes_inside("open", (inside, None, os.O_WRONLY | os.O_CREAT), root) == [inside]
    assert writes_inside("open", (inside, "r", 0), root) == []
    assert writes_inside("open", (inside, None, os.O_RDONLY), root) == []
    assert writes_inside("open", ("/elsewhere/a.py", "w", 0), root) == []
    assert writes_inside("os.rename", ("/elsewhere/x", inside, None, None), root) == [inside]
    assert writes_inside("os.remove", (inside, None), root) == [inside]
    assert writes_inside("os.mkdir", (os.path.join(root, "new"), 0o777, None), root)
    for tool in TOOL_DIRS:
        assert writes_inside("open", (os.path.join(root, tool, "f"), "w", 0), root) == []
    assert writes_inside("import", ("os", None, None, None, None), root) == []
    # a name relative to a directory descriptor (shutil.rmtree) is a path in that
    # directory, not in the working directory
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    outside.mkdir()
    fd = os.open(outside, os.O_RDONLY)
    try:
        here = os.getcwd()
        os.chdir(root)
        try:
            assert writes_inside("os.remove", ("f.txt", fd), root) == []
            assert writes_inside("os.rmdir", ("sub", fd), root) == []
            assert writes_inside("os.remove", ("f.txt", None), root) == [
                os.path.join(root, "f.txt")
            ]
        finally:
            os.chdir(here)
    finally:
        os.close(fd)
    inner = os.open(root, os.O_RDONLY)
    try:
        assert writes_inside("os.rmdir", ("sub", inner), root) == [os.path.join(root, "sub")]
    finally:
        os.close(inner)

    (tmp_path / "kept.txt").write_text("source")
    before = tree(root, frozenset())
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / "f.bin").write_bytes(b"1")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "x.pyc").write_bytes(b"2")
    after = tree(root, frozenset())
    assert changes(before, after) == [str(tmp_path / p) for p in ("new", "new/f.bin")]


def test_the_guard_fails_the_tests_that_write(tmp_path: Path) -> None:
    root = tmp_path / "source"
    root.mkdir()
    (root / "kept.txt").write_text("source")
    probe = tmp_path / "probe" / "test_probe.py"
    probe.parent.mkdir()
    probe.write_text(PROBE)
    env = {**os.environ, "ELO_GUARD_ROOT": str(root), "PYTHONPATH": str(TESTS), "COLUMNS": "400"}
    args = ["-q", "-p", "_source_guard", "-p", "no:cacheprovider", "-rE", str(probe)]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", *args],
        cwd=probe.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout
    assert proc.returncode == 1, out[-3000:]
    # a test whose teardown fails counts as passed and as an error
    assert "3 passed, 2 errors" in out, out[-3000:]
    errors = [ln for ln in out.splitlines() if ln.startswith("ERROR ")]
    assert len(errors) == 2, out[-3000:]
    in_process = next(ln for ln in errors if "in_process" in ln)
    assert "wrote inside the source tree" in in_process and "in_process.txt" in in_process
    child = next(ln for ln in errors if "child_process" in ln)
    assert "child.txt" in child
    (root / "child.txt").unlink()
