"""Run a command and report its wall time and peak memory, Ray workers included.

    python benchmarks/watch_memory.py -- make demo

Samples every process in the command's tree (Ray's raylet and its trial workers are
children of the driver) once per second from ``/proc`` and prints the peak of the
tree's summed resident memory (RSS; pages shared between processes, e.g. torch's
libraries, count once per process, so this overstates the true total) and the peak of
the single largest process. Linux only.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        pid = int(stat.parent.name)
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        kids.setdefault(ppid, []).append(pid)
    return kids


def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss(root: int) -> tuple[float, float, int]:
    kids, todo, seen = _children(), [root], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo.extend(kids.get(p, []))
    rss = [_rss_mb(p) for p in seen]
    return sum(rss), max(rss, default=0.0), len(seen)


def main() -> int:
    args = sys.argv[1:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(__doc__)
        return 2
    t0 = time.perf_counter()
    proc = subprocess.Popen(args)
    peak_sum = peak_one = 0.0
    peak_n = 0
    while proc.poll() is None:
        s, one, n = tree_rss(proc.pid)
        peak_sum, peak_one, peak_n = max(peak_sum, s), max(peak_one, one), max(peak_n, n)
        time.sleep(1.0)
    wall = time.perf_counter() - t0
    print(
        f"watch_memory: exit {proc.returncode}, wall {wall / 60:.1f} min, peak tree RSS "
        f"{peak_sum / 1024:.2f} GB (sum over up to {peak_n} processes), largest process "
        f"{peak_one / 1024:.2f} GB",
        flush=True,
    )
    return int(proc.returncode)


if __name__ == "__main__":
    raise SystemExit(main())
