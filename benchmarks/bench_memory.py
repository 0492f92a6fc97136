"""Trial-worker memory over a long search: is a reused Ray worker's memory flat?

    python benchmarks/bench_memory.py                       # 32 trials, demo profile
    python benchmarks/bench_memory.py --population 32 --generations 2 --data data/demo

Runs a real ``elo-search`` (demo profile, real training and fitness, a real local Ray
runtime with 2 workers) and prints, for every trial worker, its resident memory after
each of its trials (``worker_rss_mb``, measured inside the worker after the trial's
clean-up) and the trial's peak (``trial_peak_mb``). The target (docs/results.md, Memory): growth
after each worker's first trial <= 50 MB in total, and no worker killed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/demo", help="demo dataset (made if missing)")
    ap.add_argument("--population", type=int, default=16)
    ap.add_argument("--generations", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--budget-mb", type=float, default=50.0)
    ap.add_argument("overrides", nargs="*", help="extra config overrides key=value")
    a = ap.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    from elo.config import apply_overrides, load_config
    from elo.rundir import read_jsonl
    from elo.search.run import run_search
    from elo.search.rundir import prepare_run_dir

    data = Path(a.data).resolve()
    if not data.exists():
        from elo.data.demo_data import make_demo

        make_demo(data)
    cfg = load_config("demo")
    cfg = apply_overrides(
        cfg,
        [
            f"data.root={data}",
            f"search.population={a.population}",
            f"search.generations={a.generations}",
            f"search.workers={a.workers}",
            *a.overrides,
        ],
    )
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = prepare_run_dir(cfg, Path(tmp) / "run")
        t0 = time.perf_counter()
        res = run_search(cfg, run_dir, echo=lambda s: None, report=False)
        wall = time.perf_counter() - t0
        recs = list(read_jsonl(run_dir / "evaluations.jsonl"))
        errors = (
            list(read_jsonl(run_dir / "errors.jsonl"))
            if (run_dir / "errors.jsonl").exists()
            else []
        )
    by_pid: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for r in recs:  # evaluations.jsonl is in completion order
        m = r.get("metrics", {})
        if "worker_pid" in m:
            by_pid[int(m["worker_pid"])].append(
                (float(m["worker_rss_mb"]), float(m["trial_peak_mb"]))
            )
    print(
        f"{len(recs)} trials in {wall:.0f} s, {len(by_pid)} worker processes, "
        f"{len(errors)} failed trials, finished={res['finished']}"
    )
    worst = 0.0
    for pid, rows in sorted(by_pid.items()):
        rss = [r for r, _ in rows]
        growth = max(rss[1:], default=rss[0]) - rss[0]
        worst = max(worst, growth)
        print(
            f"worker {pid}: {len(rows)} trials; RSS MB after each: "
            + " ".join(f"{x:.0f}" for x in rss)
        )
        print(
            f"  growth after the first trial: {growth:+.0f} MB (max - first); "
            f"last - first {rss[-1] - rss[0]:+.0f} MB; "
            f"trial peak median {statistics.median(p for _, p in rows):.0f} MB, "
            f"max {max(p for _, p in rows):.0f} MB"
        )
    ok = worst <= a.budget_mb and not errors and len(recs) == a.population * a.generations
    print(f"worst growth {worst:+.0f} MB (budget {a.budget_mb:.0f} MB): {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
