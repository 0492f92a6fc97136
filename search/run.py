"""The driver behind ``elo-search``: Ray, the Tuner, progress, resume, retries
(strategies ``pbt`` and ``pb2`` go to search/pbt.py).

:func:`run_search` runs (or continues) a search in a run directory
(search/rundir.py): the Ray-free :class:`search.generation.Evolution` behind a thin
Ray Tune searcher (search/searcher.py) proposes the individuals, the trials
(search/trainable.py, guarded by search/failures.py) score them, and the run log
records every evaluation. When Ray itself loses its workers, the search resumes from
its run directory, up to ``search.max_retries`` times.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from elo.rundir import read_jsonl
from elo.search.failures import error_callback, infrastructure_failure
from elo.search.pbt_settings import PBT_STRATEGIES
from elo.search.rundir import BEST_FILE, ERRORS, EVALUATIONS, STATE_FILE, RunLog
from elo.search.runtime import memory_cap, safe_report, start_ray
from elo.search.searcher import EvolutionSearcher
from elo.search.settings import FitnessSettings, SearchSettings
from elo.search.trainable import TrialContext


def run_search(
    cfg: dict[str, Any],
    run_dir: str | Path,
    *,
    resume: bool = False,
    address: str | None = None,
    workers: int | None = None,
    echo: Callable[[str], None] = print,
    report: bool = True,
    settings: SearchSettings | None = None,
) -> dict[str, Any]:
    """Run (or continue) a search; returns ``{"finished", "best", "evaluations"}``.
    ``settings``: ``cfg``'s search settings when the caller parsed them already.
    The run directory is locked meanwhile: a second writer exits 2 (elo/rundir.py)."""
    from elo.rundir import DirLock

    settings = settings if settings is not None else SearchSettings.from_config(cfg)
    fitness = FitnessSettings.from_config(cfg)  # parsed once for the whole search
    retries = settings.max_retries
    with DirLock(Path(run_dir).resolve(), "elo-search"):
        for attempt in range(retries + 1):
            try:
                return _run_search(
                    cfg,
                    run_dir,
                    settings,
                    fitness,
                    resume=resume or attempt > 0,
                    address=address,
                    workers=workers,
                    echo=echo,
                    report=report,
                )
            except Exception as exc:
                if attempt >= retries or not infrastructure_failure(exc):
                    raise
                echo(
                    f"search: Ray lost its workers ({_first_line(exc)}); resuming from "
                    f"{run_dir} (retry {attempt + 1}/{retries}, search.max_retries)"
                )
    raise AssertionError("unreachable")  # the loop returns or raises


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _run_search(
    cfg: dict[str, Any],
    run_dir: str | Path,
    settings: SearchSettings,
    fitness: FitnessSettings,
    *,
    resume: bool,
    address: str | None,
    workers: int | None,
    echo: Callable[[str], None],
    report: bool,
) -> dict[str, Any]:
    run_dir = Path(run_dir).resolve()
    if settings.strategy in PBT_STRATEGIES:  # population-based training (search/pbt.py)
        from elo.search.pbt import run_pbt

        return run_pbt(
            cfg,
            run_dir,
            settings,
            fitness,
            resume=resume,
            address=address,
            workers=workers,
            echo=echo,
            report=report,
        )
    searcher, listener = _open(cfg, run_dir, settings, fitness, resume=resume, echo=echo)
    if report:
        from elo.search.report import write_report

        listener.on_generation = lambda: safe_report(write_report, run_dir)
    if not searcher.finished:
        _tune(cfg, run_dir, settings, fitness, searcher, address, workers, echo)
    if report:
        safe_report(write_report, run_dir)
    listener.board.close()
    _say_how_it_ended(searcher, settings, run_dir, echo)
    return {
        "finished": searcher.finished,
        "best": searcher.best,
        "evaluations": listener.done,
        "run_dir": run_dir,
    }


def _open(
    cfg: dict[str, Any],
    run_dir: Path,
    settings: SearchSettings,
    fitness: FitnessSettings,
    *,
    resume: bool,
    echo: Callable[[str], None],
) -> tuple[EvolutionSearcher, RunLog]:
    """The searcher of ``run_dir`` (restored and brought up to date with the run log
    when resuming) and its listener."""
    from elo.search.space import WeightSpace
    from elo.search.strategies import strategy_for

    space = WeightSpace.from_config(cfg, settings.mapping)
    strategy = strategy_for(settings, space, seed=int(cfg["seed"]))
    records = list(read_jsonl(run_dir / EVALUATIONS))
    listener = RunLog(run_dir, settings.total, len(records), echo)
    from elo.search.fidelity import active_rungs, proxy_steps

    rungs = active_rungs(fitness, settings, proxy_steps(cfg, settings))
    searcher = EvolutionSearcher(
        strategy, space, settings.generations, listener=None, rungs=len(rungs or [1])
    )
    evolution = searcher.evolution
    if resume:
        if (run_dir / STATE_FILE).exists():
            evolution.restore(str(run_dir / STATE_FILE))
        evolution.requeue_live()
        evolution.listener = listener
        replayed = evolution.replay(records)
        listener.checkpoint(evolution)
        echo(
            f"resuming {run_dir}: {len(records)} evaluations finished "
            f"({replayed} replayed from the log), generation {evolution.generation + 1}"
            f"/{settings.generations}"
        )
    evolution.listener = listener
    return searcher, listener


def _tune(
    cfg: dict[str, Any],
    run_dir: Path,
    settings: SearchSettings,
    fitness: FitnessSettings,
    searcher: EvolutionSearcher,
    address: str | None,
    workers: int | None,
    echo: Callable[[str], None],
) -> None:
    """Prepare the data, start (or join) Ray and run the Tuner until the search
    finishes, halts or is interrupted."""
    import ray

    from elo.search.failures import RuntimeLost, RuntimeLostInterrupt, runtime_watch
    from elo.search.prepare import absolute_data_paths, prepare_data

    root = absolute_data_paths(cfg)
    ctx = TrialContext.from_settings(cfg, settings, root, fitness=fitness)
    if fitness.trains:
        prepare_data(cfg, root, settings.heldout_split, fitness.references)
    if settings.warm_start and ctx.fitness.trains:  # search/warmstart.py
        from elo.search.warmstart import ensure_trunk, trunk_steps

        ctx.trunk = ensure_trunk(ctx, run_dir, trunk_steps(settings, ctx.steps), echo)
    n_workers = workers or settings.workers
    started_ray = start_ray(address, (n_workers or 1) * settings.cpus_per_trial)
    try:
        if n_workers is None:
            cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
            n_workers = max(1, cpus // settings.cpus_per_trial)
        n_workers, memory = memory_cap(settings, n_workers, echo)
        echo(
            f"search {run_dir}: {settings.strategy} over {searcher.evolution.space.dim} terms, "
            f"population {settings.population} x {settings.generations} generations, "
            f"{n_workers} workers, {ctx.steps} proxy steps, fitness {ctx.fitness.kind}"
            + (f", rungs at steps {list(ctx.rungs)}" if ctx.rungs else "")
        )
        watch = runtime_watch() if started_ray and not address else None
        try:
            _tuner(run_dir, settings, searcher, ctx, n_workers, memory, watch).fit()
        except RuntimeLostInterrupt as exc:
            raise RuntimeLost(str(exc)) from None
    finally:
        if started_ray:
            ray.shutdown()


def _tuner(
    run_dir: Path,
    settings: SearchSettings,
    searcher: EvolutionSearcher,
    ctx: TrialContext,
    n_workers: int,
    memory: float,
    watch: Any = None,
) -> Any:
    """The Ray Tune ``Tuner`` of one session of the search (``ray/session-<n>``);
    ``watch`` ends it when the local Ray runtime dies (search/failures.py)."""
    from ray import tune

    from elo.search.failures import TrialTimeouts, guarded_trial, rung_timeouts

    cpus, gpus = settings.cpus_per_trial, settings.gpus_per_trial
    trainable = tune.with_resources(
        tune.with_parameters(guarded_trial, ctx=ctx),
        {"cpu": cpus, "gpu": gpus, "memory": memory},
    )
    ray_dir = run_dir / "ray"
    session = sum(1 for p in ray_dir.glob("session-*")) if ray_dir.exists() else 0
    timeout = settings.trial_timeout_s
    scheduler = TrialTimeouts(searcher, timeout) if timeout is not None else None
    if ctx.rungs:  # Ray Tune's ASHA stops the bottom of each rung (search/fidelity.py)
        scheduler = rung_timeouts(searcher, timeout, len(ctx.rungs), ctx.reduction_factor)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=-1,
            max_concurrent_trials=n_workers,
            # a timed-out trial's worker is killed, so it must not be kept for reuse
            reuse_actors=timeout is None,
            scheduler=scheduler,
        ),
        run_config=tune.RunConfig(
            name=f"session-{session}",
            storage_path=str(ray_dir),
            verbose=0,
            callbacks=[error_callback(run_dir / ERRORS)],
            stop=watch,
            failure_config=tune.FailureConfig(max_failures=settings.max_retries),
        ),
    )


def _say_how_it_ended(
    searcher: EvolutionSearcher,
    settings: SearchSettings,
    run_dir: Path,
    echo: Callable[[str], None],
) -> None:
    if searcher.halted:
        echo(f"search: {searcher.halted}")
    if not searcher.finished:
        echo(
            f"search stopped at generation {searcher.generation + 1}/{settings.generations}; "
            f"continue with: elo-search --resume {run_dir}"
        )
    elif searcher.best is not None:
        best = searcher.best
        echo(
            f"best fitness {best['fitness']:.4f} (generation {best['generation'] + 1}, "
            f"individual {best['index']}); weights in {run_dir / BEST_FILE}"
        )
