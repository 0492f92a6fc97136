"""The Ray runtime both search drivers use (search/run.py for the generational
strategies, search/pbt.py for population-based training): start a private local
runtime or join a cluster, how many trials its nodes' memory holds at once, and
reports written without ever stopping a search."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from elo.search.settings import SearchSettings

log = logging.getLogger(__name__)


def start_ray(address: str | None, cpus_needed: int) -> bool:
    """Join the cluster at ``address`` or start a private local Ray runtime, unless Ray
    is running already; returns whether this call started it."""
    import ray

    from elo.search.failures import init_local_ray
    from elo.search.memory import WORKER_ENV, worker_runtime_env

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False, runtime_env=worker_runtime_env())
    else:
        os.environ.update(WORKER_ENV)  # inherited by the local raylet's workers
        init_local_ray(max(os.cpu_count() or 1, cpus_needed))  # loopback only
    return True


def memory_cap(
    settings: SearchSettings, n_workers: int, echo: Callable[[str], None]
) -> tuple[int, float]:
    """Concurrent trials lowered to what the Ray nodes' memory holds at
    ``search.memory_per_trial_gb`` each, and that figure in bytes as a Ray resource
    request, so Ray's scheduler (not ours) keeps each node within its memory."""
    import ray

    from elo.search.memory import workers_that_fit

    per_trial = settings.memory_per_trial_gb
    alive = [n for n in ray.nodes() if n.get("Alive")]  # type: ignore[no-untyped-call]
    nodes = [float(n.get("Resources", {}).get("memory", 0.0)) for n in alive]
    fit = workers_that_fit(n_workers, per_trial, nodes)
    if fit < n_workers:
        echo(
            f"search: {n_workers} workers x {per_trial:g} GB (search.memory_per_trial_gb) do "
            f"not fit the {sum(nodes) / 2**30:.1f} GB Ray may schedule; running {fit} at once"
        )
    return fit, per_trial * 2**30


def safe_report(fn: Callable[[Path], Any], run_dir: Path) -> None:
    """``fn(run_dir)`` (a report writer); a failure is logged, never raised."""
    try:
        fn(run_dir)
    except Exception as exc:  # plots must never stop a search
        log.warning("could not write the report for %s: %s", run_dir, exc)
