"""Population Based Training over λ: ``elo-search --strategy pbt | pb2`` (docs/search.md).

A small population (``search.pbt.population``) trains for the whole budget
(``search.pbt.steps``), each member with its own λ, all from the warm-start trunk
(search/warmstart.py). Every ``search.pbt.interval`` steps each member reports the
label-free fitness a search trial uses, on the same held-out slice of the train pool
(search/pbt_member.py); Ray Tune's ``PopulationBasedTraining`` (Jaderberg et al.,
2017) or ``PB2`` (Parker-Holder et al., NeurIPS 2020) then lets the bottom quantile
copy a top member's weights, optimizer state and λ through Tune checkpoints and
explores that λ within [0, 1] (search/pbt_scheduler.py). The best member at the end
is the final model. Tune combines no search algorithm with these schedulers, so this
is a strategy beside the generational ones (search/run.py dispatches to
:func:`run_pbt`).

Run directory (besides ``config.yaml``)::

    evaluations.jsonl     every member's report per interval (search/pbt_log.py)
    final/                the best member's RGB encoder (elo.load_encoder)
    best_schedule.json    λ per interval along its lineage (elo-train --weights)
    report.md, pbt_*.png  search/pbt_report.py
    tensorboard/member-<m>/   fitness and λ per member
    warm_start.pt         the trunk (search/warmstart.py)
    ray/pbt/              Ray Tune's experiment; --resume restores it (Tuner.restore)
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from elo.errors import ConfigError, EloError
from elo.rundir import atomic_write_json, read_jsonl
from elo.search.pbt_log import ECHO, EVALUATIONS, best_final, by_key, lineage, schedule_of
from elo.search.pbt_settings import PBTSettings
from elo.search.settings import FitnessSettings, SearchSettings
from elo.search.trainable import TrialContext

EXPERIMENT = "pbt"
SCHEDULE_FILE = "best_schedule.json"
FINAL_DIR = "final"
SNAPSHOT_ENV = "TUNE_GLOBAL_CHECKPOINT_S"


def run_pbt(
    cfg: dict[str, Any],
    run_dir: Path,
    settings: SearchSettings,
    fitness: FitnessSettings,
    *,
    resume: bool,
    address: str | None,
    workers: int | None,
    echo: Callable[[str], None] = print,
    report: bool = True,
) -> dict[str, Any]:
    """Run (or, with ``resume``, continue) a population-based search in ``run_dir``
    with the parsed ``fitness`` section; returns ``{"finished", "best", "evaluations",
    "run_dir"}``."""
    from elo.model.objective import terms_from_config

    if not fitness.trains:
        raise ConfigError(
            f"--strategy {settings.strategy} trains its members: the {fitness.kind} fitness "
            "scores λ without training; choose zipf, xmodal, weak, combined or another "
            "fitness that scores a trained encoder"
        )
    terms = [str(t) for t in terms_from_config(cfg)]
    n_workers = workers or settings.workers
    ctx = _context(cfg, run_dir, settings, fitness, n_workers, echo)
    results = _fit(run_dir, settings, ctx, terms, resume, address, n_workers, echo)
    return _finish(cfg, run_dir, settings, terms, results, echo, report)


def _context(
    cfg: dict[str, Any],
    run_dir: Path,
    settings: SearchSettings,
    fitness: FitnessSettings,
    n_workers: int | None,
    echo: Callable[[str], None],
) -> TrialContext:
    """The data prepared and what every member shares: a trial's context with the
    members' budget (``search.pbt.steps``, no rungs) and the warm-start trunk."""
    from elo.search.fidelity import proxy_steps
    from elo.search.prepare import absolute_data_paths, prepare_data

    root = absolute_data_paths(cfg)
    prepare_data(cfg, root, settings.heldout_split, fitness.references)
    ctx = TrialContext.from_settings(cfg, settings, root, fitness=fitness)
    ctx = replace(ctx, steps=settings.pbt.steps, rungs=None)
    if settings.warm_start:
        from elo.search.warmstart import ensure_trunk, trunk_steps

        # nothing else runs yet: the trunk trains on every CPU the members will share
        cpus = min(os.cpu_count() or 1, (n_workers or os.cpu_count() or 1) * ctx.threads)
        steps = trunk_steps(settings, proxy_steps(cfg, settings))
        ctx.trunk = ensure_trunk(replace(ctx, threads=cpus), run_dir, steps, echo)
    return ctx


def _fit(
    run_dir: Path,
    settings: SearchSettings,
    ctx: TrialContext,
    terms: list[str],
    resume: bool,
    address: str | None,
    n_workers: int | None,
    echo: Callable[[str], None],
) -> Any:
    """Start (or join) Ray and run the members to the end; Ray Tune's results."""
    import ray

    from elo.search.runtime import memory_cap

    pbt = settings.pbt
    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # our lines say who copied whom
        logging.getLogger("ray.tune.schedulers.pbt").setLevel(logging.WARNING)
    started = _start_ray(address, n_workers, settings.cpus_per_trial)
    ECHO[str(run_dir)] = echo
    # Tune snapshots its experiment state at every step of its loop (not every ~10 s),
    # so a kill loses at most the report being processed (search/pbt_log.py)
    period = os.environ.get(SNAPSHOT_ENV)
    os.environ[SNAPSHOT_ENV] = "0"
    try:
        if n_workers is None:
            cpus = int(ray.cluster_resources().get("CPU", 1))  # type: ignore[no-untyped-call]
            n_workers = max(1, cpus // settings.cpus_per_trial)
        n_workers, memory = memory_cap(settings, n_workers, echo)
        echo(
            f"search {run_dir}: {settings.strategy} over {len(terms)} terms, population "
            f"{pbt.population}, {pbt.steps} steps per member in {pbt.intervals} intervals of "
            f"{pbt.interval}, {n_workers} workers, fitness {ctx.fitness.kind}"
        )
        return _tuner(run_dir, settings, ctx, terms, memory, resume, echo).fit()
    finally:
        ECHO.pop(str(run_dir), None)
        if period is None:
            os.environ.pop(SNAPSHOT_ENV, None)
        else:
            os.environ[SNAPSHOT_ENV] = period
        if started:
            ray.shutdown()


def _start_ray(address: str | None, workers: int | None, cpus_per_trial: int) -> bool:
    """As search/runtime.py starts Ray, except that a local runtime gets exactly
    ``workers × cpus_per_trial`` CPUs: Tune starts every member it has CPUs for (its
    concurrency limit would cap the population itself), so the CPUs cap the workers."""
    import ray

    from elo.search.runtime import start_ray

    if ray.is_initialized() or address or workers is None:
        return start_ray(address, (workers or 1) * cpus_per_trial)
    from elo.search.failures import init_local_ray
    from elo.search.memory import WORKER_ENV

    os.environ.update(WORKER_ENV)  # inherited by the local raylet's workers
    init_local_ray(workers * cpus_per_trial)
    return True


def _tuner(
    run_dir: Path,
    settings: SearchSettings,
    ctx: TrialContext,
    terms: list[str],
    memory: float,
    resume: bool,
    echo: Callable[[str], None],
) -> Any:
    """A new Tuner, or the experiment of ``run_dir`` restored (``Tuner.restore``)."""
    import random
    import shutil

    import numpy as np
    from ray import tune

    from elo.search.pbt_member import member_trial
    from elo.search.pbt_storage import atomic_storage

    trainable = tune.with_resources(
        tune.with_parameters(member_trial, ctx=ctx, interval=settings.pbt.interval),
        {"cpu": settings.cpus_per_trial, "gpu": settings.gpus_per_trial, "memory": memory},
    )
    logged = len(list(read_jsonl(run_dir / EVALUATIONS)))
    random.seed(ctx.seed * 1_000_003 + logged)  # Tune's PBT explores with `random`, PB2 numpy
    np.random.seed((ctx.seed * 1_000_003 + logged) % 2**32)
    path = run_dir / "ray" / EXPERIMENT
    if resume and any(path.glob("experiment_state-*.json")):
        echo(f"resuming {run_dir}: {logged} member intervals logged; restoring {path}")
        return tune.Tuner.restore(
            str(path),
            trainable=trainable,
            resume_unfinished=True,
            resume_errored=True,
            storage_filesystem=atomic_storage(),
        )
    if logged:
        raise EloError(
            f"{run_dir} holds {logged} logged member intervals but no Ray Tune experiment "
            f"state in {path}; start a new search with another --out"
        )
    if path.exists():  # killed before Tune's first snapshot: nothing to restore
        shutil.rmtree(path)
    return _new_tuner(trainable, run_dir, settings, ctx.seed, terms)


def _new_tuner(
    trainable: Any, run_dir: Path, settings: SearchSettings, seed: int, terms: list[str]
) -> Any:
    """The Tuner of a new population-based search (search/pbt_scheduler.py)."""
    from ray import tune
    from ray.tune.search import BasicVariantGenerator

    from elo.search.failures import error_callback
    from elo.search.pbt_log import log_callback
    from elo.search.pbt_member import member_dirname
    from elo.search.pbt_scheduler import make_scheduler
    from elo.search.pbt_settings import lambda_key
    from elo.search.pbt_storage import atomic_storage
    from elo.search.rundir import ERRORS

    pbt = settings.pbt
    return tune.Tuner(
        trainable,
        # each member's first λ: uniform in [0, 1], drawn by Tune with the experiment seed
        param_space={lambda_key(i): tune.uniform(0.0, 1.0) for i in range(len(terms))},
        tune_config=tune.TuneConfig(
            scheduler=make_scheduler(settings.strategy, pbt, len(terms)),
            search_alg=BasicVariantGenerator(random_state=seed),
            num_samples=pbt.population,
            reuse_actors=True,
            trial_dirname_creator=member_dirname,
        ),
        run_config=tune.RunConfig(
            name=EXPERIMENT,
            storage_path=str(run_dir / "ray"),
            storage_filesystem=atomic_storage(),  # whole files only (search/pbt_storage.py)
            verbose=0,
            stop={"step": pbt.steps},  # the last report ends a member: no copy after it
            callbacks=[
                log_callback(run_dir, terms, pbt.intervals),
                error_callback(run_dir / ERRORS),
            ],
            failure_config=tune.FailureConfig(max_failures=settings.max_retries),
            # every checkpoint is kept: a copied one may be restored after a kill
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        ),
    )


def _finish(
    cfg: dict[str, Any],
    run_dir: Path,
    settings: SearchSettings,
    terms: list[str],
    results: Any,
    echo: Callable[[str], None],
    report: bool,
) -> dict[str, Any]:
    """The outputs of a finished search (``final/``, ``best_schedule.json``, the
    report), or how to continue one that stopped."""
    pbt = settings.pbt
    records = list(read_jsonl(run_dir / EVALUATIONS))
    keyed = by_key(records)
    done = all((m, pbt.intervals) in keyed for m in range(pbt.population))
    out: dict[str, Any] = {"finished": done, "best": None, "evaluations": len(records)}
    out["run_dir"] = run_dir
    if done:
        best = best_final(records, pbt.intervals)
        if best is None:
            _report(run_dir, report)
            errors = [r.get("error") for r in records if r.get("error")]
            raise EloError(
                f"search {run_dir}: no member ended healthy (every one non-finite, collapsed "
                f"or failed); first error: {errors[0] if errors else 'none logged'}"
            )
        chain = lineage(records, int(best["member"]), pbt.intervals)
        write_schedule(run_dir, cfg, settings.strategy, pbt, chain)
        export_best(cfg, run_dir, results, best, pbt.steps)
        out["best"] = best
        echo(
            f"best member {best['member']}: fitness {best['fitness']:.4f} after {pbt.steps} "
            f"steps; encoder in {run_dir / FINAL_DIR} (elo.load_encoder), λ schedule in "
            f"{run_dir / SCHEDULE_FILE} (elo-train --weights)"
        )
    else:
        echo(
            f"search stopped with {len(keyed)}/{pbt.population * pbt.intervals} member "
            f"intervals logged; continue with: elo-search --resume {run_dir}"
        )
    _report(run_dir, report)
    return out


def write_schedule(
    run_dir: Path, cfg: dict[str, Any], strategy: str, pbt: PBTSettings, chain: list[dict[str, Any]]
) -> Path:
    """``best_schedule.json``: the λ of each interval along the lineage ``chain`` of the
    best member (a :class:`~elo.model.objective.WeightSchedule` file)."""
    from elo.model.objective import Weights, WeightSchedule, terms_from_config

    keys = terms_from_config(cfg)
    entries = [(s, Weights(keys, w)) for s, w in schedule_of(chain, pbt.interval)]
    doc = WeightSchedule(entries).to_json(
        strategy=strategy,
        member=int(chain[-1]["member"]),
        fitness=float(chain[-1]["fitness"]),
        steps=pbt.steps,
        interval=pbt.interval,
        lineage=[{"member": int(r["member"]), "interval": int(r["interval"])} for r in chain],
    )
    return atomic_write_json(run_dir / SCHEDULE_FILE, doc)


def export_best(
    cfg: dict[str, Any], run_dir: Path, results: Any, best: dict[str, Any], steps: int
) -> Path:
    """The best member's RGB encoder from its last Tune checkpoint, as ``elo-train``
    exports one (``final/``, ``elo.load_encoder``)."""
    from elo.model.network import ELoModel
    from elo.model.objective import Weights, terms_from_config
    from elo.search.pbt_member import CHECKPOINT
    from elo.search.warmstart import uniform_weights
    from elo.train.export import export_student
    from elo.train.loop import load_state

    checkpoint = None
    for res in results:
        if (res.metrics or {}).get("member") == int(best["member"]):
            checkpoint = res.checkpoint
    if checkpoint is None:
        raise EloError(f"search {run_dir}: no Tune checkpoint of member {best['member']}")
    with checkpoint.as_directory() as d:
        state = load_state(Path(d) / CHECKPOINT)
    if int(state["step"]) != steps:
        raise EloError(f"member {best['member']}'s last checkpoint is at step {state['step']}")
    keys = terms_from_config(cfg)
    model = ELoModel(cfg, Weights(keys, uniform_weights(cfg)), seed=int(cfg["seed"]))
    model.load_state_dict(state["model"])
    return export_student(run_dir / FINAL_DIR, model, cfg, Weights(keys, best["weights"]), steps)


def _report(run_dir: Path, report: bool) -> None:
    if not report:
        return
    from elo.search.pbt_report import write_pbt_report
    from elo.search.runtime import safe_report

    safe_report(write_pbt_report, run_dir)
