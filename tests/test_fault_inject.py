"""``benchmarks/fault_inject.py`` at a tiny size, on a real Ray runtime: a Ray worker
SIGKILLed in the middle of a trial, and the whole local Ray runtime SIGKILLed in the
middle of a generation; the search finishes by itself with nothing lost or repeated,
nothing recorded as failed, and a state that replays from its log. The trials are
the synthetic stand-in made to last 1 s (``faulty_synthetic``,
tests/plugins/elo_test_faults.py) so that the kills land inside them; the benchmark
runs the same modes on a real warm-started rung search (docs/reliability.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray")

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "fault_inject.py"


def _run(mode: str, tmp_path: Path) -> str:
    fitness = tmp_path / "slow.yaml"
    fitness.write_text(
        yaml.safe_dump({"kind": "faulty_synthetic", "seconds": 1.0, "rung_noise": 0.5})
    )
    args = [
        "--mode",
        mode,
        "--kills",
        "1",
        "--no-data",
        "--fitness",
        str(fitness),
        "--population",
        "4",
        "--generations",
        "2",
        "--out",
        str(tmp_path / "work"),
        "search.rungs=[0.25,0.5,1.0]",
    ]
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=540
    )
    log = (tmp_path / "work" / "elo-search.out").read_text(errors="replace")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:] + log[-3000:]
    assert "lost 0 / repeated 0" in proc.stdout
    assert "1 SIGKILLs" in proc.stdout and "8/8 evaluations, 0 not ok" in proc.stdout
    assert "state matches an uninterrupted search: True" in proc.stdout
    return proc.stdout + log


@pytest.mark.timeout(600)
def test_a_worker_killed_mid_trial_loses_nothing(tmp_path: Path) -> None:
    out = _run("worker", tmp_path)
    assert "SIGKILL of trial worker" in out and "1 launches of elo-search" in out


@pytest.mark.timeout(600)
def test_the_ray_runtime_killed_mid_generation_is_replaced(tmp_path: Path) -> None:
    """The driver survives the loss of its GCS and raylet: it starts a new runtime and
    resumes by itself (one launch, no --resume by hand)."""
    out = _run("runtime", tmp_path)
    assert "SIGKILL of the Ray runtime" in out and "1 launches of elo-search" in out
    assert "went on by itself 1 times, ended 0 times" in out
    assert "the local Ray runtime died" in out  # the driver's own line, then it resumed
