"""Atomic writes, kill-safe JSON lines, seeding."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from elo.rundir import (
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
    seed_everything,
)


def test_atomic_write_replaces(tmp_path: Path) -> None:
    p = tmp_path / "sub" / "f.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert [q.name for q in p.parent.iterdir()] == ["f.json"]


def test_interrupted_write_leaves_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "state.json"
    atomic_write_text(p, "old")

    def boom(fd: int) -> None:
        raise KeyboardInterrupt  # interrupted after part of the data is written

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(p, "new" * 1000)
    assert p.read_text() == "old"
    assert [q.name for q in tmp_path.iterdir()] == ["state.json"]


def test_kill_minus_9_mid_write_leaves_previous_file(tmp_path: Path) -> None:
    p = tmp_path / "state.txt"
    atomic_write_text(p, "old")
    child = textwrap_script(p)
    proc = subprocess.Popen([sys.executable, "-c", child])
    deadline = time.time() + 30
    while time.time() < deadline and not any(q.name.endswith(".tmp") for q in tmp_path.iterdir()):
        time.sleep(0.02)
    assert any(q.name.endswith(".tmp") for q in tmp_path.iterdir()), "child never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert p.read_text() == "old"


def textwrap_script(p: Path) -> str:
    return (
        "import os, time\n"
        "from elo import rundir\n"
        "os.fsync = lambda fd: time.sleep(60)\n"
        f"rundir.atomic_write_text({str(p)!r}, 'new' * 100000)\n"
    )


def test_jsonl_survives_torn_line(tmp_path: Path) -> None:
    p = tmp_path / "trials.jsonl"
    append_jsonl(p, {"i": 1})
    with open(p, "ab") as fh:
        fh.write(b'{"i": 2, "fitn')  # a kill mid-line
    append_jsonl(p, {"i": 3})
    assert [r["i"] for r in read_jsonl(p)] == [1, 3]


def test_jsonl_rejects_nan(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        append_jsonl(tmp_path / "x.jsonl", {"f": float("nan")})


def test_seed_everything_reproduces() -> None:
    seed_everything(7)
    a = (np.random.rand(3), torch.rand(3))
    seed_everything(7)
    b = (np.random.rand(3), torch.rand(3))
    assert np.array_equal(a[0], b[0]) and torch.equal(a[1], b[1])
