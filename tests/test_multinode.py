"""A search on a two-node Ray cluster, simulated on this machine.

Two ``ray start`` nodes of one CPU each (a head with the custom resource ``head`` and a
second node with ``worker2``), each with its own temp dir and ports, every server on
127.0.0.1; ``elo-search --address`` joins them and runs a tiny real search (proxy
training + Zipf fitness on demo clips) with two concurrent trials, so each node must
run trials. The test asserts that every evaluation finished and that trials ran on
both nodes, telling the nodes apart by the worker process of each record
(``metrics.worker_pid``, search/trainable.py): a Ray worker writes its log files under
its own node's session dir as ``worker-<id>-<job>-<pid>.out``.

The nodes are stopped by process session: each ``ray start --block`` runs in a new
session, and every process it starts (GCS, raylet, agents, workers) stays in it, so
only the processes of these two nodes are ended (never ``ray stop``, which ends every
Ray process on the machine, other users' included).

Loopback only: ``ray start`` binds to the address it takes for the node, and Ray
resolves 127.0.0.1 to the machine's network address unless
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``; with that, ``ray start --address`` refuses to
start a second node, so the second node runs the same CLI with that one check passed
(:data:`_SECOND_NODE`). A real cluster needs none of this (docs/reliability.md).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

pytest.importorskip("ray")

from elo.rundir import read_jsonl  # noqa: E402
from elo.search.rundir import EVALUATIONS  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
RAY_CLI = Path(sys.executable).parent / "ray"

#: the ``ray`` CLI (ray.scripts.scripts:main) with its "multi-node clusters are not
#: supported" check passed, for a second node on loopback (module docstring)
_SECOND_NODE = (
    "import sys, types\n"
    "import ray._private.ray_constants as rc\n"
    "import ray.scripts.scripts as s\n"
    "class Constants(types.ModuleType):\n"
    "    def __getattr__(self, k):\n"
    "        return getattr(rc, k)\n"
    "c = Constants('ray_constants')\n"
    "c.ENABLE_RAY_CLUSTER = True\n"
    "s.ray_constants = c\n"
    "sys.argv[0] = 'ray'\n"
    "sys.exit(s.main())\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_env() -> dict[str, str]:
    return {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # node address 127.0.0.1, not the LAN's
        "PYTHONPATH": str(REPO),
    }


@dataclass
class Node:
    name: str
    temp_dir: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def session_pids(self) -> list[int]:
        """Every live process of this node: those in the session its ``ray start`` began."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()  # state ppid pgrp session ...
            if int(fields[3]) == self.proc.pid:
                pids.append(int(entry.name))
        return pids

    def worker_pids(self) -> set[int]:
        """Process ids of the Ray workers this node started (from their log files)."""
        out = set()
        for f in self.temp_dir.glob("session_*/logs/worker-*.out"):
            tail = f.stem.rsplit("-", 1)[-1]
            if tail.isdigit():
                out.add(int(tail))
        return out

    def stop(self) -> None:
        """``ray start --block`` ends its processes on SIGTERM; whatever of its session
        is left after 10 s is killed."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for pid in self.session_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.proc.poll() is None:
            self.proc.wait(timeout=10)


@dataclass
class Cluster:
    address: str
    nodes: list[Node] = field(default_factory=list)


def _start_node(name: str, base: Path, cli: list[str], args: list[str]) -> Node:
    temp_dir = base / name
    log = base / f"{name}.log"
    common = ["--block", "--num-cpus", "1", "--temp-dir", str(temp_dir)]
    common += ["--node-ip-address", "127.0.0.1", "--disable-usage-stats"]
    common += ["--object-store-memory", str(128 * 2**20)]
    common += ["--dashboard-agent-listen-port", str(free_port())]
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cli, "start", *args, *common],
            env=ray_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own session: stop() ends exactly its processes
        )
    return Node(name, temp_dir, proc, log)


def _wait_for_nodes(node: Node, address: str, n: int, timeout: float = 60) -> None:
    probe = (
        "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
        "print(sum(1 for x in ray.nodes() if x['Alive']))"
    )
    end = time.time() + timeout
    while time.time() < end:
        if node.proc.poll() is not None:
            raise AssertionError(f"ray start {node.name} exited:\n{node.log.read_text()[-3000:]}")
        r = subprocess.run(
            [sys.executable, "-c", probe, address],
            env=ray_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        if r.returncode == 0 and r.stdout.strip().splitlines()[-1:] == [str(n)]:
            return
        time.sleep(1)
    raise AssertionError(f"the cluster at {address} did not reach {n} nodes in {timeout} s")


@pytest.fixture
def two_nodes() -> Iterator[Cluster]:
    base = Path(tempfile.mkdtemp(prefix="elo-mn-", dir="/tmp"))  # short: socket paths
    port = free_port()
    cluster = Cluster(f"127.0.0.1:{port}")
    try:
        head_args = ["--head", "--port", str(port), "--resources", json.dumps({"head": 1})]
        head_args += ["--include-dashboard", "false", "--dashboard-port", str(free_port())]
        head_args += ["--ray-client-server-port", str(free_port())]
        cluster.nodes.append(_start_node("head", base, [str(RAY_CLI)], head_args))
        _wait_for_nodes(cluster.nodes[0], cluster.address, 1)
        second = ["--address", cluster.address, "--resources", json.dumps({"worker2": 1})]
        cluster.nodes.append(
            _start_node("worker2", base, [sys.executable, "-c", _SECOND_NODE], second)
        )
        _wait_for_nodes(cluster.nodes[1], cluster.address, 2)
        yield cluster
    finally:
        for node in reversed(cluster.nodes):
            node.stop()
        left = [pid for node in cluster.nodes for pid in node.session_pids()]
        shutil.rmtree(base, ignore_errors=True)
        assert not left, f"processes of the test's Ray nodes still alive: {left}"


def warm_start_override() -> list[str]:
    """``search.warm_start=true`` where this checkout has that key, else none."""
    from elo.config import load_part

    return ["search.warm_start=true"] if "warm_start" in load_part("search", "cma") else []


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from elo.data.demo_data import make_demo

    return make_demo(
        tmp_path_factory.mktemp("demo") / "demo", clips=24, classes=4, seed=0, workers=1
    )


@pytest.mark.timeout(300)
def test_search_runs_trials_on_both_nodes(
    two_nodes: Cluster, demo_root: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    population, generations = 4, 2
    args = ["--address", two_nodes.address, "--data", str(demo_root), "--out", str(run_dir)]
    args += ["--population", str(population), "--generations", str(generations)]
    args += ["--steps", "3", "--workers", "2", "--fitness", "zipf", "--seed", "0"]
    args += ["objective.modalities=[rgb]", "objective.tasks=[reconstruction,temporal_order]"]
    args += ["train.batch_size=4", "fitness.k=2", *warm_start_override()]
    code = "import sys; from search.cli import main; sys.exit(main(sys.argv[1:]))"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code, *args],
        env={**ray_env(), "PYTHONUNBUFFERED": "1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    seconds = time.perf_counter() - t0
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    print(f"elo-search on two nodes: {seconds:.1f} s; {' '.join(warm_start_override())}")

    recs = list(read_jsonl(run_dir / EVALUATIONS))
    assert sorted((r["generation"], r["index"]) for r in recs) == [
        (g, i) for g in range(generations) for i in range(population)
    ]
    assert all(r["status"] == "ok" for r in recs), [r["error"] for r in recs]
    for r in recs:  # really trained and scored, not a stand-in
        m = r["metrics"]
        assert m["heldout_clips"] > 0
        # a cold-start trial records its training time; a rung trial (the demo profile's
        # warm start + rungs, docs/search.md) its last training loss
        assert m.get("train_seconds", 0) > 0 or 0 < m.get("final_loss", -1) < 1e6
        assert -10 < r["fitness"] <= 0
    # which node ran each evaluation: its worker's pid among that node's worker logs
    owners = {node.name: node.worker_pids() for node in two_nodes.nodes}
    assert not owners["head"] & owners["worker2"]
    ran_on = {}
    for r in recs:
        pid = int(r["metrics"]["worker_pid"])
        names = [name for name, pids in owners.items() if pid in pids]
        assert len(names) == 1, f"worker {pid} belongs to no single node: {owners}"
        ran_on[(r["generation"], r["index"])] = names[0]
    counts = {name: sum(1 for v in ran_on.values() if v == name) for name in owners}
    print(f"evaluations per node: {counts}")
    assert counts["head"] > 0 and counts["worker2"] > 0, counts
    # the trial's own record names its Ray node (search/trainable.py): two nodes, and
    # the same split as the worker logs give
    node_of = {(r["generation"], r["index"]): r["metrics"]["node_id"] for r in recs}
    assert len(set(node_of.values())) == 2
    assert len({(ran_on[k], node_of[k]) for k in node_of}) == 2
