"""Population-based search end to end on a real Ray runtime, the real trainer and
fitness on decoded demo videos (search/pbt.py): an exploit copies the source's
weights and optimizer state exactly, explore scales λ within [0, 1], a member whose
trial fails (the test-only ``faulty_zipf`` fitness, tests/plugins/elo_test_faults.py:
the first score raises, after real training) is replaced and never copied, the
outputs load; and ``kill -9`` of
``elo-search --strategy pb2`` then ``--resume`` logs every member interval once,
each starting from exactly the state its parent ended with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray")

from elo.config import load_config  # noqa: E402
from elo.model.objective import WeightSchedule, load_weights_file, terms_from_config  # noqa: E402
from elo.rundir import read_jsonl  # noqa: E402
from elo.search.pbt_log import by_key, lineage  # noqa: E402
from elo.search.run import run_search  # noqa: E402
from elo.search.rundir import prepare_run_dir  # noqa: E402
from elo.search.settings import fitness_section  # noqa: E402
from elo.search.strategies import WORST_FITNESS  # noqa: E402

pytestmark = pytest.mark.slow

TINY = [
    "objective.modalities=[rgb]",
    "objective.tasks=[reconstruction,temporal_order]",
    "train.batch_size=4",
    "search.workers=2",
    "search.warm_start=true",
    "search.warm_start_steps=2",
    "search.pbt.population=4",
]


@pytest.fixture(scope="module")
def ray_session() -> Iterator[str]:
    """One local Ray runtime shared by this module (2 CPUs: two members at once)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from elo.data.demo_data import make_demo

    return make_demo(
        tmp_path_factory.mktemp("demo") / "demo", clips=24, classes=4, seed=0, workers=1
    )


def _digests(rec: dict[str, Any], when: str) -> tuple[str, str]:
    m = rec["metrics"]
    return m[f"digest_{when}_model"], m[f"digest_{when}_optimizer"]


def check_lineage(recs: list[dict[str, Any]], population: int, intervals: int) -> None:
    """Every (member, interval) once; each interval started from exactly the state
    (model and optimizer tensors) its parent ended with, with its parent's λ unless it
    copied (then explored); interval 1 from the trunk."""
    keyed = by_key(recs)
    assert len(keyed) == len(recs)
    assert sorted(keyed) == [(m, k) for m in range(population) for k in range(1, intervals + 1)]
    assert len({_digests(r, "start") for r in recs if r["interval"] == 1}) == 1  # the trunk
    for r in recs:
        p = r["parent"]
        if r["interval"] == 1:
            assert p is None and not r["copied"]
            continue
        assert p["interval"] == r["interval"] - 1
        assert r["copied"] == (p["member"] != r["member"])
        parent = keyed[(p["member"], p["interval"])]
        assert _digests(r, "start") == _digests(parent, "end"), (r, parent)
        if not r["copied"]:  # λ changes only with a copy (explored from the source's)
            assert r["weights"] == parent["weights"]


@pytest.mark.timeout(300)
def test_pbt_exploit_copies_the_state_explores_in_bounds_and_replaces_a_failed_member(
    ray_session: str, demo_root: Path, tmp_path: Path
) -> None:
    cfg = load_config(
        "demo",
        [
            *TINY,
            "search.strategy=pbt",
            "search.pbt.steps=6",
            "search.pbt.interval=2",
            "search.pbt.resample_probability=0",
        ],
    )
    cfg["data"]["root"] = str(demo_root)
    cfg["data"]["cache"] = str(demo_root) + "-cache"
    # the first member scored fails (after training its first interval)
    fail_once = str(tmp_path / "failed-once")
    cfg["fitness"] = {**fitness_section("zipf"), "kind": "faulty_zipf", "k": 2}
    cfg["fitness"]["fail_once"] = fail_once
    run_dir = prepare_run_dir(cfg, tmp_path / "run")
    lines: list[str] = []
    out = run_search(cfg, run_dir, echo=lines.append)
    assert out["finished"], lines
    assert Path(fail_once).exists()
    recs = list(read_jsonl(run_dir / "evaluations.jsonl"))
    check_lineage(recs, 4, 3)
    keyed = by_key(recs)
    # the failed member: worst fitness, replaced at the next boundary, never copied
    failed = [r for r in recs if r["status"] != "ok"]
    assert [(r["interval"], r["status"]) for r in failed] == [(1, "error")], failed
    bad, m = failed[0], failed[0]["member"]
    assert bad["fitness"] == WORST_FITNESS
    assert "RuntimeError: injected failure in the first trial scored" in bad["error"]
    assert keyed[(m, 2)]["copied"] and keyed[(m, 2)]["parent"]["member"] != m
    assert not any(r["parent"] == {"member": m, "interval": 1} for r in recs)
    copies = [r for r in recs if r["copied"]]
    assert len(copies) >= 2  # one per boundary (quantile 0.25 of 4 members)
    for r in copies:  # explore: each λ of the source scaled by 1.2 or 0.8, clipped
        src = keyed[(r["parent"]["member"], r["parent"]["interval"])]["weights"]
        assert r["weights"] != src
        for t, v in r["weights"].items():
            assert 0.0 <= v <= 1.0
            assert any(v == pytest.approx(min(1.0, src[t] * f)) for f in (1.2, 0.8)), (t, v)
    ok = [r for r in recs if r["status"] == "ok"]
    assert all(-10 < r["fitness"] <= 0 and r["metrics"]["heldout_clips"] > 0 for r in ok)
    # outputs: the best member's schedule along its lineage, its encoder, the report
    best = max((r for r in ok if r["interval"] == 3), key=lambda r: r["fitness"])
    chain = lineage(recs, best["member"], 3)
    doc = json.loads((run_dir / "best_schedule.json").read_text())
    assert doc["member"] == best["member"] and doc["fitness"] == best["fitness"]
    assert doc["lineage"] == [{"member": r["member"], "interval": r["interval"]} for r in chain]
    sched = load_weights_file(run_dir / "best_schedule.json", terms_from_config(cfg))
    assert isinstance(sched, WeightSchedule)
    assert [(s, w.values) for s, w in sched.entries] == [
        (2 * i, r["weights"]) for i, r in enumerate(chain)
    ]
    import torch

    import elo

    enc = elo.load_encoder(run_dir / "final")
    assert enc.export_info["meta"]["weights"] == best["weights"]
    assert enc(torch.zeros(2, 3, 8, 32, 32)).embedding.shape[0] == 2
    report = (run_dir / "report.md").read_text()
    assert "## Lineage (who copied whom)" in report
    assert f"- member {m}, interval 1: error (RuntimeError: injected failure" in report
    for png in ("pbt_fitness.png", "pbt_lambda.png", "pbt_lineage.png"):
        assert (run_dir / png).read_bytes()[:4] == b"\x89PNG"
    for m in range(4):
        assert any((run_dir / "tensorboard" / f"member-{m}").glob("events.out.tfevents.*"))
    assert any("copied member" in ln for ln in lines) and "best member" in lines[-1]


def _cli(args: list[str]) -> subprocess.Popen[str]:
    code = "import sys; from elo.search.cli import main; sys.exit(main(sys.argv[1:]))"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def _wait_lines(path: Path, n: int, proc: subprocess.Popen[str], timeout: float = 150) -> int:
    end = time.time() + timeout
    while time.time() < end:
        have = len(list(read_jsonl(path))) if path.exists() else 0
        if have >= n:
            return have
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"elo-search ended early ({proc.returncode}):\n{out[-3000:]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {n} member intervals in {path}")


@pytest.mark.timeout(400)
def test_kill_9_then_resume_of_pb2_loses_and_repeats_nothing(
    ray_session: str, demo_root: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    common = ["--address", ray_session]
    args = [
        "--strategy",
        "pb2",
        "--steps",
        "8",
        "--fitness",
        "zipf",
        "--data",
        str(demo_root),
        "--seed",
        "2",
        "--out",
        str(run_dir),
        "search.pbt.interval=2",
        "fitness.k=2",
        f"data.cache={demo_root}-cache",
        *TINY,
        *common,
    ]
    log = run_dir / "evaluations.jsonl"
    proc = _cli(args)
    _wait_lines(log, 7, proc)  # inside interval 2 of 4
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = log.read_text().splitlines()
    proc = _cli(["--resume", str(run_dir), *common])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert "resuming" in out and "best member" in out
    after = log.read_text().splitlines()
    assert after[: len(before)] == before  # nothing logged was lost or rewritten
    recs = [json.loads(x) for x in after]
    check_lineage(recs, 4, 4)  # none lost, none twice, each from its parent's exact state
    assert all(0.0 <= v <= 1.0 for r in recs for v in r["weights"].values())
    assert any(r["copied"] for r in recs)
    reruns = list(read_jsonl(run_dir / "pbt_reruns.jsonl"))
    assert all(r["same"] for r in reruns), reruns  # re-run after restore: identical
    assert (run_dir / "final" / "encoder.yaml").exists()
    assert json.loads((run_dir / "best_schedule.json").read_text())["strategy"] == "pb2"
