"""The driver behind ``elo-search``: run directory, Ray, the Tuner, progress, resume.

Run directory (``runs/<name>/``)::

    config.yaml          the resolved config (``--resume`` reads it back)
    evaluations.jsonl    one line per finished evaluation: generation, index, vector,
                         weights (λ), fitness, status (ok | error | nonfinite),
                         seconds, metrics, details -- the source of truth
    errors.jsonl         the error line of each failed trial (by trial id)
    search_state.json    the searcher state (strategy, RNG, generation, pending / live)
    best_weights.json    {"weights": {term: λ}, "fitness": ..., ...} for elo-train
    generations.jsonl    best / median fitness per finished generation
    *.png, report.md     plots and the report (search/report.py)
    ray/                 Ray Tune's own trial folders

Every write is atomic (temp + rename) or one fsynced JSON line, so ``kill -9`` loses
at most the trials in flight. ``--resume`` restores the state, puts the individuals
that were running back in the queue and replays any evaluation the log holds that the
state does not: nothing finished is lost or evaluated twice.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from elo.errors import ConfigError
from elo.rundir import append_jsonl, atomic_write_json, atomic_write_text, read_jsonl

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
EVALUATIONS = "evaluations.jsonl"
ERRORS = "errors.jsonl"
GENERATIONS = "generations.jsonl"
STATE_FILE = "search_state.json"
BEST_FILE = "best_weights.json"

SEARCH_DEFAULTS: dict[str, Any] = {
    "strategy": "cma",
    "population": 64,
    "generations": 4,
    "sigma": 0.3,
    "mapping": "clip",
    "seed_points": False,
    "ga": {},
    "steps": None,
    "workers": None,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "memory_per_trial_gb": 2.0,
    "heldout_split": "train",  # fitness clips: a held-out slice of train (fitness_data.py)
    "heldout_fraction": 0.2,  # of the train videos, never trained on by a candidate
    "heldout_bn": "recalibrate",  # BatchNorm statistics of the fitness embeddings
    "trial_timeout_s": None,  # seconds; a trial running longer gets the worst fitness
    "max_retries": 2,  # Ray Tune restarts of a trial whose worker or node failed
}


def search_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The ``search`` section over its defaults; unknown keys are errors."""
    from elo.config import merge_checked

    section = cfg.get("search", {}) or {}
    out = merge_checked(dict(SEARCH_DEFAULTS), section, "search")
    for key in ("population", "generations", "cpus_per_trial"):
        if not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < 1:
            raise ConfigError(
                f"config key 'search.{key}' must be an integer >= 1, got {out[key]!r}"
            )
    timeout = out["trial_timeout_s"]
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ConfigError(
            f"config key 'search.trial_timeout_s' must be > 0 or null, got {timeout!r}"
        )
    retries = out["max_retries"]
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(
            f"config key 'search.max_retries' must be an integer >= 0, got {retries!r}"
        )
    if out["workers"] is not None and (not isinstance(out["workers"], int) or out["workers"] < 1):
        raise ConfigError(f"config key 'search.workers' must be >= 1, got {out['workers']!r}")
    return out


def fitness_section(name: str) -> dict[str, Any]:
    """The fitness config for ``--fitness NAME``: ``configs/fitness/NAME.yaml``; the
    built-in ``synthetic`` stand-in needs no file."""
    if name == "synthetic":
        return {"kind": "synthetic", "seconds": 0.0}
    from elo.config import _load_yaml, resolve_config_path

    return _load_yaml(resolve_config_path(name, "fitness"))


def strategy_for(cfg: Mapping[str, Any], space: Any) -> Any:
    from search.strategies import make_strategy

    s = search_settings(cfg)
    return make_strategy(
        s["strategy"],
        dim=space.dim,
        population=s["population"],
        seed=int(cfg.get("seed", 0)),
        sigma=float(s["sigma"]),
        centroid=space.centre(),
        bounds=(0.0, 1.0) if space.mapping == "clip" else None,
        seed_points=space.seed_points() if s["seed_points"] else (),
        ga={**_ga_box(space), **(s["ga"] or {})},
    )


def _ga_box(space: Any) -> dict[str, float]:
    """The GA's initial box in vector space: λ ∈ [0, 1] (clip) or [0.05, 0.95] (sigmoid)."""
    from search.space import to_vector

    lo, hi = to_vector([0.0, 1.0] if space.mapping == "clip" else [0.05, 0.95], space.mapping)
    return {"low": lo, "high": hi}


def _fmt_s(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class RunLog:
    """The searcher's listener: writes the run directory and prints progress."""

    def __init__(self, run_dir: Path, total: int, done: int, echo: Callable[[str], None]) -> None:
        self.run_dir, self.total, self.done = run_dir, total, done
        self.echo = echo
        self.session_start, self.session_done = time.time(), 0
        logged = list(read_jsonl(run_dir / EVALUATIONS))
        self.failed = sum(1 for r in logged if r.get("status") != "ok")
        self.best_written: float | None = None
        self.on_generation: Callable[[], None] | None = None
        # progress: a live line on a terminal, one line per generation otherwise; a
        # TensorBoard view of the JSON lines (elo/train/tblog.py)
        from elo.train.tblog import SearchBoard

        self.board = SearchBoard(run_dir)
        ok = [r for r in logged if r.get("fitness") is not None]
        self.best_record = max(ok, key=lambda r: r["fitness"]) if ok else None
        self.live = echo is print and sys.stdout.isatty()

    def evaluation(self, record: dict[str, Any]) -> None:
        append_jsonl(self.run_dir / EVALUATIONS, {**record, "time": time.time()})
        self.done += 1
        self.session_done += 1
        self.failed += record["status"] != "ok"
        if record["status"] in ("error", "timeout"):  # the trial's own error (search/failures.py)
            append_jsonl(self.run_dir / ERRORS, {k: record.get(k) for k in _ERROR_KEYS})
        fit = record.get("fitness")
        if fit is not None and (self.best_record is None or fit > self.best_record["fitness"]):
            self.best_record = record
        self.board.trial(record, self.done)
        if self.live:
            sys.stdout.write(f"\r\033[K{self.progress()}")
            sys.stdout.flush()

    def progress(self) -> str:
        """``trials 12/128 (0 failed)  best so far 0.1234  ETA 3m 10s``."""
        best = "n/a" if self.best_record is None else f"{self.best_record['fitness']:.4f}"
        return (
            f"trials {self.done}/{self.total} ({self.failed} failed)  best so far {best}"
            f"  ETA {_fmt_s(self.eta())}"
        )

    def checkpoint(self, searcher: Any) -> None:
        searcher.save(str(self.run_dir / STATE_FILE))
        best = searcher.best
        if best is not None and best["fitness"] != self.best_written:
            write_best(self.run_dir, best, searcher)
            self.best_written = best["fitness"]

    def eta(self) -> float:
        rate = (time.time() - self.session_start) / max(1, self.session_done)
        return rate * (self.total - self.done)

    def generation_done(self, summary: dict[str, Any]) -> None:
        append_jsonl(self.run_dir / GENERATIONS, summary)
        self.board.generation(summary, self.best_record)
        g = summary["generation"]
        best = "n/a" if summary["best"] is None else f"{summary['best']:.4f}"
        med = "n/a" if summary["median"] is None else f"{summary['median']:.4f}"
        clear = "\r\033[K" if self.live else ""  # over the live line
        self.echo(
            f"{clear}generation {g + 1}: best {best}  median {med}  | {self.progress()}"
            f"  | elapsed {_fmt_s(time.time() - self.session_start)}"
        )
        if self.on_generation is not None:
            self.on_generation()


_ERROR_KEYS = ("trial_id", "generation", "index", "status", "error")


def write_best(run_dir: Path, best: Mapping[str, Any], searcher: Any) -> None:
    from elo.model.objective import Weights
    from elo.model.terms import TermKey

    terms = [TermKey.parse(t) for t in searcher.space.terms]
    doc = Weights(terms, best["weights"]).to_json(
        fitness=best["fitness"],
        generation=best["generation"],
        index=best["index"],
        vector=best["vector"],
        strategy=searcher.strategy.name,
    )
    atomic_write_json(run_dir / BEST_FILE, doc)


def default_run_dir() -> Path:
    return Path("runs") / time.strftime("search-%Y%m%d-%H%M%S")


def prepare_run_dir(cfg: dict[str, Any], out: str | Path | None) -> Path:
    """A new run directory holding the resolved config."""
    run_dir = Path(out) if out else default_run_dir()
    if (run_dir / EVALUATIONS).exists() or (run_dir / STATE_FILE).exists():
        raise ConfigError(
            f"{run_dir} already holds a search; continue it with --resume {run_dir} "
            "or choose a new --out"
        )
    from elo.rundir import disk_errors

    with disk_errors(run_dir):  # a read-only or full disk: one line naming the folder
        run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / CONFIG_FILE, yaml.safe_dump(cfg, sort_keys=False))
    return run_dir


def load_run_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise ConfigError(f"{run_dir} is not a search run directory (no {CONFIG_FILE})")
    with open(path, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: not a config mapping")
    return cfg


def _prepare_data(cfg: Mapping[str, Any], root: str, split: str) -> None:
    """Extract and cache the training and held-out clips once, before the trials."""
    from elo.data.datasets import open_dataset
    from search.trainable import reference_modalities

    mods = list((cfg.get("objective", {}) or {}).get("modalities", ["rgb", "flow", "audio"]))
    refs = reference_modalities(cfg.get("fitness", {}) or {})
    open_dataset(cfg, root, split="train", modalities=mods, extract_workers=None)
    held = sorted({"rgb", *refs})
    open_dataset(cfg, root, split=split, modalities=held, extract_workers=None)


def _memory_cap(
    s: Mapping[str, Any], n_workers: int, echo: Callable[[str], None]
) -> tuple[int, float]:
    """Concurrent trials lowered to what the Ray nodes' memory holds at
    ``search.memory_per_trial_gb`` each, and that figure in bytes as a Ray resource
    request, so Ray's scheduler (not ours) keeps each node within its memory."""
    import ray

    from search.memory import workers_that_fit

    per_trial = float(s["memory_per_trial_gb"] or 0.0)
    nodes = [
        float(n.get("Resources", {}).get("memory", 0.0)) for n in ray.nodes() if n.get("Alive")
    ]
    fit = workers_that_fit(n_workers, per_trial, nodes)
    if fit < n_workers:
        echo(
            f"search: {n_workers} workers x {per_trial:g} GB (search.memory_per_trial_gb) do "
            f"not fit the {sum(nodes) / 2**30:.1f} GB Ray may schedule; running {fit} at once"
        )
    return fit, per_trial * 2**30


def _error_callback(run_dir: Path) -> Any:
    from ray.tune import Callback

    class ErrorLog(Callback):  # type: ignore[misc]
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
                run_dir / ERRORS,
                {
                    "trial_id": trial.trial_id,
                    "generation": cfg.get("generation"),
                    "index": cfg.get("index"),
                    "error": text[:500],
                },
            )

    return ErrorLog()


def run_search(
    cfg: dict[str, Any],
    run_dir: str | Path,
    *,
    resume: bool = False,
    address: str | None = None,
    workers: int | None = None,
    fail_on: Sequence[tuple[int, int]] = (),
    echo: Callable[[str], None] = print,
    report: bool = True,
) -> dict[str, Any]:
    """Run (or continue) a search; returns ``{"finished", "best", "evaluations"}``.
    The run directory is locked meanwhile: a second writer exits 2 (elo/rundir.py)."""
    from elo.rundir import DirLock

    retries = int(search_settings(cfg)["max_retries"])
    with DirLock(Path(run_dir).resolve(), "elo-search"):
        for attempt in range(retries + 1):
            try:
                return _run_search(
                    cfg, run_dir, resume=resume or attempt > 0, address=address,
                    workers=workers, fail_on=fail_on, echo=echo, report=report,
                )  # fmt: skip
            except Exception as exc:
                if attempt >= retries or not infrastructure_failure(exc):
                    raise
                echo(
                    f"search: Ray lost its workers ({_first_line(exc)}); resuming from "
                    f"{run_dir} (retry {attempt + 1}/{retries}, search.max_retries)"
                )
    raise AssertionError("unreachable")  # the loop returns or raises


#: what Ray Tune raises when the machine, not the trial, failed: a worker killed by
#: Ray's memory monitor while its actor started, a dead node or actor. Trial-level
#: failures are retried inside Tune (FailureConfig); these end tuner.fit() itself.
_INFRA_MARKERS = (
    "OutOfMemoryError",
    "running low on memory",
    "RayActorError",
    "ActorDiedError",
    "ActorUnavailableError",
    "NodeDiedError",
    "WorkerCrashedError",
)


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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:200]


def _run_search(
    cfg: dict[str, Any],
    run_dir: str | Path,
    *,
    resume: bool,
    address: str | None,
    workers: int | None,
    fail_on: Sequence[tuple[int, int]],
    echo: Callable[[str], None],
    report: bool,
) -> dict[str, Any]:
    import ray
    from ray import tune

    from search.failures import TrialTimeouts, guarded_trial, init_local_ray
    from search.memory import WORKER_ENV, worker_runtime_env
    from search.searcher import EvolutionSearcher
    from search.space import WeightSpace
    from search.trainable import TrialContext

    run_dir = Path(run_dir).resolve()
    s = search_settings(cfg)
    space = WeightSpace.from_config(cfg)
    strategy = strategy_for(cfg, space)
    total = s["population"] * s["generations"]
    records = list(read_jsonl(run_dir / EVALUATIONS))
    listener = RunLog(run_dir, total, len(records), echo)
    searcher = EvolutionSearcher(strategy, space, s["generations"], listener=None)
    if resume:
        if (run_dir / STATE_FILE).exists():
            searcher.restore(str(run_dir / STATE_FILE))
        searcher.requeue_live()
        searcher.listener = listener
        replayed = searcher.replay(records)
        listener.checkpoint(searcher)
        echo(
            f"resuming {run_dir}: {len(records)} evaluations finished "
            f"({replayed} replayed from the log), generation {searcher.generation + 1}"
            f"/{s['generations']}"
        )
    searcher.listener = listener
    if report:
        from search.report import write_report

        listener.on_generation = lambda: _safe_report(write_report, run_dir)

    if not searcher.finished:
        kind = (cfg.get("fitness", {}) or {}).get("kind", "zipf")
        # Ray Tune runs each trial in its own working folder: relative paths break there.
        data = cfg.setdefault("data", {})
        root = str(Path(str(data.get("root", "data/demo"))).resolve())
        data["root"] = root
        if data.get("cache"):
            data["cache"] = str(Path(str(data["cache"])).resolve())
        if kind != "synthetic":
            _prepare_data(cfg, root, s["heldout_split"])
        n_workers = workers or s["workers"]
        cpus, gpus = int(s["cpus_per_trial"]), float(s["gpus_per_trial"])
        started_ray = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False, runtime_env=worker_runtime_env())
            else:
                os.environ.update(WORKER_ENV)  # inherited by the local raylet's workers
                ncpu = os.cpu_count() or 1
                need = (n_workers or 1) * cpus
                init_local_ray(max(ncpu, need))  # loopback only (search/failures.py)
            started_ray = True
        if n_workers is None:
            n_workers = max(1, int(ray.cluster_resources().get("CPU", 1)) // cpus)
        n_workers, memory = _memory_cap(s, n_workers, echo)
        train_cfg = cfg.get("train", {}) or {}
        ctx = TrialContext(
            cfg=cfg,
            data_root=root,
            steps=int(s["steps"] if s["steps"] is not None else train_cfg.get("steps", 40)),
            seed=int(cfg.get("seed", 0)),
            device="cuda" if gpus > 0 else "cpu",
            threads=cpus,
            heldout_split=s["heldout_split"],
            heldout_fraction=float(s["heldout_fraction"]),
            heldout_bn=str(s["heldout_bn"]),
            fail_on=[(int(g), int(i)) for g, i in fail_on],
        )
        echo(
            f"search {run_dir}: {s['strategy']} over {space.dim} terms, population "
            f"{s['population']} x {s['generations']} generations, {n_workers} workers, "
            f"{ctx.steps} proxy steps, fitness {kind}"
        )
        trainable = tune.with_resources(
            tune.with_parameters(guarded_trial, ctx=ctx),
            {"cpu": cpus, "gpu": gpus, "memory": memory},
        )
        session = (
            sum(1 for p in (run_dir / "ray").glob("session-*")) if (run_dir / "ray").exists() else 0
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                num_samples=-1,
                max_concurrent_trials=n_workers,
                # a timed-out trial's worker is killed, so it must not be kept for reuse
                reuse_actors=s["trial_timeout_s"] is None,
                scheduler=(
                    TrialTimeouts(searcher, float(s["trial_timeout_s"]))
                    if s["trial_timeout_s"] is not None
                    else None
                ),
            ),
            run_config=tune.RunConfig(
                name=f"session-{session}",
                storage_path=str(run_dir / "ray"),
                verbose=0,
                callbacks=[_error_callback(run_dir)],
                failure_config=tune.FailureConfig(max_failures=int(s["max_retries"])),
            ),
        )
        try:
            tuner.fit()
        finally:
            if started_ray:
                ray.shutdown()
    if report:
        _safe_report(write_report, run_dir)
    listener.board.close()
    if searcher.halted:
        echo(f"search: {searcher.halted}")
    if not searcher.finished:
        echo(
            f"search stopped at generation {searcher.generation + 1}/{s['generations']}; "
            f"continue with: elo-search --resume {run_dir}"
        )
    elif searcher.best is not None:
        echo(
            f"best fitness {searcher.best['fitness']:.4f} (generation "
            f"{searcher.best['generation'] + 1}, individual {searcher.best['index']}); "
            f"weights in {run_dir / BEST_FILE}"
        )
    return {
        "finished": searcher.finished,
        "best": searcher.best,
        "evaluations": listener.done,
        "run_dir": run_dir,
    }


def _safe_report(fn: Callable[[Path], Any], run_dir: Path) -> None:
    try:
        fn(run_dir)
    except Exception as exc:  # plots must never stop a search
        log.warning("could not write the report for %s: %s", run_dir, exc)
