"""Ray Tune's storage for a population-based search (search/pbt.py) whose files appear
whole or not at all.

Ray Tune writes its experiment state (``experiment_state-*.json`` and the searcher's
``basic-variant-state-*.json``, a pickle) into a staging folder of the Ray session
and copies that folder into the run directory (``ray/pbt/``) from a background thread
with ``pyarrow.fs.copy_files``, which truncates each file and writes it in place; it
uploads each member's checkpoint the same way. Two things could leave a state file
unreadable there, and ``--resume`` (``Tuner.restore``) then failed to read the
experiment and started it anew (tests/test_pbt_e2e.py saw both):

* a ``kill -9`` of ``elo-search`` in the middle of a copy (a truncated file);
* a copy that read a staging file while Tune's next snapshot was rewriting it (the
  copy thread and the snapshot run concurrently): an empty or truncated copy.

:func:`atomic_storage` is the local file system with every file written to a temp
file next to it and renamed over it when complete (as elo/rundir.py writes the run
log), and a state file replaced only by a whole document (a JSON value, a pickle up to
its STOP opcode), so a restore always finds the last whole snapshot.
"""

from __future__ import annotations

import json
import os
import pickletools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.fs

from elo.rundir import temp_prefix


def _whole_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _whole_pickle(data: bytes) -> bool:
    """Whether ``data`` is one pickle, read up to its STOP opcode and no further
    (checked without unpickling anything)."""
    try:
        ops = list(pickletools.genops(data))
    except Exception:  # truncated: "pickle exhausted before seeing STOP"
        return False
    return bool(ops) and ops[-1][0].name == "STOP" and ops[-1][2] == len(data) - 1


#: Ray Tune's experiment state files (name prefix) and what a whole one is
STATE_FILES = {"experiment_state-": _whole_json, "basic-variant-state-": _whole_pickle}


def whole(name: str, data: bytes) -> bool:
    """Whether ``data`` may replace the file ``name``: any data for most files; a whole
    document for Ray Tune's experiment state files (:data:`STATE_FILES`)."""
    for prefix, check in STATE_FILES.items():
        if name.startswith(prefix):
            return check(data)
    return True


class _AtomicFile:
    """A binary file written to a temp file next to ``path`` and renamed over ``path``
    when closed after a complete write of a :func:`whole` document (otherwise ``path``
    stays as it was)."""

    def __init__(self, path: str) -> None:
        self.path = path
        parent = os.path.dirname(path) or "."
        fd, self.tmp = tempfile.mkstemp(dir=parent, prefix=temp_prefix(Path(path)), suffix=".tmp")
        self.fh = os.fdopen(fd, "wb")
        self.ok = True

    @property
    def closed(self) -> bool:
        return self.fh.closed

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        try:
            return self.fh.write(data)
        except BaseException:
            self.ok = False
            raise

    def flush(self) -> None:
        self.fh.flush()

    def tell(self) -> int:
        return self.fh.tell()

    def close(self) -> None:
        if self.fh.closed:
            return
        try:
            if self.ok:
                self.fh.flush()
                os.fsync(self.fh.fileno())
        except BaseException:
            self.ok = False
            raise
        finally:
            self.fh.close()
            if self.ok and not whole(os.path.basename(self.path), Path(self.tmp).read_bytes()):
                self.ok = False  # a copy of a state file Tune was rewriting: keep the last
            if self.ok:
                os.replace(self.tmp, self.path)
            else:
                os.unlink(self.tmp)


class AtomicLocalHandler(pyarrow.fs.FileSystemHandler):  # type: ignore[misc]
    """``pyarrow.fs.LocalFileSystem`` with atomic writes (``pyarrow.fs.PyFileSystem``
    handler); picklable, so Ray's trial workers upload checkpoints through it too."""

    def __init__(self) -> None:
        self.fs = pyarrow.fs.LocalFileSystem()

    def __reduce__(self) -> tuple[Any, ...]:
        return (AtomicLocalHandler, ())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AtomicLocalHandler)

    def __hash__(self) -> int:
        return hash(AtomicLocalHandler)

    def get_type_name(self) -> str:
        return "elo-atomic-local"

    def normalize_path(self, path: str) -> str:
        return str(self.fs.normalize_path(path))

    def get_file_info(self, paths: list[str]) -> Any:
        return self.fs.get_file_info(paths)

    def get_file_info_selector(self, selector: Any) -> Any:
        return self.fs.get_file_info(selector)

    def create_dir(self, path: str, recursive: bool) -> None:
        self.fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path: str) -> None:
        self.fs.delete_dir(path)

    def delete_dir_contents(self, path: str, missing_dir_ok: bool = False) -> None:
        self.fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self) -> None:
        raise OSError("refusing to delete the contents of the root directory")

    def delete_file(self, path: str) -> None:
        self.fs.delete_file(path)

    def move(self, src: str, dest: str) -> None:
        self.fs.move(src, dest)

    def copy_file(self, src: str, dest: str) -> None:
        out = _AtomicFile(dest)
        try:
            with open(src, "rb") as fh:
                shutil.copyfileobj(fh, out)
        except BaseException:
            out.ok = False
            raise
        finally:
            out.close()

    def open_input_stream(self, path: str) -> Any:
        return self.fs.open_input_stream(path)

    def open_input_file(self, path: str) -> Any:
        return self.fs.open_input_file(path)

    def open_output_stream(self, path: str, metadata: Any) -> Any:
        import pyarrow

        return pyarrow.PythonFile(_AtomicFile(path), mode="w")

    def open_append_stream(self, path: str, metadata: Any) -> Any:
        return self.fs.open_append_stream(path)


def atomic_storage() -> Any:
    """The ``storage_filesystem`` of a population-based search's Tuner (new or
    restored): local files, each written whole or not at all."""
    return pyarrow.fs.PyFileSystem(AtomicLocalHandler())
