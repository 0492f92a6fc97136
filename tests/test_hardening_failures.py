"""Failure handling without a Ray runtime (docs/reliability.md): infrastructure
failures are requeued, never evaluations; timeouts get the worst fitness and the
generation completes; one writer per folder; only dead processes' temp files go."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ray.tune.search import Searcher

from elo.data.cache import clear_stale_temps
from elo.errors import LockedError
from elo.rundir import DirLock, atomic_write_text
from elo.search.searcher import MAX_REQUEUES, EvolutionSearcher
from elo.search.space import WeightSpace
from elo.search.strategies import make_strategy

TERMS = ("rgb/a", "rgb/b", "flow/a")


class Log:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.summaries: list[dict[str, Any]] = []

    def evaluation(self, record: dict[str, Any]) -> None:
        self.records.append(record)

    def checkpoint(self, searcher: EvolutionSearcher) -> None:
        pass

    def generation_done(self, summary: dict[str, Any]) -> None:
        self.summaries.append(summary)


def make(log: Log, population: int = 3, generations: int = 2) -> EvolutionSearcher:
    space = WeightSpace(TERMS, "clip")
    s = make_strategy(
        "cma",
        dim=space.dim,
        population=population,
        seed=0,
        centroid=space.centre(),
        bounds=(0.0, 1.0),
    )
    return EvolutionSearcher(s, space, generations, listener=log)


def test_infrastructure_failure_is_requeued_not_recorded() -> None:
    """Tune's ``error=True`` (its retries spent on a dead worker or node) hands the
    same individual out again; it is never stored as a worst-fitness evaluation."""
    log = Log()
    se = make(log)
    first = [se.suggest(f"t{i}") for i in range(3)]
    se.on_trial_complete("t1", None, error=True)
    assert log.records == []
    again = se.suggest("t1-retry")
    assert again == first[1]
    for tid, cfg in (("t0", first[0]), ("t1-retry", again), ("t2", first[2])):
        se.on_trial_complete(tid, {"fitness": -float(cfg["index"])})  # type: ignore[index]
    assert [(r["index"], r["status"]) for r in log.records] == [(0, "ok"), (1, "ok"), (2, "ok")]
    assert log.summaries[0]["failed"] == 0 and se.generation == 1


def test_repeated_infrastructure_failures_stop_the_search_resumably() -> None:
    log = Log()
    se = make(log)
    for i in range(3):
        se.suggest(f"t{i}")
    for k in range(MAX_REQUEUES):
        assert se.halted is None
        se.on_trial_complete("t0" if k == 0 else f"r{k}", None, error=True)
        if se.halted is None:
            assert se.suggest(f"r{k + 1}")["index"] == 0  # type: ignore[index]
    assert se.halted is not None and "worker or node failures" in se.halted
    assert se.suggest("late") == Searcher.FINISHED
    assert log.records == [] and not se.finished
    state = se.get_state()  # what --resume restores: individual 0 is still to do
    assert 0 in state["pending"]


def test_timeout_gets_worst_fitness_and_the_generation_completes() -> None:
    log = Log()
    se = make(log, population=3, generations=1)
    cfgs = [se.suggest(f"t{i}") for i in range(3)]
    se.on_trial_complete("t0", {"fitness": -1.0})
    se.on_trial_complete("t2", {"fitness": -2.0})
    assert se.generation == 0  # waiting for t1, which hangs
    se.on_trial_timeout("t1", 31.0)
    assert se.finished and log.summaries[0]["failed"] == 1
    rec = log.records[-1]
    assert (rec["index"], rec["status"], rec["fitness"]) == (1, "timeout", None)
    assert rec["weights"] == cfgs[1]["weights"] and "31 s" in rec["error"]  # type: ignore[index]
    se.on_trial_complete("t1", {"fitness": 5.0})  # the stopped trial finishing late: ignored
    assert len(log.records) == 3 and se.best is not None and se.best["fitness"] == -1.0


def test_trial_error_result_is_an_error_evaluation() -> None:
    log = Log()
    se = make(log, population=3, generations=1)
    for i in range(3):
        se.suggest(f"t{i}")
    se.on_trial_complete("t0", {"fitness": math.nan, "trial_error": True, "error_msg": "boom"})
    assert (log.records[0]["status"], log.records[0]["error"]) == ("error", "boom")


def test_second_writer_is_refused_with_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with DirLock(run, "elo-search"):
        with pytest.raises(LockedError) as err:
            DirLock(run, "elo-search").acquire()
        msg = str(err.value)
        assert "\n" not in msg and str(run) in msg and f"pid {os.getpid()}" in msg
    DirLock(run, "elo-search").acquire().release()  # free again after release


def test_lock_of_a_killed_holder_is_free(tmp_path: Path) -> None:
    """The kernel drops a flock with its holder: a SIGKILLed run leaves no stale lock."""
    code = (
        "import os, sys; from elo.rundir import DirLock; "
        "DirLock(sys.argv[1], 'holder').acquire(); print('locked', flush=True); "
        "os.kill(os.getpid(), 9)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.stdout.strip() == "locked" and proc.returncode == -9
    DirLock(tmp_path, "next").acquire().release()


def test_only_dead_processes_temp_files_are_cleaned(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    entry = tmp_path / "ab" / "abcdef"
    entry.mkdir(parents=True)
    live = entry / f".rgb-x.npy.{os.getpid()}.k2j4h5g6.tmp"
    gone = entry / f".rgb-x.npy.{dead_pid}.a1b2c3d4.tmp"
    legacy = entry / ".clips.json.q9w8e7r6.tmp"  # written before temps carried a pid
    for p in (live, gone, legacy):
        p.write_bytes(b"partial")
    assert clear_stale_temps(tmp_path) == 2
    assert live.exists() and not gone.exists() and not legacy.exists()
    # the writers name their temps that way
    atomic_write_text(entry / "x.json", "{}")
    assert (entry / "x.json").read_text() == "{}"
