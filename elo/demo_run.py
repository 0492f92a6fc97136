"""How elo/demo.py runs its steps: console commands as subprocesses with their own logs
and thread counts, rows ``--jobs`` at a time, the machine they ran on."""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: the thread-count variables torch (OpenMP, MKL) and numpy's BLAS read at start-up
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


TAIL_LINES = 12  # log lines a failed step reports


_print_lock = threading.Lock()


def _say(msg: str, *, err: bool = False) -> None:
    """One whole line to stdout (or stderr), never interleaved with another row's."""
    with _print_lock:
        print(msg, file=sys.stderr if err else sys.stdout, flush=True)


def _bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def machine() -> dict[str, Any]:
    """The CPU model, the usable cores and the load average now."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), ""
            )
    except OSError:
        pass
    return {
        "cpu": cpu or platform.processor() or platform.machine(),
        "cores": cores(),
        "load": load_average(),
    }


def row_env(threads: int) -> dict[str, str]:
    """The environment of a row's subprocesses: ``threads`` torch / BLAS threads.
    ``elo-train`` and ``elo-eval`` leave torch's thread count at its start-up value,
    which torch takes from ``OMP_NUM_THREADS``."""
    return {**os.environ, **{var: str(threads) for var in THREAD_VARS}}


class StepFailed(Exception):
    """A step's command exited non-zero: the command, its exit code, its log and the
    log's last lines."""

    def __init__(self, cmd: Sequence[str], rc: int, log: Path) -> None:
        self.cmd, self.rc, self.log = list(cmd), rc, log
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        self.tail = lines[-TAIL_LINES:]
        super().__init__(
            f"exit {rc}: {shlex.join(self.cmd)}\n  log: {log}\n"
            + "\n".join(f"  | {ln}" for ln in self.tail)
        )


def _run(
    cmd: list[str], log: Path, *, env: Mapping[str, str] | None = None, echo: bool = True
) -> None:
    """Run ``cmd`` with its output appended to ``log``; raises :class:`StepFailed`."""
    if echo:
        _say(f"$ {shlex.join(cmd)}")
    t0 = time.time()
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as fh:
        fh.write(f"$ {shlex.join(cmd)}\n")
        fh.flush()
        rc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode
    if echo:
        _say(f"  ... {time.time() - t0:.0f} s (log: {log})")
    if rc != 0:
        raise StepFailed(cmd, rc, log)


def run_parallel(
    tasks: Sequence[tuple[str, Callable[[], dict[str, Any]]]],
    jobs: int,
    on_done: Callable[[str, dict[str, Any] | None, BaseException | None], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, Exception]]:
    """Run the ``(key, task)`` pairs ``jobs`` at a time, started in the given order.
    Returns the results and the failures by key; a failure does not stop the others
    (their results are reused by a rerun). ``on_done(key, result, error)`` runs in this
    thread as each one finishes."""
    from concurrent.futures import ThreadPoolExecutor, as_completed

    results: dict[str, dict[str, Any]] = {}
    failures: dict[str, Exception] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="demo-row") as pool:
        futures = {pool.submit(task): key for key, task in tasks}
        for fut in as_completed(futures):
            key = futures[fut]
            try:
                results[key] = fut.result()
            except Exception as exc:  # reported with its row
                failures[key] = exc
            if on_done is not None:
                on_done(key, results.get(key), failures.get(key))
    return results, failures


def _first_line(err: BaseException | None) -> str:
    if isinstance(err, StepFailed):
        return f"exit {err.rc}, log {err.log}"
    return f"{type(err).__name__}: {err}".splitlines()[0]
