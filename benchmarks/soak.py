"""Soak test: a long real search, watched from outside, for leaks and slow-downs.

    elo-data demo --out /tmp/soak-data --clips 200
    ../shared/bin/cpu-slot python benchmarks/soak.py --data /tmp/soak-data   # 256 trials

One ``elo-search`` of the demo profile (configs/experiment/demo.yaml: warm start, three
rungs with ASHA, the xmodal fitness, real training) with ``--population`` x
``--generations`` trials (>= 256 by default) and 2 workers, its proxy steps shortened
with ``--steps``. A sampler reads, every ``--every`` seconds, each Ray worker process
that hosts a trial (``ray::ImplicitFunc`` under the driver): resident memory (VmRSS),
open file descriptors (/proc/<pid>/fd) and threads, with the number of trials that
worker has finished (``metrics.worker_pid`` of the evaluations log); and the run
folder's size with the number of trials logged.

``--resume`` is timed twice: the search is SIGKILLed (its whole process group) once
``--resume-at-start`` trials are logged and again when ``--resume-at-end`` are left,
and resumed each time; the time from the launch of ``elo-search --resume`` to its
"resuming" line (the run log replayed, the state restored) and to its "search" line
(Ray started, data and trunk ready: trials are about to run) is printed for both.

Printed tables (docs/reliability.md has one run's):

* per worker process: its trials, RSS / descriptors / threads after its first trial
  and after its last, the growth and the maximum;
* the run folder's size at each quarter of the trials, and bytes per trial over each
  quarter (linear growth: about equal);
* the resume times at the start and at the end.

Targets (checked, exit 1 when missed): per worker, the floor of its RSS between trials
(lowest sample while it had finished k trials; samples mid-trial swing by about 150 MB
with the trial's own tensors) grows <= 50 MB from its first third of trials to its
last, descriptors' and threads' floors grow <= ``--slack``, the last quarter's bytes per
trial <= 2x the second quarter's, resume time at the end <= 2x at the start.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fault_inject import cmdline, descendants  # noqa: E402

CODE = "import sys; from elo.search.cli import main; sys.exit(main(sys.argv[1:]))"


def _proc(pid: int) -> tuple[float, int, int] | None:
    """(RSS MB, open descriptors, threads) of ``pid``; None when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    vals = dict(ln.split(":", 1) for ln in status.splitlines() if ":" in ln)
    rss = float(vals["VmRSS"].split()[0]) / 1024
    return rss, fds, int(vals["Threads"])


def _size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


@dataclass
class Sampler:
    """Samples the trial workers under the driver and the run folder (module docstring)."""

    run_dir: Path
    every: float
    driver: int = 0
    #: pid -> [(trials done by it, rss MB, fds, threads)]
    workers: dict[int, list[tuple[int, float, int, int]]] = field(default_factory=dict)
    #: [(trials logged, run folder bytes)]
    sizes: list[tuple[int, int]] = field(default_factory=list)
    done: dict[int, int] = field(default_factory=dict)
    lines: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def _read_log(self) -> None:
        path = self.run_dir / "evaluations.jsonl"
        if not path.exists():
            return
        recs = path.read_text(encoding="utf-8").splitlines()
        for ln in recs[self.lines :]:
            if ln.strip():
                pid = (json.loads(ln).get("metrics") or {}).get("worker_pid")
                if pid is not None:
                    self.done[int(pid)] = self.done.get(int(pid), 0) + 1
        self.lines = len(recs)

    def sample(self) -> None:
        self._read_log()
        if self.driver:
            for pid in descendants(self.driver):
                if "ImplicitFunc" in cmdline(pid):
                    got = _proc(pid)
                    if got is not None:
                        self.workers.setdefault(pid, []).append((self.done.get(pid, 0), *got))
        self.sizes.append((self.lines, _size(self.run_dir)))

    def run(self) -> None:
        while not self.stop.wait(self.every):
            self.sample()


def _launch(args: list[str], out: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CODE, *args],
        env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _follow(proc: subprocess.Popen[str], log: Any, t0: float, marks: dict[str, float]) -> None:
    """Copy the search's output to ``log``, noting when its resume / start lines came."""
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        log.flush()
        if line.startswith("resuming ") and "resuming" not in marks:
            marks["resuming"] = time.perf_counter() - t0
        if line.startswith("search ") and "search" not in marks:
            marks["search"] = time.perf_counter() - t0


class Runner:
    def __init__(self, first: list[str], run_dir: Path, log: Any, sampler: Sampler) -> None:
        self.first, self.run_dir, self.log, self.sampler = first, run_dir, log, sampler
        self.proc: subprocess.Popen[str] | None = None
        self.marks: dict[str, float] = {}
        self.reader: threading.Thread | None = None

    def start(self, resume: bool) -> None:
        args = ["--resume", str(self.run_dir)] if resume else self.first
        self.log.write(f"\n--- elo-search {' '.join(args)}\n")
        self.marks = {}
        t0 = time.perf_counter()
        self.proc = _launch(args, self.log)
        self.sampler.driver = self.proc.pid
        self.reader = threading.Thread(
            target=_follow, args=(self.proc, self.log, t0, self.marks), daemon=True
        )
        self.reader.start()

    def logged(self) -> int:
        path = self.run_dir / "evaluations.jsonl"
        return sum(1 for ln in path.open(encoding="utf-8") if ln.strip()) if path.exists() else 0

    def wait_for(self, n: int) -> None:
        assert self.proc is not None
        while self.logged() < n:
            if self.proc.poll() is not None:
                raise RuntimeError(f"elo-search ended (exit {self.proc.returncode}) early")
            time.sleep(0.5)

    def wait_marks(self) -> dict[str, float]:
        assert self.proc is not None
        while "search" not in self.marks:
            if self.proc.poll() is not None:
                raise RuntimeError(f"elo-search ended (exit {self.proc.returncode}) early")
            time.sleep(0.05)
        return dict(self.marks)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        if self.reader is not None:
            self.reader.join(timeout=10)


def _floors(rows: list[tuple[int, float, int, int]]) -> dict[int, tuple[float, int, int]]:
    """Per number of finished trials k: the lowest RSS, descriptors and threads sampled
    while the worker had finished k (transient tensors, files and threads of the trial
    in flight come and go; a leak raises the floor)."""
    out: dict[int, tuple[float, int, int]] = {}
    for k, rss, fds, threads in rows:
        prev = out.get(k)
        cur = (rss, fds, threads)
        out[k] = cur if prev is None else tuple(map(min, prev, cur))  # type: ignore[assignment]
    return out


def _mb(x: float) -> str:
    return f"{x:.0f}"


def report(s: Sampler, resumes: list[tuple[str, int, dict[str, float]]], slack: int) -> bool:
    """Print the three tables; True when every target holds."""
    workers_ok = _worker_table(s, slack)
    sizes_ok = _size_table(s)
    return _resume_table(resumes) and workers_ok and sizes_ok


def _worker_table(s: Sampler, slack: int) -> bool:
    ok = True
    print(f"\n## Per worker process (sampled every {s.every:.0f} s)\n")
    print(
        "Floors: the lowest sample while the worker had finished k trials (between trials: "
        "what it retains); first / last: the median floor over the first / last third of "
        "its trials.\n"
    )
    print(
        "| worker pid | trials | RSS floor MB first / last | growth | RSS max MB | "
        "fds floor first / last | threads floor first / last |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for pid, rows in sorted(s.workers.items(), key=lambda kv: kv[1][0][0]):
        floors = _floors([r for r in rows if r[0] >= 1])
        if len(floors) < 2:
            continue
        ks = sorted(floors)
        head, tail = ks[: max(1, len(ks) // 3)], ks[-max(1, len(ks) // 3) :]
        first = [statistics.median(floors[k][i] for k in head) for i in range(3)]
        last = [statistics.median(floors[k][i] for k in tail) for i in range(3)]
        grow = last[0] - first[0]
        rss_max = max(r[1] for r in rows if r[0] >= 1)
        good = grow <= 50 and last[1] - first[1] <= slack and last[2] - first[2] <= slack
        ok = ok and (good or len(ks) < 10)  # a short-lived worker says little
        print(
            f"| {pid} | {ks[-1] - ks[0] + 1} (trials {ks[0]}-{ks[-1]}) | {_mb(first[0])} / "
            f"{_mb(last[0])} | {grow:+.0f} MB | {_mb(rss_max)} | {first[1]:.0f} / {last[1]:.0f} "
            f"| {first[2]:.0f} / {last[2]:.0f} |" + ("" if good else " (!)")
        )
    return ok


def _size_table(s: Sampler) -> bool:
    ok = True
    sizes = sorted(dict(s.sizes).items())
    total = sizes[-1][0] if sizes else 0
    print("\n## Run folder size\n")
    print("| trials logged | MB | KB per trial over the quarter |")
    print("|---:|---:|---:|")
    slopes = []
    prev = sizes[0] if sizes else (0, 0)
    for q in (0.25, 0.5, 0.75, 1.0):
        at = min(sizes, key=lambda x: abs(x[0] - q * total))
        slope = (at[1] - prev[1]) / max(1, at[0] - prev[0]) / 1024
        slopes.append(slope)
        print(f"| {at[0]} | {at[1] / 2**20:.1f} | {slope:.1f} |")
        prev = at
    if len(slopes) == 4 and slopes[1] > 0:
        ok = ok and slopes[3] <= 2 * slopes[1]
    return ok


def _resume_table(resumes: list[tuple[str, int, dict[str, float]]]) -> bool:
    ok = True
    print("\n## elo-search --resume\n")
    print(
        "| when | trials logged | to 'resuming' (log replayed) s | to 'search' (trials start) s |"
    )
    print("|---|---:|---:|---:|")
    for when, n, marks in resumes:
        print(
            f"| {when} | {n} | {marks.get('resuming', float('nan')):.1f} | "
            f"{marks.get('search', float('nan')):.1f} |"
        )
    if len(resumes) == 2:
        ok = ok and resumes[1][2]["search"] <= 2 * resumes[0][2]["search"]
    return ok


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dataset folder (elo-data demo --clips 200)")
    p.add_argument("--config", default="demo")
    p.add_argument("--population", type=int, default=32)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--steps", type=int, default=8, help="proxy steps at the top rung")
    p.add_argument("--warm-start-steps", type=int, default=20)
    p.add_argument("--every", type=float, default=2.0, help="sampling period (s)")
    p.add_argument("--resume-at-start", type=int, default=0, help="default: population + 4")
    p.add_argument("--resume-at-end", type=int, default=0, help="default: population / 2")
    p.add_argument("--slack", type=int, default=2, help="allowed growth of fds / threads")
    p.add_argument("--out", help="work folder (default: a temp folder)")
    p.add_argument("overrides", nargs="*", help="more config overrides for elo-search")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    work = Path(args.out or tempfile.mkdtemp(prefix="elo-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    run_dir = work / "run"
    total = args.population * args.generations
    at_start = args.resume_at_start or args.population + 4
    at_end = total - (args.resume_at_end or args.population // 2)
    first = ["--config", args.config, "--data", args.data]
    first += ["--population", str(args.population), "--generations", str(args.generations)]
    first += ["--steps", str(args.steps), "--workers", "2", "--out", str(run_dir)]
    first += [f"search.warm_start_steps={args.warm_start_steps}", *args.overrides]
    print(
        f"soak: {total} trials ({args.population} x {args.generations}), {args.steps} proxy "
        f"steps, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
        f"{time.strftime('%Y-%m-%d %H:%M')}; output in {work / 'elo-search.out'}",
        flush=True,
    )
    t0 = time.perf_counter()
    sampler = Sampler(run_dir, args.every)
    thread = threading.Thread(target=sampler.run, daemon=True)
    thread.start()
    resumes: list[tuple[str, int, dict[str, float]]] = []
    with open(work / "elo-search.out", "w", encoding="utf-8") as log:
        r = Runner(first, run_dir, log, sampler)
        r.start(resume=False)
        for when, n in (("start", at_start), ("end", at_end)):
            r.wait_for(n)
            r.kill()
            logged = r.logged()
            r.start(resume=True)
            resumes.append((when, logged, r.wait_marks()))
            print(f"resume at the {when} ({logged} trials logged): {resumes[-1][2]}", flush=True)
        assert r.proc is not None
        rc = r.proc.wait()
        if r.reader is not None:
            r.reader.join(timeout=30)
    sampler.stop.set()
    thread.join()
    sampler.sample()
    recs = [json.loads(x) for x in (run_dir / "evaluations.jsonl").read_text().splitlines()]
    keys = {(r["generation"], r["index"]) for r in recs}
    print(
        f"\nsearch exit {rc}: {len(recs)} evaluations ({len(keys)} distinct of {total}), "
        f"{sum(r['status'] != 'ok' for r in recs)} not ok, "
        f"{statistics.mean(r['seconds'] for r in recs):.1f} s per trial, "
        f"{(time.perf_counter() - t0) / 60:.1f} min in all, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    samples = {"workers": {str(k): v for k, v in sampler.workers.items()}, "sizes": sampler.sizes}
    (work / "samples.json").write_text(json.dumps(samples), encoding="utf-8")  # raw, for re-reading
    ok = report(sampler, resumes, args.slack) and rc == 0 and len(keys) == total
    print(f"\ntargets {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
