"""Full disks and concurrent extraction (docs/reliability.md): a refused write is
one line naming the path with exit code 2 and leaves nothing half-written; a second
``elo-extract`` on one cache waits for the first instead of deleting its files."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from _media import moving_square, tone, write_video
from _scripts import python_c

from elo.errors import DiskError
from elo.rundir import DirLock, append_jsonl, read_jsonl

EXTRACT = "import sys; from elo.cli import extract_main; sys.exit(extract_main(sys.argv[1:]))"


def _videos(root: Path, n: int = 2) -> Path:
    for i in range(n):
        write_video(root / f"v{i}.mp4", moving_square(16, 32, 32, seed=i), 8.0, tone(2.0))
    return root


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes beyond: EFBIG


def test_append_to_a_full_disk_is_one_line(tmp_path: Path) -> None:
    log = tmp_path / "evaluations.jsonl"
    log.symlink_to("/dev/full")  # every write: ENOSPC
    with pytest.raises(DiskError) as err:
        append_jsonl(log, {"a": 1})
    assert "\n" not in str(err.value) and "No space left on device" in str(err.value)
    assert str(log) in str(err.value)


def test_atomic_write_past_the_size_limit_leaves_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text('{"old": true}\n')
    code = (
        "import resource, sys; from elo.rundir import atomic_write_bytes; "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
        "atomic_write_bytes(sys.argv[1], b'x' * 100000)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(target)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0 and "DiskError" in proc.stderr
    assert "File too large" in proc.stderr.strip().splitlines()[-1]
    assert target.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]  # no temp left


def test_extract_on_a_full_disk_exits_2_with_one_line(tmp_path: Path) -> None:
    """Cache arrays larger than the file-size limit (as on a full disk): one line,
    exit 2, no temp files and no array without its committed flags file."""
    videos, cache = _videos(tmp_path / "videos"), tmp_path / "cache"
    args = [str(videos), "--cache", str(cache), "--workers", "0", "--no-progress"]
    args += ["--modalities", "rgb", "data.clip.size=32"]
    proc = subprocess.run(
        [sys.executable, "-c", EXTRACT, *args],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: _limit_file_size(20000),
    )
    assert proc.returncode == 2, proc.stderr[-3000:]
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("elo-extract: error: "), proc.stderr[-3000:]
    assert "cannot write" in err[0] and "File too large" in err[0] and str(cache) in err[0]
    assert not list(cache.rglob("*.tmp"))
    for flags in cache.rglob("rgb-*.json"):  # committed entries are whole
        assert np.load(flags.with_suffix(".npy")).shape[0] >= 1
    # with room again, the same command finishes the cache
    proc = subprocess.run(
        [sys.executable, "-c", EXTRACT, *args], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(list(cache.rglob("rgb-*.npy"))) == 2


def _blocked_on_a_lock(pid: int) -> bool:
    """Whether ``pid`` waits for a file lock: a ``->`` (blocked) line of /proc/locks."""
    for ln in Path("/proc/locks").read_text().splitlines():
        f = ln.split()
        if "->" in f and f[f.index("->") + 4 : f.index("->") + 5] == [str(pid)]:
            return True
    return False


def test_second_extract_waits_for_the_cache_lock(tmp_path: Path) -> None:
    if not Path("/proc/locks").exists():
        pytest.skip("needs Linux /proc/locks")
    videos, cache = _videos(tmp_path / "videos"), tmp_path / "cache"
    err_file = tmp_path / "stderr.txt"
    args = [str(videos), "--cache", str(cache), "--workers", "0", "--no-progress"]
    args += ["--modalities", "rgb", "data.clip.size=32"]
    with DirLock(cache, "another elo-extract"), open(err_file, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", EXTRACT, *args],
            stderr=err,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        # the event: the kernel lists the second process's lock request as blocked
        # ("->" in /proc/locks); from then on it cannot write until the lock is free
        deadline = time.monotonic() + 60
        while not _blocked_on_a_lock(proc.pid) and time.monotonic() < deadline:
            assert proc.poll() is None, err_file.read_text()
            time.sleep(0.05)
        assert _blocked_on_a_lock(proc.pid), "the second elo-extract never waited for the lock"
        assert "waiting for another elo-extract" in err_file.read_text()
        assert proc.poll() is None and not list(cache.rglob("clips.json"))  # nothing written
    assert proc.wait(timeout=120) == 0, err_file.read_text()
    assert len(list(cache.rglob("clips.json"))) == 2
    summaries = [r for r in read_jsonl(cache / "extract_report.jsonl") if r["kind"] == "summary"]
    assert summaries[-1]["ok"] == 2


@pytest.mark.parametrize("command", ["extract", "train", "search"])
def test_a_folder_the_os_refuses_is_one_line_with_exit_2(tmp_path: Path, command: str) -> None:
    """Permission errors. Tests run as root, which file modes do not
    stop; sysfs refuses a new folder to root too (EPERM), so it stands in for a folder
    the user may not write."""
    if not Path("/sys/kernel").is_dir():
        pytest.skip("needs Linux sysfs")
    target = f"/sys/elo-test-{os.getpid()}"
    if command == "extract":
        code, args = EXTRACT, ["--cache", target, "--no-progress"]
    elif command == "train":
        code = python_c("train")
        args = ["--steps", "1", "--out", target, "objective.modalities=[rgb]"]
    else:
        code = python_c("search")
        args = ["--fitness", "synthetic", "--population", "2", "--generations", "1"]
        args += ["--out", target]
    videos = _videos(tmp_path / "videos", 1)
    args = ["--data", str(videos), *args] if command != "extract" else [str(videos), *args]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr[-800:]
    assert "Traceback" not in proc.stderr and target in err[-1]
    assert "not permitted" in err[-1] or "not writable" in err[-1]
    assert not Path(target).exists()
