"""Search hardening on a real Ray runtime: a worker killed mid-trial is retried and never
recorded; a trial past ``search.trial_timeout_s`` gets the worst fitness and its
generation completes; the private Ray runtime listens on loopback only; a second
``elo-search`` on one run directory exits 2. Faults come from the test-only fitness
plug-in ``faulty_synthetic`` (tests/plugins/elo_test_faults.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from elo.config import load_config  # noqa: E402
from elo.rundir import DirLock, read_jsonl  # noqa: E402
from elo.search.failures import init_local_ray  # noqa: E402
from elo.search.run import run_search  # noqa: E402
from elo.search.rundir import EVALUATIONS, prepare_run_dir  # noqa: E402
from elo.search.settings import fitness_section  # noqa: E402

pytestmark = pytest.mark.slow


def synthetic_cfg(fitness: dict[str, Any] | None = None, **search: Any) -> dict[str, Any]:
    """The demo config with the synthetic stand-in, or the ``faulty_synthetic`` plug-in
    with the keys of ``fitness`` (tests/plugins/elo_test_faults.py)."""
    cfg = load_config("demo", [f"search.{k}={v}" for k, v in search.items()])
    cfg["fitness"] = fitness_section("synthetic")
    if fitness:
        cfg["fitness"].update(kind="faulty_synthetic", **fitness)
    return cfg


@pytest.mark.timeout(240)
def test_killed_worker_is_retried_not_recorded(tmp_path: Path) -> None:
    """The first trial's worker process dies (exit 137, as after an OOM kill). Ray
    Tune restarts it (search.max_retries); the log holds 4 ok evaluations, none failed:
    a lost worker is the machine's failure, not the candidate's."""
    marker = tmp_path / "killed-once"
    cfg = synthetic_cfg({"die_once": str(marker)}, population=4, generations=1, workers=2)
    run_dir = prepare_run_dir(cfg, tmp_path / "run")
    lines: list[str] = []
    out = run_search(cfg, run_dir, echo=lines.append, report=False)
    assert marker.exists(), "no worker was killed"
    recs = list(read_jsonl(run_dir / EVALUATIONS))
    assert out["finished"] and sorted(r["index"] for r in recs) == [0, 1, 2, 3]
    assert all(r["status"] == "ok" for r in recs), recs
    assert "(0 failed)" in lines[-2] or any("(0 failed)" in ln for ln in lines)


@pytest.mark.timeout(240)
def test_trial_timeout_gives_worst_fitness_and_finishes(tmp_path: Path) -> None:
    """Every trial would sleep 600 s; with search.trial_timeout_s=2 each is stopped,
    recorded as 'timeout' (after at least its 2 s), and both generations complete.
    Generation 2 can only start once the stopped trials' workers are freed (2 CPUs, 2
    workers, none of them ever returns): the search finishing is the check, with the
    test's own timeout as the deadline."""
    search = {"population": 2, "generations": 2, "workers": 2, "trial_timeout_s": 2}
    cfg = synthetic_cfg({"seconds": 600.0}, **search)
    run_dir = prepare_run_dir(cfg, tmp_path / "run")
    out = run_search(cfg, run_dir, echo=lambda s: None, report=False)
    recs = list(read_jsonl(run_dir / EVALUATIONS))
    assert out["finished"] and len(recs) == 4
    assert [r["status"] for r in recs] == ["timeout"] * 4
    assert all(r["fitness"] is None and r["seconds"] >= 2 for r in recs)
    gens = list(read_jsonl(run_dir / "generations.jsonl"))
    assert [g["failed"] for g in gens] == [2, 2]
    errors = list(read_jsonl(run_dir / "errors.jsonl"))
    assert len(errors) == 4 and all("timed out" in e["error"] for e in errors)


#: /proc/net/tcp{,6} local addresses (hex) that are loopback
_LOOPBACK = {"0100007F", "00000000000000000000000001000000", "0000000000000000FFFF00000100007F"}


def _descendants(root: int) -> set[int]:
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_text()
            except OSError:
                continue
            parent[int(d)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = {root}, [root]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in out]
        out.update(kids)
        todo.extend(kids)
    return out


def _listening(pids: set[int]) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of the listening TCP sockets of ``pids``."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    addrs = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # 0A = LISTEN
                addrs.append(f[1].split(":")[0])
    return addrs


def test_private_ray_listens_on_loopback_only() -> None:
    """By default Ray binds its servers to every interface (measured here: '::' for
    the GCS, raylet and workers); the search's own runtime binds 127.0.0.1 only."""
    if ray.is_initialized():
        pytest.skip("a Ray runtime is already running in this process")
    init_local_ray(1)
    try:
        addrs = _listening(_descendants(os.getpid()))
        assert ray.nodes()[0]["NodeManagerAddress"] == "127.0.0.1"
        assert len(addrs) >= 3 and set(addrs) <= _LOOPBACK, addrs
    finally:
        ray.shutdown()


def test_second_search_on_one_run_directory_exits_2(tmp_path: Path) -> None:
    cfg = synthetic_cfg(population=2, generations=1)
    run_dir = prepare_run_dir(cfg, tmp_path / "run")
    code = "import sys; from elo.search.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    with DirLock(run_dir, "elo-search"):
        proc = subprocess.run(
            [sys.executable, "-c", code, "--resume", str(run_dir)],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "is in use by elo-search" in err[0] and str(run_dir) in err[0]
    assert not (run_dir / EVALUATIONS).exists()
    assert json.loads(json.dumps(cfg))  # the config was left as written
