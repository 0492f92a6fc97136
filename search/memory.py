"""Resident memory of this process, for the per-trial memory report (Linux ``/proc``).

A search's trial workers are reused for many trials, so anything one trial leaves
behind accumulates until Ray's memory monitor kills the worker (docs/reliability.md, Memory).
:func:`reset_peak` + :func:`peak_mb` give the peak resident memory of one trial;
:func:`release` hands freed heap pages back to the operating system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from pathlib import Path

_STATUS = Path("/proc/self/status")

#: Environment of Ray's trial workers. Each trial runs in a new thread of a reused
#: worker; glibc gives new threads new heap arenas (up to 8 per core) whose freed pages
#: stay mapped, so a worker's memory grew with every trial. Two arenas keep it flat
#: (benchmarks/bench_memory.py). glibc reads it at process start: it must be set for
#: the worker processes, not in the trial.
WORKER_ENV = {"MALLOC_ARENA_MAX": "2"}


def worker_runtime_env() -> dict[str, dict[str, str]]:
    """Ray ``runtime_env`` giving trial workers :data:`WORKER_ENV` (cluster runs)."""
    return {"env_vars": dict(WORKER_ENV)}


def _status_kb(field: str) -> float:
    try:
        for line in _STATUS.read_text(encoding="ascii").splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return float("nan")


def rss_mb() -> float:
    """Current resident set size of this process in MiB (NaN off Linux)."""
    return _status_kb("VmRSS") / 1024.0


def peak_mb() -> float:
    """Peak resident set size since the last :func:`reset_peak` (or process start)."""
    return _status_kb("VmHWM") / 1024.0


def reset_peak() -> None:
    """Reset the kernel's peak-RSS counter (``clear_refs`` 5); a no-op where refused."""
    try:
        with open(f"/proc/{os.getpid()}/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass


def release() -> None:
    """Return freed heap memory to the OS (glibc ``malloc_trim``); a no-op elsewhere."""
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def workers_that_fit(requested: int, per_trial_gb: float, node_memory: list[float]) -> int:
    """How many trials may run at once: ``requested``, lowered so that every running
    trial has ``per_trial_gb`` of the memory Ray may schedule on its node.

    ``node_memory`` is each alive node's schedulable memory in bytes (Ray's ``memory``
    resource). Raises a one-line :class:`~elo.errors.ConfigError` when no node can hold
    even one trial (Ray would otherwise wait for ever on an infeasible trial).
    """
    from elo.errors import ConfigError

    need = float(per_trial_gb) * 2**30
    if need <= 0:
        return requested
    fit = sum(int(m // need) for m in node_memory)
    if fit < 1:
        have = max(node_memory, default=0.0) / 2**30
        raise ConfigError(
            f"search.memory_per_trial_gb={per_trial_gb:g} but the largest Ray node can give "
            f"trials only {have:.1f} GB: lower the model/batch size or "
            "search.memory_per_trial_gb, or add memory"
        )
    return max(1, min(requested, fit))
