"""What a search does when a trial fails, hangs, or the machine gets in the way.

Three kinds of trouble, three answers (docs/reliability.md):

* **The trial's own error** (an exception in training or scoring, e.g. a diverged
  encoder): :func:`guarded_trial` reports it as a result with ``trial_error``, and the
  searcher records an evaluation with status ``error`` and the worst fitness.
* **Infrastructure** (the worker was OOM-killed, its node was lost, the actor died):
  nothing reached :func:`guarded_trial`'s ``except``, so Ray Tune sees the failure and
  restarts the trial up to ``search.max_retries`` times (``FailureConfig``). If it still
  fails, the searcher hands the individual out again (never an evaluation), and after
  :data:`~search.generation.MAX_REQUEUES` such losses of one individual it stops the
  search, resumably, with one line saying why. When Ray loses its workers while the
  search itself runs (``tuner.fit()`` raises), :func:`infrastructure_failure` tells
  it from an error of ours and the driver (search/run.py) resumes from the run
  directory.
* **A hung or slow trial**: :class:`TrialTimeouts` gives a trial that ran longer than
  ``search.trial_timeout_s`` the worst fitness (status ``timeout``) and stops it, so
  its generation completes.
* **The whole local Ray runtime dies** (its GCS or raylet process is killed): Ray's own
  client would end the driver process after a minute without its GCS (Ray Tune's own
  clean-up waits for the GCS until then). ``RuntimeWatch`` interrupts the Tuner as soon
  as the runtime's GCS or raylet process is gone, skipping that clean-up, and the driver
  (search/run.py) raises :class:`RuntimeLost`, an infrastructure failure: it shuts that
  runtime down, starts a new one and resumes from the run directory.

:func:`init_local_ray` starts the private Ray runtime of a search on the loopback
interface only (``127.0.0.1``), never on the machine's network address.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ray.tune.schedulers import FIFOScheduler

from elo.rundir import append_jsonl

log = logging.getLogger(__name__)


def guarded_trial(config: dict[str, Any], ctx: Any) -> None:
    """The Ray Tune trainable: :func:`search.trainable.trial`, with its own errors
    reported as a result (an evaluation) rather than raised (a Tune failure, which is
    retried as infrastructure). ``MemoryError`` is raised: the machine, not the λ."""
    from ray import tune

    from elo.search.trainable import trial

    t0 = time.perf_counter()
    try:
        trial(config, ctx)
    except MemoryError:
        raise
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
        tune.report(
            {
                "fitness": float("nan"),
                "trial_error": True,
                "error_msg": text,
                "seconds": time.perf_counter() - t0,
            }
        )


#: what Ray Tune raises when the machine, not the trial, failed: a worker killed by
#: Ray's memory monitor while its actor started, a dead node or actor. Trial-level
#: failures are retried inside Tune (FailureConfig); these end tuner.fit() itself.
_INFRA_MARKERS = (
    "RuntimeLost",
    "OutOfMemoryError",
    "running low on memory",
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "NodeDiedError",
    "WorkerCrashedError",
)


class RuntimeLost(RuntimeError):
    """The private local Ray runtime of the search died (:class:`RuntimeWatch`)."""


class RuntimeLostInterrupt(BaseException):
    """Raised inside Ray Tune's loop when the runtime died. A ``BaseException``, so
    that Tune's ``except Exception`` clean-up, which asks the dead GCS to free the
    trials' placement groups and blocks until Ray's client ends the process, is skipped;
    search/run.py turns it into :class:`RuntimeLost`."""


#: the processes of a local Ray node without which no trial can run
_ESSENTIAL = ("gcs_server", "raylet")


def dead_runtime_process() -> str | None:
    """``gcs_server`` or ``raylet`` when that process of this driver's local Ray node has
    exited, None while both run (or without a local node)."""
    import ray._private.worker as ray_worker

    node = getattr(ray_worker, "_global_node", None)
    if node is None:
        return None
    dead = [str(kind) for kind, _ in node.dead_processes()]
    return next((k for k in _ESSENTIAL if k in dead), None)


def runtime_watch() -> Any:
    """A Ray Tune stopper (:class:`RuntimeWatch`) for a search on a private local runtime."""
    from ray.tune.stopper import Stopper

    class RuntimeWatch(Stopper):
        """Ends the experiment when the GCS or the raylet of the local Ray node has
        exited (:class:`RuntimeLostInterrupt`); ``lost`` names it (checked on every step
        of Tune's loop: one ``poll`` per process)."""

        def __init__(self) -> None:
            self.lost: str | None = None

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            self.lost = self.lost or dead_runtime_process()
            if self.lost is not None:
                raise RuntimeLostInterrupt(f"the local Ray runtime died ({self.lost} exited)")
            return False

    return RuntimeWatch()


def infrastructure_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) is Ray losing a worker or a
    node rather than an error of ours: such a search is resumed, not failed."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        text = f"{type(e).__name__}: {e}"
        if any(m in text for m in _INFRA_MARKERS):
            return True
        e = e.__cause__ or e.__context__
    return False


def error_callback(errors_file: Path) -> Any:
    """A Ray Tune callback appending each failed trial's last error line to
    ``errors_file`` (``errors.jsonl`` of the run directory, search/rundir.py)."""
    from ray.tune import Callback

    class ErrorLog(Callback):
        """Tune tells the searcher of a failure first; this adds the error text."""

        def on_trial_error(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            text = ""
            try:
                if trial.error_file and os.path.exists(trial.error_file):
                    lines = Path(trial.error_file).read_text(encoding="utf-8").splitlines()
                    text = next((ln for ln in reversed(lines) if ln.strip()), "")
            except OSError:
                pass
            cfg = trial.config or {}
            append_jsonl(
                errors_file,
                {
                    "trial_id": trial.trial_id,
                    "generation": cfg.get("generation"),
                    "index": cfg.get("index"),
                    "error": text[:500],
                },
            )

    return ErrorLog()


class TrialTimeouts(FIFOScheduler):
    """First-in-first-out scheduling plus a wall-clock limit per trial.

    Tune asks a scheduler which trial to run at every step of its loop; each time, a
    trial that has been running longer than ``timeout_s`` is recorded by the searcher
    as timed out (worst fitness) and stopped. A function trainable cannot be
    interrupted, so its worker process (actor) is killed, which frees its resources
    for the next trial at once."""

    def __init__(self, searcher: Any, timeout_s: float) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.searcher, self.timeout_s = searcher, float(timeout_s)
        self.running_since: dict[str, float] = {}

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        enforce_timeouts(self, tune_controller)
        return super().choose_trial_to_run(tune_controller)


def enforce_timeouts(sched: Any, tune_controller: Any) -> None:
    """Stop (and free the worker of) each trial running longer than ``sched.timeout_s``,
    telling ``sched.searcher`` (:class:`TrialTimeouts`, :func:`rung_timeouts`)."""
    import ray

    now = time.monotonic()
    running = set()
    for trial in list(tune_controller.get_live_trials()):
        if trial.status != "RUNNING":
            continue
        running.add(trial.trial_id)
        since = sched.running_since.setdefault(trial.trial_id, now)
        if now - since > sched.timeout_s:
            log.warning(
                "trial %s ran %.0f s > search.trial_timeout_s=%g: worst fitness, stopped",
                trial.trial_id,
                now - since,
                sched.timeout_s,
            )
            sched.searcher.on_trial_timeout(trial.trial_id, now - since)
            actor = getattr(trial.temporary_state, "ray_actor", None)
            tune_controller.stop_trial(trial)
            if actor is not None:  # a hung thread never returns: free the worker
                ray.kill(actor, no_restart=True)
    for tid in set(sched.running_since) - running:  # finished, failed or requeued
        del sched.running_since[tid]


def rung_timeouts(searcher: Any, timeout_s: float | None, n_rungs: int, rf: int) -> Any:
    """Ray Tune's ASHA over ``n_rungs`` rungs (search/fidelity.py), with the wall-clock
    limit of :class:`TrialTimeouts` per trial when ``timeout_s`` is set."""
    from ray.tune.schedulers import ASHAScheduler

    from elo.search.fidelity import asha_scheduler

    if timeout_s is None:
        return asha_scheduler(n_rungs, rf)

    class RungTimeouts(ASHAScheduler):
        def choose_trial_to_run(self, tune_controller: Any) -> Any:
            enforce_timeouts(self, tune_controller)
            return super().choose_trial_to_run(tune_controller)

    sched = asha_scheduler(n_rungs, rf, base=RungTimeouts)
    sched.searcher, sched.timeout_s, sched.running_since = searcher, float(timeout_s), {}
    return sched


def init_local_ray(num_cpus: int) -> None:
    """Start a private Ray runtime for this process, every server bound to 127.0.0.1.

    Ray picks the node address from the default route unless clusters are disabled
    (its macOS / Windows default); disabling them for the start binds the GCS, the
    raylet and the workers to loopback, so nothing is reachable from the network.
    A multi-machine search joins a cluster instead (``elo-search --address``)."""
    import ray
    import ray._private.ray_constants as ray_constants

    had = getattr(ray_constants, "ENABLE_RAY_CLUSTER", None)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    finally:
        if had is not None:
            ray_constants.ENABLE_RAY_CLUSTER = had
