"""End to end on a real Ray runtime: the search with the real trainer and fitness on
demo videos (one trial made to raise), and ``kill -9`` / Ctrl-C of ``elo-search``
followed by ``--resume`` losing and repeating nothing. The faults and the trials'
length come from the test-only fitness plug-ins of tests/plugins/elo_test_faults.py."""

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
import yaml

ray = pytest.importorskip("ray")

from elo.config import load_config  # noqa: E402
from elo.model.objective import Weights, terms_from_config  # noqa: E402
from elo.rundir import read_jsonl  # noqa: E402
from elo.search.run import run_search  # noqa: E402
from elo.search.rundir import EVALUATIONS, load_run_config, prepare_run_dir  # noqa: E402
from elo.search.settings import SearchSettings, fitness_section  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def ray_session() -> Iterator[str]:
    """One local Ray runtime shared by this module (~3 s, ~0.9 GB)."""
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


def tiny_config(root: Path) -> dict[str, Any]:
    cfg = load_config(
        "demo",
        [
            "objective.modalities=[rgb]",
            "objective.tasks=[reconstruction,temporal_order]",
            "train.batch_size=4",
            "search.population=4",
            "search.generations=2",
            "search.steps=2",
            "search.workers=2",
            "search.rungs=null",  # the paper's one score per candidate (docs/search.md)
            "search.warm_start=false",
        ],
    )
    cfg["data"]["root"] = str(root)
    cfg["fitness"] = {**fitness_section("zipf"), "k": 2}  # the paper's fitness, tiny k
    return cfg


@pytest.mark.timeout(240)
def test_search_with_real_trainer_finishes_and_records_failure(
    ray_session: str, demo_root: Path, tmp_path: Path
) -> None:
    """The first trial to be scored raises (``faulty_zipf``, after real training): it
    is recorded as an error of generation 0 and the search goes on to the end."""
    cfg = tiny_config(demo_root)
    cfg["fitness"].update(kind="faulty_zipf", fail_once=str(tmp_path / "failed-once"))
    run_dir = prepare_run_dir(cfg, tmp_path / "run")
    lines: list[str] = []
    out = run_search(cfg, run_dir, echo=lines.append)
    assert out["finished"] and out["evaluations"] == 8
    recs = list(read_jsonl(run_dir / EVALUATIONS))
    assert sorted((r["generation"], r["index"]) for r in recs) == [
        (g, i) for g in range(2) for i in range(4)
    ]
    failed = [r for r in recs if r["status"] != "ok"]
    assert [(r["generation"], r["status"]) for r in failed] == [(0, "error")]
    errors = list(read_jsonl(run_dir / "errors.jsonl"))
    assert len(errors) == 1 and "injected failure" in errors[0]["error"]
    ok = [r for r in recs if r["status"] == "ok"]
    for r in ok:  # real training + Zipf fitness on the held-out clips
        assert -10 < r["fitness"] <= 0 and r["metrics"]["heldout_clips"] > 0
        assert r["metrics"]["train_seconds"] > 0 and len(r["details"]["sizes"]) == 2
    # two progress lines, one per generation, with best / median / trials / ETA
    gen_lines = [ln for ln in lines if ln.startswith("generation ")]
    assert len(gen_lines) == 2 and "trials 4/8 (1 failed)" in gen_lines[0]
    assert "ETA" in gen_lines[1] and "trials 8/8" in gen_lines[1]
    # best_weights.json is what elo-train --weights reads, and it is the best record
    terms = terms_from_config(cfg)
    best = Weights.load(run_dir / "best_weights.json", terms)
    top = max(ok, key=lambda r: r["fitness"])
    assert best.values == top["weights"]
    doc = json.loads((run_dir / "best_weights.json").read_text())
    assert doc["fitness"] == top["fitness"]
    report = (run_dir / "report.md").read_text()
    assert "injected failure" in report and "| 2 | 4 |" in report
    for png in ("fitness.png", "lambda.png", "clusters.png"):
        assert (run_dir / png).read_bytes()[:4] == b"\x89PNG"


def _slow_synthetic(folder: Path, seconds: float, **more: Any) -> str:
    """A fitness file for ``elo-search --fitness``: the synthetic stand-in whose trials
    take ``seconds`` (``faulty_synthetic``), so that kills land mid-generation."""
    path = folder / "slow_synthetic.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"kind": "faulty_synthetic", "seconds": seconds, **more}))
    return str(path)


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


def _wait_lines(path: Path, n: int, proc: subprocess.Popen[str], timeout: float = 90) -> int:
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
    raise AssertionError(f"timed out waiting for {n} evaluations in {path}")


@pytest.mark.timeout(300)
def test_kill_9_then_resume_loses_and_repeats_nothing(ray_session: str, tmp_path: Path) -> None:
    from elo.search.searcher import EvolutionSearcher
    from elo.search.space import WeightSpace
    from elo.search.strategies import strategy_for

    run_dir = tmp_path / "run"
    common = ["--address", ray_session]
    args = [
        "--fitness",
        _slow_synthetic(tmp_path, 0.3),
        *["--population", "4", "--generations", "3", "--workers", "2"],
        *["--strategy", "ga", "--seed", "3"],
        "--out",
        str(run_dir),
        *common,
    ]
    log = run_dir / EVALUATIONS
    proc = _cli(args)
    _wait_lines(log, 5, proc)  # inside generation 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = log.read_text().splitlines()
    assert len(before) >= 5

    # Ctrl-C of the resumed search ends it cleanly and resumably ...
    proc = _cli(["--resume", str(run_dir), *common])
    _wait_lines(log, len(before) + 2, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    middle = log.read_text().splitlines()
    if proc.returncode == 0:  # it finished before the signal landed: nothing to resume
        assert len(middle) == 12
    else:
        assert proc.returncode == 130, out[-3000:]
        assert f"elo-search --resume {run_dir}" in out
        # ... and the next --resume completes the search
        proc = _cli(["--resume", str(run_dir), *common])
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out[-3000:]
    after = log.read_text().splitlines()
    assert after[: len(before)] == before  # nothing finished was lost or rewritten
    assert after[: len(middle)] == middle
    recs = [json.loads(x) for x in after]
    keys = [(r["generation"], r["index"]) for r in recs]
    assert sorted(keys) == [(g, i) for g in range(3) for i in range(4)]  # none repeated
    assert all(r["status"] == "ok" for r in recs)
    # the evaluated individuals are exactly those of an uninterrupted search
    cfg = load_run_config(run_dir)
    space = WeightSpace.from_config(cfg)
    settings = SearchSettings.from_config(cfg)
    ref = EvolutionSearcher(strategy_for(settings, space, seed=cfg["seed"]), space, 3)
    assert ref.replay(recs) == 12 and ref.finished
    state = json.loads((run_dir / "search_state.json").read_text())
    assert state["generation"] == 3 and state["strategy"] == ref.strategy.state()
    assert json.loads((run_dir / "best_weights.json").read_text())["fitness"] == max(
        r["fitness"] for r in recs
    )


@pytest.mark.timeout(300)
def test_kill_9_then_resume_of_a_rung_search_is_exact(ray_session: str, tmp_path: Path) -> None:
    """A multi-fidelity search (3 rungs, Ray Tune's ASHA stopping candidates early) killed
    with SIGKILL mid-generation and resumed: every (generation, index) evaluated exactly
    once, stopped-early ones included, each with its per-rung fitness, and the log
    replays to the same strategy state as an uninterrupted search."""
    from elo.search.searcher import EvolutionSearcher
    from elo.search.space import WeightSpace
    from elo.search.strategies import strategy_for

    run_dir = tmp_path / "run"
    common = ["--address", ray_session]
    args = [
        "--fitness",
        _slow_synthetic(tmp_path, 0.6, rung_noise=0.5),
        *["--population", "6", "--generations", "3", "--workers", "2", "--seed", "5"],
        "--out",
        str(run_dir),
        "search.rungs=[0.25,0.5,1.0]",
        *common,
    ]
    log = run_dir / EVALUATIONS
    proc = _cli(args)
    _wait_lines(log, 8, proc)  # inside generation 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    before = log.read_text().splitlines()
    proc = _cli(["--resume", str(run_dir), *common])
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-3000:]
    after = log.read_text().splitlines()
    assert after[: len(before)] == before
    recs = [json.loads(x) for x in after]
    keys = [(r["generation"], r["index"]) for r in recs]
    assert sorted(keys) == [(g, i) for g in range(3) for i in range(6)]  # 0 lost, 0 repeated
    assert all(r["status"] == "ok" and len(r["rungs"]) == r["rung"] for r in recs)
    assert all(r["fitness"] == r["rungs"][-1] for r in recs)
    assert any(r["rung"] < 3 for r in recs) and any(r["rung"] == 3 for r in recs)  # ASHA cut
    cfg = load_run_config(run_dir)
    space = WeightSpace.from_config(cfg)
    settings = SearchSettings.from_config(cfg)
    ref = EvolutionSearcher(strategy_for(settings, space, seed=cfg["seed"]), space, 3, rungs=3)
    assert ref.replay(recs) == 18 and ref.finished
    state = json.loads((run_dir / "search_state.json").read_text())
    assert state["generation"] == 3 and state["strategy"] == ref.strategy.state()
    best = json.loads((run_dir / "best_weights.json").read_text())
    assert best["fitness"] == ref.best["fitness"] and ref.best["rung"] == 3  # type: ignore[index]
    report = (run_dir / "report.md").read_text()
    assert "## Fitness per rung" in report and (run_dir / "best_lambda.png").exists()
