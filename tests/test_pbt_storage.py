"""Ray Tune's storage of a population-based search (search/pbt_storage.py): a file is
either the old one or the new one, whole, even when the writing process is killed
with SIGKILL in the middle of a copy (as ``kill -9`` of ``elo-search`` during Tune's
experiment snapshot); the plain local file system leaves a truncated file there."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
from pathlib import Path

import pytest

pyarrow_fs = pytest.importorskip("pyarrow.fs")

from elo.search.pbt_storage import atomic_storage  # noqa: E402

OLD = {"trials": ["a", "b"], "step": 4}

#: writes half of a new state file through FS, then kills its own process
KILLED_MID_WRITE = """
import os, signal, sys
import pyarrow.fs
from elo.search.pbt_storage import atomic_storage
fs = atomic_storage() if sys.argv[2] == "atomic" else pyarrow.fs.LocalFileSystem()
out = fs.open_output_stream(sys.argv[1])
out.write(b'{"trials": ["a", "b", "c"], "step": 6, "pad": "' + b"x" * 300000)
out.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def _killed_mid_write(path: Path, fs: str) -> None:
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(path), fs], check=False)
    assert proc.returncode == -signal.SIGKILL


def test_a_write_killed_midway_leaves_the_old_file_whole(tmp_path: Path) -> None:
    state = tmp_path / "experiment_state-1.json"
    state.write_text(json.dumps(OLD))
    _killed_mid_write(state, "atomic")
    assert json.loads(state.read_text()) == OLD
    new = tmp_path / "search_gen_state-1.pkl"  # a file that did not exist yet
    _killed_mid_write(new, "atomic")
    assert not new.exists()
    # what the plain local file system (Ray Tune's default) leaves behind
    _killed_mid_write(state, "plain")
    with pytest.raises(json.JSONDecodeError):
        json.loads(state.read_text())


def test_copies_and_uploads_write_whole_files_and_leave_no_temp_files(tmp_path: Path) -> None:
    src = tmp_path / "staging"
    (src / "checkpoint_000001").mkdir(parents=True)
    (src / "experiment_state-1.json").write_text(json.dumps(OLD))
    (src / "checkpoint_000001" / "member.pt").write_bytes(bytes(range(256)) * 4000)
    dest = tmp_path / "run" / "ray" / "pbt"
    fs = pickle.loads(pickle.dumps(atomic_storage()))  # as Ray ships it to its workers
    fs.create_dir(str(dest))
    pyarrow_fs.copy_files(str(src), str(dest), destination_filesystem=fs)
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*"))
    assert got == ["checkpoint_000001", "checkpoint_000001/member.pt", "experiment_state-1.json"]
    assert (dest / "checkpoint_000001" / "member.pt").read_bytes() == bytes(range(256)) * 4000
    fs.copy_file(str(dest / "experiment_state-1.json"), str(dest / "copy.json"))
    assert json.loads((dest / "copy.json").read_text()) == OLD
    with fs.open_input_stream(str(dest / "copy.json")) as fh:
        assert json.loads(fh.read()) == OLD
    assert not list(dest.rglob("*.tmp"))


def test_a_partial_copy_of_a_state_file_never_replaces_the_last_whole_one(tmp_path: Path) -> None:
    """Tune's copy thread may read a state file while its next snapshot rewrites it
    (empty or cut short); such a copy keeps the last whole file, any other file is
    written as given."""
    fs = atomic_storage()
    new_state = {**OLD, "step": 6}
    cases = [
        ("experiment_state-1.json", json.dumps(OLD).encode(), json.dumps(new_state).encode()),
        ("basic-variant-state-1.json", pickle.dumps(OLD, protocol=5), pickle.dumps(new_state)),
    ]
    for name, data, newer in cases:
        path = tmp_path / name
        path.write_bytes(data)
        for partial in (b"", data[: len(data) // 2], data[:-1]):
            with fs.open_output_stream(str(path)) as out:
                out.write(partial)
            assert path.read_bytes() == data, (name, partial)
        with fs.open_output_stream(str(path)) as out:
            out.write(newer)
        assert path.read_bytes() == newer != data
    log = tmp_path / "result.json"  # JSON lines, not one document: written as given
    with fs.open_output_stream(str(log)) as out:
        out.write(b'{"step": 2}\n{"st')
    assert log.read_bytes() == b'{"step": 2}\n{"st'
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
