"""Fault injection: SIGKILL a real ``elo-search`` at random moments, resume each time.

Each round starts ``elo-search`` (``--resume`` once the run directory exists; each
run starts its own private Ray runtime, as a user's would) and SIGKILLs its whole
process group at a random moment: after a random number (0-3) of new evaluations plus
a random fraction of a trial, or, for 0, a random time into start-up. It checks that
the evaluation log only ever grew (nothing finished was lost or rewritten). After the
last kill a final ``--resume`` completes the search. Then:

* **lost** = evaluations that were in the log at some snapshot but not in the final
  log, plus (generation, index) pairs of an uninterrupted search missing from it;
* **repeated** = (generation, index) pairs logged more than once;
* the final log must replay into exactly the state of an uninterrupted search.

    python benchmarks/fault_inject.py --kills 10          # prints lost / repeated

The fitness is the built-in ``synthetic`` stand-in (a sleep, no training), so the
trials are short and many kills land mid-trial, mid-generation and mid-write.
Exit status 0 only for 0 lost / 0 repeated and a matching final state.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

CODE = "import sys; from search.cli import main; sys.exit(main(sys.argv[1:]))"


def _log(run_dir: Path) -> list[str]:
    path = run_dir / "evaluations.jsonl"
    if not path.exists():
        return []
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--population", type=int, default=6)
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--seconds", type=float, default=0.3, help="synthetic trial length")
    p.add_argument("--max-delay", type=float, default=10.0, help="latest start-up kill (s)")
    p.add_argument("--out", default=None, help="run directory (default: a temp folder)")
    args = p.parse_args()

    import tempfile

    from elo.search.rundir import load_run_config
    from elo.search.searcher import EvolutionSearcher
    from elo.search.settings import SearchSettings
    from elo.search.space import WeightSpace
    from elo.search.strategies import strategy_for

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    run_dir = Path(args.out or tempfile.mkdtemp(prefix="elo-fault-")) / "run"
    rng = random.Random(args.seed)
    first = [
        "--fitness", "synthetic", "--population", str(args.population), "--generations",
        str(args.generations), "--workers", "2", "--seed", "1", "--out", str(run_dir),
        f"fitness.seconds={args.seconds}",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def launch() -> subprocess.Popen[bytes]:
        more = first if not (run_dir / "config.yaml").exists() else ["--resume", str(run_dir)]
        return subprocess.Popen(
            [sys.executable, "-c", CODE, *more],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: the kill takes Ray too
        )

    snapshots: list[list[str]] = []
    grown_ok = True
    kills = 0
    t0 = time.time()
    for k in range(args.kills):
        after = rng.randint(0, 3)  # new evaluations to wait for (0: kill in start-up)
        jitter = rng.uniform(0, args.seconds * 1.5) if after else rng.uniform(1, args.max_delay)
        start, t_launch = len(_log(run_dir)), time.time()
        proc = launch()
        while proc.poll() is None and len(_log(run_dir)) < start + after:
            time.sleep(0.02)
        time.sleep(jitter)
        if proc.poll() is not None:
            print(f"kill {k + 1}: the search ended (exit {proc.returncode}) before the kill")
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
        log = _log(run_dir)
        if snapshots and log[: len(snapshots[-1])] != snapshots[-1]:
            grown_ok = False
        snapshots.append(log)
        print(
            f"kill {k + 1}: SIGKILL {time.time() - t_launch:.1f} s after launch "
            f"({after} new evaluations + {jitter:.2f} s), {len(log)} evaluations logged"
        )
    proc = launch()
    rc = proc.wait(timeout=900)
    final = _log(run_dir)
    total = args.population * args.generations
    recs = [json.loads(x) for x in final]
    keys = [(int(r["generation"]), int(r["index"])) for r in recs]
    expected = {(g, i) for g in range(args.generations) for i in range(args.population)}
    seen_anywhere = {x for snap in snapshots for x in snap}
    lost = len(seen_anywhere - set(final)) + len(expected - set(keys))
    repeated = len(keys) - len(set(keys))
    cfg = load_run_config(run_dir)
    space = WeightSpace.from_config(cfg)
    strategy = strategy_for(SearchSettings.from_config(cfg), space, seed=cfg.get("seed", 0))
    ref = EvolutionSearcher(strategy, space, args.generations)
    same = False
    try:
        same = ref.replay(recs) == total and ref.finished
        state = json.loads((run_dir / "search_state.json").read_text(encoding="utf-8"))
        same = same and state["strategy"] == ref.strategy.state()
    except Exception as exc:  # a mismatching log is the failure being measured
        print(f"replay failed: {exc}")
    print(
        f"fault injection: {kills} SIGKILLs, final resume exit {rc}, {len(final)}/{total} "
        f"evaluations, log only grew: {grown_ok}, state matches an uninterrupted search: "
        f"{same}, {time.time() - t0:.0f} s"
    )
    print(f"lost {lost} / repeated {repeated}")
    ok = rc == 0 and lost == 0 and repeated == 0 and grown_ok and same
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
