"""Ray Tune's overhead per search trial, beside the same trial in-process (docs/throughput.md).

One proxy trial (search/trainable.py :func:`evaluate`: proxy training + fitness on the
held-out clips) of the demo profile is timed, in one run, three ways for each step
count:

* ``in-process``: :func:`evaluate` called in this process, its own ``seconds``;
* ``tune reuse``: the same call as a Ray Tune function trial, trials one after the
  other on one worker that Tune keeps (``reuse_actors=True``, what elo-search uses when
  ``search.trial_timeout_s`` is unset, search/run.py);
* ``tune fresh``: the same with a new worker process per trial (``reuse_actors=False``,
  what elo-search uses with a trial time limit).

For a Tune trial, ``wall`` is the driver's time from Tune's ``on_trial_start`` to
``on_trial_complete`` and ``compute`` the trial's own ``seconds`` (as the search
records it); ``overhead = wall - compute`` is split into ``start`` (trial started ->
trainable entered: actor start, scheduling), ``import`` (entering -> torch and elo
imported in the worker) and ``end`` (result sent -> Tune marks the trial complete:
result processing, bookkeeping). ``gap`` is the driver's idle time between one trial's
completion and the next one's start. A cProfile of in-process calls then splits
``compute`` into data loading (train loader, held-out clips) and training / scoring.

    python benchmarks/bench_throughput.py --data /path/to/demo [--steps 10,100] [--trials 3]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from typing import Any

#: functions of one trial whose cumulative time the profile shows
PROFILED = (
    "train_model",
    "_training_loader",
    "_heldout",
    "heldout_clips",
    "open_dataset",
    "_score",
    "fitness_embed",
    "build_fitness",
)


def setup(data: str, overrides: list[str]) -> tuple[Any, dict[str, float]]:
    """The demo profile's trial context on ``data`` (extracted first) and one λ."""
    from elo.config import load_config
    from elo.model.objective import terms_from_config
    from elo.search.prepare import absolute_data_paths, drop_absent_modalities, prepare_data
    from elo.search.settings import FitnessSettings, SearchSettings
    from elo.search.trainable import TrialContext

    cfg = load_config("demo", overrides)
    cfg["data"]["root"] = data
    drop_absent_modalities(cfg, print)
    root = absolute_data_paths(cfg)
    settings = SearchSettings.from_config(cfg)
    prepare_data(cfg, root, settings.heldout_split, FitnessSettings.from_config(cfg).references)
    ctx = TrialContext.from_settings(cfg, settings, root)
    return ctx, {str(t): 0.5 for t in terms_from_config(cfg)}


def in_process(ctx: Any, weights: dict[str, float], n: int) -> list[dict[str, float]]:
    """``n`` calls of :func:`evaluate` here; the first one with no held-out clips cached."""
    from elo.search import trainable

    trainable._HELDOUT.clear()
    rows = []
    for i in range(n):
        t0 = time.perf_counter()
        rep = trainable.evaluate(ctx, weights, index=i)
        rows.append({"wall": time.perf_counter() - t0, "compute": float(rep["seconds"])})
    return rows


def timed_trial(config: dict[str, Any], ctx: Any) -> None:
    """A Tune function trial: :func:`search.trainable.evaluate` with timestamps."""
    t_enter = time.time()
    import torch  # noqa: F401  what evaluate imports on its first call, timed apart
    from ray import tune

    import elo.search.fitness  # noqa: F401
    import elo.search.fitness.data  # noqa: F401
    import elo.train.trainer  # noqa: F401
    from elo.search.trainable import evaluate

    t_imported = time.time()
    rep = evaluate(ctx, config["weights"], index=int(config["index"]))
    tune.report(
        {
            "compute": float(rep["seconds"]),
            "t_enter": t_enter,
            "t_imported": t_imported,
            "t_exit": time.time(),
            "pid": os.getpid(),
        }
    )


def through_tune(
    ctx: Any, weights: dict[str, float], n: int, reuse: bool
) -> tuple[list[dict[str, float]], float]:
    """``n`` trials one after the other through a Tuner; per-trial rows and fit()'s wall."""
    import tempfile

    from ray import tune

    stamps: dict[str, dict[str, float]] = {}

    class Stamps(tune.Callback):
        def on_trial_start(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            stamps.setdefault(trial.trial_id, {})["start"] = time.time()

        def on_trial_complete(self, iteration: int, trials: Any, trial: Any, **info: Any) -> None:
            stamps[trial.trial_id]["complete"] = time.time()
            stamps[trial.trial_id].update(trial.last_result)

    trainable = tune.with_resources(
        tune.with_parameters(timed_trial, ctx=ctx), {"cpu": 1, "memory": 2 * 2**30}
    )
    with tempfile.TemporaryDirectory(prefix="elo-bench-tune-") as storage:
        tuner = tune.Tuner(
            trainable,
            param_space={"weights": weights, "index": tune.grid_search(list(range(n)))},
            tune_config=tune.TuneConfig(max_concurrent_trials=1, reuse_actors=reuse),
            run_config=tune.RunConfig(storage_path=storage, verbose=0, callbacks=[Stamps()]),
        )
        t0 = time.perf_counter()
        tuner.fit()
        fit = time.perf_counter() - t0
    runs = sorted(stamps.values(), key=lambda s: s["start"])
    rows = []
    for k, s in enumerate(runs):
        rows.append(
            {
                "wall": s["complete"] - s["start"],
                "compute": s["compute"],
                "start": s["t_enter"] - s["start"],
                "import": s["t_imported"] - s["t_enter"],
                "end": s["complete"] - s["t_exit"],
                "gap": s["start"] - runs[k - 1]["complete"] if k else float("nan"),
                "pid": s["pid"],
            }
        )
    return rows, fit


def profile(ctx: Any, weights: dict[str, float]) -> dict[str, float]:
    """Cumulative seconds of :data:`PROFILED` in one cold (held-out clips not cached)
    and one warm in-process trial: where the in-trial time goes."""
    from elo.search import trainable

    out: dict[str, float] = {}
    for label, clear in (("cold", True), ("warm", False)):
        if clear:
            trainable._HELDOUT.clear()
        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.runcall(trainable.evaluate, ctx, weights)
        out[f"{label} total"] = time.perf_counter() - t0
        stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
        for (_file, _line, name), (_cc, _nc, _tt, ct, _callers) in stats.items():
            if name in PROFILED:
                out[f"{label} {name}"] = max(out.get(f"{label} {name}", 0.0), ct)
    return out


def summary(name: str, rows: list[dict[str, float]]) -> str:
    def med(key: str, part: list[dict[str, float]]) -> float:
        vals = [r[key] for r in part if key in r and r[key] == r[key]]
        return statistics.median(vals) if vals else float("nan")

    first, rest = rows[:1], rows[1:] or rows[:1]
    cols = ("wall", "compute", "start", "import", "end", "gap")
    cells = []
    for part in (first, rest):
        wall, comp = med("wall", part), med("compute", part)
        over = wall - comp
        cells.append(
            " ".join(f"{med(c, part):7.2f}" for c in cols)
            + f" {over:7.2f} {100 * over / wall:6.1f}%"
        )
    return f"{name:12s} first {cells[0]}\n{'':12s} later {cells[1]}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", required=True, help="demo dataset folder (elo-data demo)")
    p.add_argument("--steps", default="10,100", help="proxy step counts, comma-separated")
    p.add_argument("--trials", type=int, default=3, help="trials per row")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")
    args = p.parse_args(argv)
    from elo.search.failures import init_local_ray

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ctx, weights = setup(args.data, args.overrides)
    t0 = time.perf_counter()
    init_local_ray(1)
    print(
        f"ray.init: {time.perf_counter() - t0:.2f} s; {len(weights)} terms, "
        f"batch {ctx.cfg['train']['batch_size']}, load {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )
    head = " ".join(f"{c:>7s}" for c in ("wall", "compute", "start", "import", "end", "gap"))
    for steps in (int(s) for s in args.steps.split(",")):
        ctx.steps = steps
        print(
            f"\n{steps} steps, {args.trials} trials each; medians in s\n"
            f"{'':18s} {head} {'over':>7s} {'over%':>7s}"
        )
        here = in_process(ctx, weights, args.trials)
        print(summary("in-process", here))
        warm = statistics.median(r["compute"] for r in here[1:] or here)
        for name, reuse in (("tune reuse", True), ("tune fresh", False)):
            rows, fit = through_tune(ctx, weights, args.trials, reuse)
            print(summary(name, rows))
            per = fit / len(rows)
            print(
                f"{'':12s} fit() {fit:.2f} s for {len(rows)} trials ({per:.2f} s/trial; "
                f"in-process warm {warm:.2f} s: +{100 * (per - warm) / per:.0f}% of the "
                f"trial's time), Σ compute {sum(r['compute'] for r in rows):.2f} s, "
                f"workers {len({r['pid'] for r in rows})}"
            )
        prof = profile(ctx, weights)
        print("profile (cumulative s): " + ", ".join(f"{k} {v:.2f}" for k, v in prof.items()))


if __name__ == "__main__":
    main()
