"""Fault injection on a real search: SIGKILL ``elo-search``, a Ray worker in the middle of
a trial, or the whole local Ray runtime, at random moments; nothing may be lost or
repeated.

    python benchmarks/fault_inject.py --kills 10                 # mode search
    python benchmarks/fault_inject.py --mode worker --kills 4
    python benchmarks/fault_inject.py --mode runtime --kills 2

The search is the demo profile's (configs/experiment/demo.yaml: warm start, three rungs
with ASHA, the xmodal fitness, real training), on a demo dataset written for the run
(``--clips``) unless ``--data`` is given, with ``--population`` x ``--generations``
and 2 workers; ``--fitness`` (a configs/fitness name or a YAML file) and trailing
``key=value`` overrides change it. Each ``elo-search`` starts its own private Ray
runtime, as a user's would. Modes:

* ``search``: each round starts ``elo-search`` (``--resume`` once the run directory
  exists) and SIGKILLs its whole process group (the driver and its Ray runtime) after a
  random number (0-3) of new evaluations plus a random part of a trial, or, for 0, a
  random time into start-up (data, Ray, the warm-start trunk). After the last kill a
  final ``--resume`` completes the search.
* ``worker``: one ``elo-search`` runs to its end while, ``--kills`` times, the Ray
  worker process of a running trial (a ``ray::ImplicitFunc`` actor under the driver) is
  SIGKILLed a random time into the trial, as the kernel's OOM killer would. Ray Tune
  restarts the trial (``search.max_retries``); it must not be recorded as failed.
* ``runtime``: ``--kills`` times, every process under the ``elo-search`` driver (the
  GCS, the raylet, its agents and all workers) is SIGKILLed mid-generation, the driver
  itself left alone. The search must finish on its own: the driver notices the lost
  runtime, starts a new one and resumes from the run directory (search/failures.py,
  ``RuntimeWatch``). A driver that ends instead is resumed with ``--resume`` and one
  that makes no progress for ``--hang`` seconds is killed and resumed, so that the
  counts can be printed; either fails the run.

Checks, for every mode:

* **lost**: evaluations that were in the log at some snapshot but not in the final
  log, plus (generation, index) pairs of the whole search missing from it;
* **repeated**: (generation, index) pairs logged more than once;
* **failed**: evaluations not ``ok`` (a killed worker or runtime is the machine's
  failure, never the candidate's);
* **state**: the final log replays into exactly the saved strategy state: every record
  is the strategy's proposal at its (generation, index) given the scores before it, so
  the search is in the state of an uninterrupted search that got the same scores.

Exit status 0 only when every kill landed, with 0 lost, 0 repeated, 0 failed and a
matching state (and, in mode ``runtime``, a driver that went on by itself after every
kill).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CODE = "import sys; from elo.search.cli import main; sys.exit(main(sys.argv[1:]))"
#: the process title (cmdline) of a Ray actor that runs a Ray Tune function trial
TRIAL_ACTOR = "ImplicitFunc"


def _log(run_dir: Path) -> list[str]:
    path = run_dir / "evaluations.jsonl"
    if not path.exists():
        return []
    return [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]


def descendants(root: int) -> list[int]:
    """Every live process under ``root`` (not ``root`` itself), from /proc."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    out: list[int] = []
    todo = [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def trial_workers(driver: int) -> list[int]:
    """The Ray worker processes under ``driver`` that host a trial."""
    return sorted(p for p in descendants(driver) if TRIAL_ACTOR in cmdline(p))


def _kill(pids: list[int]) -> int:
    n = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            n += 1
        except ProcessLookupError:
            pass
    return n


class Search:
    """The ``elo-search`` runs of one fault-injection session (one run directory)."""

    def __init__(self, args: argparse.Namespace, run_dir: Path, data: Path | None) -> None:
        self.run_dir = run_dir
        self.first = [
            "--config",
            args.config,
            "--population",
            str(args.population),
            "--generations",
            str(args.generations),
            "--workers",
            "2",
            "--seed",
            str(args.seed_search),
            "--out",
            str(run_dir),
        ]
        if data is not None:
            self.first += ["--data", str(data)]
        if args.fitness:
            self.first += ["--fitness", args.fitness]
        self.first += list(args.overrides)
        self.out = open(run_dir.parent / "elo-search.out", "ab")  # noqa: SIM115
        self.launches = 0

    def launch(self) -> subprocess.Popen[bytes]:
        resume = (self.run_dir / "config.yaml").exists()
        more = ["--resume", str(self.run_dir)] if resume else self.first
        self.out.write(f"\n--- launch {self.launches + 1}: {' '.join(more)}\n".encode())
        self.out.flush()
        self.launches += 1
        return subprocess.Popen(
            [sys.executable, "-c", CODE, *more],
            env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill of it takes Ray too
        )

    def trial_seconds(self) -> float:
        """Mean seconds of the trials logged so far (2 s before the first)."""
        secs = [float(json.loads(x).get("seconds") or 0) for x in _log(self.run_dir)[-8:]]
        return sum(secs) / len(secs) if secs else 2.0


def wait_log(
    s: Search,
    proc: subprocess.Popen[bytes],
    n: int,
    *,
    trials: bool = False,
    deadline_s: float = 1800,
) -> bool:
    """Poll until the log holds ``n`` evaluations (and, with ``trials``, a trial worker
    runs): True; False when ``proc`` ends first or ``deadline_s`` passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if len(_log(s.run_dir)) >= n and (not trials or trial_workers(proc.pid)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.05)
    return False


def mode_search(s: Search, kills: int, rng: random.Random, max_delay: float) -> dict[str, Any]:
    snapshots: list[list[str]] = []
    grown, done = True, 0
    for k in range(kills):
        after = rng.randint(0, 3)  # new evaluations to wait for (0: kill in start-up)
        start, t_launch = len(_log(s.run_dir)), time.time()
        proc = s.launch()
        if not wait_log(s, proc, start + after):
            print(f"kill {k + 1}: the search ended (exit {proc.returncode}) before the kill")
            break
        jitter = rng.uniform(0, 1.5 * s.trial_seconds()) if after else rng.uniform(1, max_delay)
        time.sleep(jitter)
        if proc.poll() is not None:
            print(f"kill {k + 1}: the search ended (exit {proc.returncode}) before the kill")
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        done += 1
        log = _log(s.run_dir)
        grown = grown and (not snapshots or log[: len(snapshots[-1])] == snapshots[-1])
        snapshots.append(log)
        print(
            f"kill {k + 1}: SIGKILL of elo-search {time.time() - t_launch:.1f} s after launch "
            f"({after} new evaluations + {jitter:.2f} s), {len(log)} evaluations logged",
            flush=True,
        )
    rc = s.launch().wait(timeout=3600)
    return {"kills": done, "rc": rc, "snapshots": snapshots, "grown": grown}


def mode_worker(s: Search, kills: int, rng: random.Random) -> dict[str, Any]:
    proc = s.launch()
    snapshots: list[list[str]] = []
    done = 0
    for k in range(kills):
        start = len(_log(s.run_dir))
        after = rng.randint(0, 2)
        if not wait_log(s, proc, start + after, trials=True):
            print(f"kill {k + 1}: the search ended (exit {proc.returncode}) before the kill")
            break
        time.sleep(rng.uniform(0.2, 1.0) * s.trial_seconds())
        workers = trial_workers(proc.pid)
        if proc.poll() is not None or not workers:
            continue
        victim = rng.choice(workers)
        _kill([victim])
        done += 1
        snapshots.append(_log(s.run_dir))
        print(
            f"kill {k + 1}: SIGKILL of trial worker {victim} ({len(workers)} running), "
            f"{len(snapshots[-1])} evaluations logged",
            flush=True,
        )
    rc = proc.wait(timeout=3600)
    return {"kills": done, "rc": rc, "snapshots": snapshots, "grown": True}


def mode_runtime(s: Search, kills: int, rng: random.Random, hang_s: float) -> dict[str, Any]:
    proc = s.launch()
    snapshots: list[list[str]] = []
    done, resumes, hung = 0, 0, 0
    total = _total(s)
    for k in range(kills):
        start = len(_log(s.run_dir))
        # mid-generation: after at least one new evaluation, with trials running
        if not wait_log(s, proc, start + 1, trials=True):
            print(f"kill {k + 1}: the search ended (exit {proc.returncode}) before the kill")
            break
        time.sleep(rng.uniform(0.2, 1.0) * s.trial_seconds())
        if proc.poll() is not None:
            break
        victims = descendants(proc.pid)
        n = _kill(victims)
        done += 1
        snapshots.append(_log(s.run_dir))
        print(
            f"kill {k + 1}: SIGKILL of the Ray runtime ({n} processes under the driver), "
            f"{len(snapshots[-1])} evaluations logged",
            flush=True,
        )
        # the driver goes on (a new evaluation is logged) or ends; an ended one is resumed
        n_log = len(snapshots[-1])
        if not wait_log(s, proc, n_log + 1, deadline_s=hang_s):
            if proc.poll() is None:  # neither progress nor an end: hung
                print(f"  no progress for {hang_s:.0f} s: the driver hung; killed", flush=True)
                hung += 1
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            if len(_log(s.run_dir)) < total:
                print(f"  the driver ended (exit {proc.returncode}); resuming it", flush=True)
                resumes += 1
                proc = s.launch()
    rc = proc.wait(timeout=3600)
    return {
        "kills": done,
        "rc": rc,
        "snapshots": snapshots,
        "grown": True,
        "resumes": resumes,
        "hung": hung,
    }


def _total(s: Search) -> int:
    i = s.first.index("--population")
    j = s.first.index("--generations")
    return int(s.first[i + 1]) * int(s.first[j + 1])


def check(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """lost / repeated / failed and the replayed state (module docstring)."""
    from elo.search.rundir import load_run_config
    from elo.search.searcher import EvolutionSearcher
    from elo.search.settings import SearchSettings
    from elo.search.space import WeightSpace
    from elo.search.strategies import strategy_for

    cfg = load_run_config(run_dir)
    settings = SearchSettings.from_config(cfg)
    final = _log(run_dir)
    recs = [json.loads(x) for x in final]
    keys = [(int(r["generation"]), int(r["index"])) for r in recs]
    expected = {(g, i) for g in range(settings.generations) for i in range(settings.population)}
    seen = {x for snap in result["snapshots"] for x in snap}
    lost = len(seen - set(final)) + len(expected - set(keys))
    repeated = len(keys) - len(set(keys))
    failed = sum(1 for r in recs if r.get("status") != "ok")
    space = WeightSpace.from_config(cfg, settings.mapping)
    ref = EvolutionSearcher(
        strategy_for(settings, space, seed=int(cfg.get("seed", 0))),
        space,
        settings.generations,
        rungs=max([int(r.get("rung", 1)) for r in recs] + [len(settings.rungs or [1])]),
    )
    same = False
    try:
        same = ref.replay(recs) == len(expected) and ref.finished
        state = json.loads((run_dir / "search_state.json").read_text(encoding="utf-8"))
        same = same and state["strategy"] == ref.strategy.state()
    except Exception as exc:  # a mismatching log is the failure being measured
        print(f"replay failed: {exc}")
    return {
        "evaluations": len(final),
        "total": len(expected),
        "lost": lost,
        "repeated": repeated,
        "failed": failed,
        "same": same,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mode", choices=["search", "worker", "runtime"], default="search")
    p.add_argument("--kills", type=int, default=10)
    p.add_argument("--seed", type=int, default=0, help="seed of the kill moments")
    p.add_argument("--seed-search", type=int, default=1, help="the search's --seed")
    p.add_argument("--config", default="demo")
    p.add_argument("--population", type=int, default=8)
    p.add_argument("--generations", type=int, default=6)
    p.add_argument("--fitness", help="configs/fitness name or YAML file (default: the config's)")
    p.add_argument("--data", help="dataset folder (default: a demo dataset of --clips clips)")
    p.add_argument("--no-data", action="store_true", help="no dataset (a λ-scoring fitness)")
    p.add_argument("--clips", type=int, default=48)
    p.add_argument("--max-delay", type=float, default=20.0, help="latest start-up kill (s)")
    p.add_argument(
        "--hang",
        type=float,
        default=600.0,
        help="runtime mode: seconds without progress after a kill before the driver counts as hung",
    )
    p.add_argument("--out", help="work folder (default: a temp folder)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value for elo-search")
    args = p.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")

    work = Path(args.out or tempfile.mkdtemp(prefix="elo-fault-"))
    work.mkdir(parents=True, exist_ok=True)
    data: Path | None = Path(args.data) if args.data else None
    if data is None and not args.no_data:
        from elo.data.demo_data import make_demo

        data = make_demo(work / "demo", clips=args.clips, seed=0, workers=1)
    run_dir = work / "run"
    s = Search(args, run_dir, data)
    rng = random.Random(args.seed)
    t0 = time.time()
    print(
        f"fault injection, mode {args.mode}: {args.kills} kills, population "
        f"{args.population} x {args.generations} generations, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; log {work / 'elo-search.out'}",
        flush=True,
    )
    if args.mode == "search":
        result = mode_search(s, args.kills, rng, args.max_delay)
    elif args.mode == "worker":
        result = mode_worker(s, args.kills, rng)
    else:
        result = mode_runtime(s, args.kills, rng, args.hang)
    c = check(run_dir, result)
    print(
        f"fault injection ({args.mode}): {result['kills']} SIGKILLs, {s.launches} launches "
        f"of elo-search, last exit {result['rc']}, {c['evaluations']}/{c['total']} "
        f"evaluations, {c['failed']} not ok, log only grew: {result['grown']}, state "
        f"matches an uninterrupted search: {c['same']}, {time.time() - t0:.0f} s"
    )
    if args.mode == "runtime":
        print(
            f"after a runtime kill the driver went on by itself "
            f"{result['kills'] - result['resumes']} times, ended {result['resumes']} times "
            f"(resumed with --resume), hung {result['hung']} times"
        )
    print(f"lost {c['lost']} / repeated {c['repeated']}")
    ok = result["rc"] == 0 and c["lost"] == 0 and c["repeated"] == 0 and c["failed"] == 0
    # a lost runtime is the search's to survive: no --resume by hand, no hang
    ok = ok and result.get("resumes", 0) == 0 and result.get("hung", 0) == 0
    if result["kills"] < args.kills:
        print(f"only {result['kills']} of {args.kills} kills landed: use a longer search")
        ok = False
    return 0 if ok and c["same"] and result["grown"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
