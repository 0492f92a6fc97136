"""Search throughput: one generation with 1 vs 2 Ray workers, Ray's overhead per trial,
and the time of one population-64 generation of the demo profile.

    python benchmarks/bench_search.py                      # tiny profile, population 8
    python benchmarks/bench_search.py --profile demo --population 4 --steps 4
    python benchmarks/bench_search.py --pop64              # the real target (long)
    python benchmarks/bench_search.py --fidelity --data DIR --steps 400 --rungs 0.1,0.25,1
                                     # one population-64 generation, warm start + rungs

Rows other than ``--fidelity`` run the paper's search (one score per candidate, cold
start: ``search.rungs`` and ``search.warm_start`` off whatever the profile says).
``--fidelity`` (docs/search.md) prints the trunk's training time, the generation's
wall time, how many candidates reached each rung (and the top rung's steps), and Ray's
overhead: the fraction of the workers' time in the generation not spent inside a trial,
``1 − Σ trial s / (workers × generation wall s)`` (trial s: training + scoring of every
rung the candidate reached, from the evaluations log).

Every row is measured in this run on the same data. ``overhead`` is the wall time the
workers spend on a trial beyond the trial's own (training + fitness) seconds, as a
fraction of those seconds: ``(wall × workers − Σ trial s) / Σ trial s``; it includes
starting Ray's worker processes (importing torch once per worker) and scheduling.
The synthetic row (a trial that sleeps 1 s, no training: the ``faulty_synthetic``
plug-in of tests/plugins/elo_test_faults.py) isolates Ray Tune's own cost.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TINY = [
    "objective.modalities=[rgb]",
    "objective.tasks=[reconstruction,temporal_order]",
    "train.batch_size=4",
    "fitness.ks=[4]",
]


def use_test_plugins() -> None:
    """Register the test-only fitness plug-ins (tests/plugins/elo_test_faults.py) here
    and in the Ray workers started after this call (they inherit PYTHONPATH)."""
    import sys

    from elo.search.fitness.base import FITNESSES

    plugins = str(Path(__file__).resolve().parents[1] / "tests" / "plugins")
    sys.path.insert(0, plugins)
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (plugins, os.environ.get("PYTHONPATH", "")) if p
    )
    FITNESSES.discover(force=True)


def one_generation(
    cfg: dict[str, Any], workers: int, population: int, steps: int, out: Path
) -> dict[str, float]:
    import ray

    from elo.rundir import read_jsonl
    from elo.search.run import run_search
    from elo.search.rundir import prepare_run_dir

    cfg = {**cfg, "search": {**cfg["search"], "population": population, "generations": 1}}
    cfg["search"].update(rungs=None, warm_start=False)
    cfg["search"]["steps"] = steps
    cfg["search"]["workers"] = workers
    run_dir = prepare_run_dir(cfg, out)
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        t0 = time.perf_counter()
        res = run_search(cfg, run_dir, echo=lambda s: None, report=False)
        wall = time.perf_counter() - t0
    finally:
        ray.shutdown()
    assert res["finished"], "the generation did not finish"
    recs = list(read_jsonl(run_dir / "evaluations.jsonl"))
    secs = [float(r["seconds"]) for r in recs]
    total = sum(secs)
    return {
        "wall": wall,
        "trial_mean": statistics.mean(secs),
        "trial_median": statistics.median(secs),
        "overhead": (wall * workers - total) / total,
        "failed": sum(r["status"] != "ok" for r in recs),
    }


def fidelity_generation(cfg: dict[str, Any], workers: int, out: Path) -> None:
    """One generation of ``cfg`` (warm start and rungs as set there); prints its figures."""
    import json

    import ray

    from elo.rundir import read_jsonl
    from elo.search.run import run_search
    from elo.search.rundir import prepare_run_dir
    from elo.search.warmstart import TRUNK_INFO

    run_dir = prepare_run_dir(cfg, out)
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
    try:
        t0 = time.perf_counter()
        res = run_search(cfg, run_dir, echo=print, report=True)
        wall = time.perf_counter() - t0
    finally:
        ray.shutdown()
    recs = list(read_jsonl(run_dir / "evaluations.jsonl"))
    if not res["finished"]:  # Ctrl-C: the figures of the evaluations so far
        print(f"INTERRUPTED: {len(recs)}/{cfg['search']['population']} evaluated")
    info = run_dir / TRUNK_INFO
    trunk_s = float(json.loads(info.read_text())["seconds"]) if info.exists() else 0.0
    gen_wall = wall - trunk_s
    n = max(int(r.get("rung", 1)) for r in recs)
    reached = [sum(int(r.get("rung", 1)) >= k for r in recs) for k in range(1, n + 1)]
    busy = sum(float(r["seconds"]) for r in recs)
    top_steps = max(int(r.get("metrics", {}).get("steps", 0) or 0) for r in recs)
    print(f"trunk (warm start): {trunk_s:.1f} s")
    print(f"generation wall (without the trunk): {gen_wall:.1f} s = {gen_wall / 60:.1f} min")
    print(f"total wall (trunk + generation): {wall / 60:.1f} min (target <= 10 on 2 cores)")
    print(f"candidates reaching each rung: {reached} (top rung at {top_steps or '?'} steps)")
    print(f"failed / rejected: {sum(r['status'] != 'ok' for r in recs)}")
    print(
        f"sum of trial seconds {busy:.1f}; Ray overhead 1 - busy/(workers x wall) = "
        f"{1 - busy / (workers * gen_wall):.1%}"
    )
    print(f"run directory: {run_dir}")


def _parse() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--profile", choices=["tiny", "demo"], default="tiny")
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--steps", type=int, default=None, help="default: 4 (tiny) / train.steps")
    p.add_argument("--data", help="demo dataset folder (default: make one with --clips)")
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--pop64", action="store_true", help="also run one generation of 64")
    p.add_argument(
        "--fidelity",
        action="store_true",
        help="only: one generation, warm start + rungs (demo profile)",
    )
    p.add_argument("--rungs", default="0.25,0.5,1", help="--fidelity: search.rungs")
    p.add_argument("--warm-steps", type=int, default=40, help="--fidelity: trunk steps")
    p.add_argument("--workers", type=int, default=2)
    return p.parse_args()


def _fidelity(args: argparse.Namespace, root: Path, tmp: Path) -> None:
    """``--fidelity``: one generation of the demo profile with warm start and rungs."""
    from elo.config import load_config

    demo = load_config("demo")
    demo["data"]["root"] = str(root)
    demo["search"].update(
        population=args.population,
        generations=1,
        workers=args.workers,
        warm_start=True,
        warm_start_steps=args.warm_steps,
        rungs=[float(x) for x in args.rungs.split(",")],
    )
    if args.steps:
        demo["search"]["steps"] = args.steps
    print(
        f"fidelity: population {args.population}, {args.workers} workers, search "
        f"{demo['search']}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    fidelity_generation(demo, args.workers, tmp / "fidelity")


def _generation_rows(
    args: argparse.Namespace, cfg: dict[str, Any], steps: int, tmp: Path
) -> list[tuple[str, int, dict[str, float]]]:
    """One generation of the real search and of the 1 s synthetic trial, with 1 and 2
    workers: (row name, workers, :func:`one_generation`'s figures)."""
    from elo.search.settings import fitness_section

    rows = []
    for w in (1, 2):
        r = one_generation(cfg, w, args.population, steps, tmp / f"w{w}")
        rows.append((f"real, {w} worker{'s' if w > 1 else ''}", w, r))
    use_test_plugins()
    synth = {
        **cfg,
        "fitness": {**fitness_section("synthetic"), "kind": "faulty_synthetic", "seconds": 1.0},
    }
    for w in (1, 2):
        r = one_generation(synth, w, args.population, steps, tmp / f"s{w}")
        rows.append((f"synthetic 1 s, {w} worker{'s' if w > 1 else ''}", w, r))
    return rows


def _print_rows(profile: str, rows: list[tuple[str, int, dict[str, float]]]) -> None:
    print()
    print("| run | workers | generation wall s | trial s (mean) | Ray overhead / trial |")
    print("|---|---:|---:|---:|---:|")
    for name, w, r in rows:
        over = 100 * r["overhead"]
        print(f"| {name} | {w} | {r['wall']:.1f} | {r['trial_mean']:.2f} | {over:.0f}% |")
    real1, real2 = rows[0][2], rows[1][2]
    s1, s2 = rows[2][2], rows[3][2]
    print()
    print(f"scaling 1 -> 2 workers (real):      {real1['wall'] / real2['wall']:.2f}x (ideal 2.00x)")
    print(f"scaling 1 -> 2 workers (synthetic): {s1['wall'] / s2['wall']:.2f}x (ideal 2.00x)")
    est = 64 * real2["trial_mean"] * (1 + max(0.0, real2["overhead"])) / 2
    print(
        f"population-64 generation, {profile} profile, 2 workers (estimated from the "
        f"2-worker row): {est / 60:.1f} min (target < 10, goal 5)"
    )


def _pop64(root: Path, tmp: Path) -> None:
    """``--pop64``: one measured population-64 generation of the demo profile."""
    from elo.config import load_config

    demo = load_config("demo")
    demo["data"]["root"] = str(root)
    r = one_generation(demo, 2, 64, int(demo["train"]["steps"]), tmp / "pop64")
    print(
        f"population-64 generation, demo profile, 2 workers (measured): "
        f"{r['wall'] / 60:.1f} min, trial mean {r['trial_mean']:.1f} s, "
        f"overhead {100 * r['overhead']:.0f}%"
    )


def main() -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    args = _parse()

    import torch

    from elo.config import load_config

    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_search_"))
    if args.data:
        root = Path(args.data)
    else:
        from elo.data.demo_data import make_demo

        root = make_demo(tmp / "demo", clips=args.clips, classes=4, seed=0, workers=1)
    if args.fidelity:
        _fidelity(args, root, tmp)
        return
    cfg = load_config("demo", TINY if args.profile == "tiny" else [])
    cfg["data"]["root"] = str(root)
    steps = args.steps or (4 if args.profile == "tiny" else int(cfg["train"]["steps"]))
    from elo.search.prepare import prepare_data
    from elo.search.settings import FitnessSettings
    from elo.search.space import WeightSpace

    refs = FitnessSettings.from_config(cfg).references
    prepare_data(cfg, str(root), "test", refs)  # extraction is not part of a generation

    n_terms = WeightSpace.from_config(cfg).dim
    print(
        f"profile {args.profile} ({n_terms} terms, {steps} proxy steps), "
        f"population {args.population}, data {root}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    _print_rows(args.profile, _generation_rows(args, cfg, steps, tmp))
    if args.pop64:
        _pop64(root, tmp)


if __name__ == "__main__":
    main()
