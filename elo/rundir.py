"""Run-directory I/O that a kill cannot corrupt.

* :func:`atomic_write_bytes` / ``_text`` / ``_json``: write a temp file in the same
  folder, fsync, then ``os.replace``; a reader sees the old file or the new one.
* :func:`append_jsonl`: one ``write`` of one complete line, flushed and fsynced; a
  line torn by a kill is ignored (and reported) by :func:`read_jsonl`.
* :func:`seed_everything`: one seed for python, numpy and torch.
* :class:`DirLock`: one writer per folder (an advisory ``flock`` on ``<folder>/.lock``,
  released by the kernel when the holder dies, so a killed run never leaves it stale).
* A disk that refuses a write (full, read-only, no permission) raises
  :class:`~elo.errors.DiskError` naming the path; the temp file is removed, the old
  file is untouched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from elo.errors import DiskError, LockedError

log = logging.getLogger(__name__)


#: errno values of a disk that refuses a write
DISK_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
)


@contextlib.contextmanager
def disk_errors(where: str | Path) -> Iterator[None]:
    """Turn a refused write (disk full, read-only, no permission) into one line naming
    the path: :class:`~elo.errors.DiskError`, which the CLI prints with exit code 2."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        target = exc.filename or where
        raise DiskError(
            f"{target}: cannot write ({exc.strerror}); free space or choose another folder"
        ) from None


def temp_prefix(path: Path) -> str:
    """Temp files carry the writer's pid, so clean-up removes only those of dead
    processes: ``.<name>.<pid>.<random>.tmp``."""
    return f".{path.name}.{os.getpid()}."


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> Path:
    """Write ``data`` to a temp file next to ``path``, then rename it over ``path``.
    ``fsync=False`` skips the flush to disk (a rebuildable cache: elo/data/cache.py)."""
    path = Path(path)
    with disk_errors(path):
        return _atomic_write_bytes(path, data, fsync=fsync)


def _atomic_write_bytes(path: Path, data: bytes, *, fsync: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Append one JSON record as one line, durable when this returns."""
    path = Path(path)
    with disk_errors(path):
        _append_jsonl(path, record)


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(record, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        # A previous kill may have left a torn last line: start ours on a fresh line.
        if os.fstat(fd).st_size > 0:
            with open(path, "rb") as fh:
                fh.seek(-1, os.SEEK_END)
                if fh.read(1) != b"\n":
                    line = b"\n" + line
        written = os.write(fd, line)
        if written != len(line):  # a full disk mid-line: cut the torn tail off again
            os.ftruncate(fd, os.fstat(fd).st_size - written)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """The complete records of a JSON-lines file; torn or blank lines are skipped."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as fh:
        for n, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:
                log.warning("%s:%d: skipping a torn or invalid line", path, n)
                continue
            if isinstance(rec, dict):
                yield rec


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's global generators."""
    random.seed(seed)
    import numpy as np

    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.manual_seed(seed)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DirLock:
    """One writer per folder: an exclusive advisory lock on ``<folder>/.lock``.

    ``wait=False``: a second writer gets :class:`~elo.errors.LockedError` at once (one
    line naming the folder and the holder, exit code 2); ``wait=True``: it logs who
    holds the folder and blocks until it is free. The kernel drops the lock when the
    holder exits or is killed, so there is no stale lock to remove by hand.

    >>> with DirLock(run_dir, "elo-search"):   # doctest: +SKIP
    ...     ...
    """

    FILE = ".lock"

    def __init__(self, folder: str | Path, owner: str, *, wait: bool = False) -> None:
        self.folder, self.owner, self.wait = Path(folder), owner, wait
        self.fd: int | None = None

    def acquire(self) -> DirLock:
        import fcntl

        path = self.folder / self.FILE
        with disk_errors(path):
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            if not self.wait:
                os.close(fd)
                raise LockedError(
                    f"{self.folder} is in use by {holder}; wait for it to finish or stop it, "
                    "or choose another folder"
                ) from None
            log.warning("%s: waiting for %s to finish with it", self.folder, holder)
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{self.owner} (pid {os.getpid()})\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        import fcntl

        fd, self.fd = self.fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> DirLock:
        return self.acquire() if self.fd is None else self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()
