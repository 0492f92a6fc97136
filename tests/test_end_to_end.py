"""End to end on real encoded video: tiny search -> distill the winner -> evaluate.

The same driver as ``make demo`` (``python -m elo.demo``), at a size the suite can
afford: 48 demo clips written with PyAV, a real Ray runtime, population 4 for one
generation with the uniform + single-task seed points, then five rows two at a time
(``--jobs 2``): the evolved λ, the fitness's best single task, the oracle over the two
fittest single tasks, a random-init encoder and the single-frame probe, trained /
exported and probed on the test split; a rerun reuses every row.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from elo.config import load_config
from elo.model.objective import Weights, terms_from_config
from elo.model.terms import TermKey
from elo.rundir import read_jsonl

TINY = """
defaults:
  base: demo
train:
  steps: 2
  batch_size: 4
search:            # the demo profile's warm start and rungs, at a tiny budget
  steps: 4
  warm_start_steps: 2
"""


def _demo_cmd(cfg: Path, data: Path, run: Path) -> list[str]:
    """``python -m elo.demo`` at the size of the module docstring."""
    cmd = [sys.executable, "-m", "elo.demo", "--data", str(data), "--run", str(run)]
    cmd += ["--config", str(cfg), "--clips", "48", "--population", "4", "--generations", "1"]
    cmd += ["--final-steps", "3", "--contenders", "evolved,random,single,oracle,frame"]
    return [*cmd, "--oracle-k", "2", "--jobs", "2", "--workers", "2"]


def _check_single_task_rows(
    run: Path, evals: list[dict[str, Any]], single: dict[str, Any], oracle: dict[str, Any]
) -> None:
    """The single-task rows: the two fittest seed points by the search's rule; the oracle
    is the one of them with the better action probe (read back from its results.json)."""

    def tasks(e: dict[str, Any]) -> set[str]:
        return {TermKey.parse(k).task for k, v in e["weights"].items() if v > 1e-6}

    singles = [e for e in evals if len(tasks(e)) == 1]
    fittest = sorted(singles, key=lambda e: (e.get("rung", 0), e["fitness"]), reverse=True)[:2]
    assert [c["key"] for c in oracle["candidates"]] == ["single", "single_2"]
    probe = {}
    for k in ("single", "single_2"):
        probe[k] = json.loads((run / "models" / k / "eval-label" / "results.json").read_text())
        probe[k] = probe[k]["top1"]
    assert [c["top1"] for c in oracle["candidates"]] == [probe["single"], probe["single_2"]]
    assert oracle["label"]["top1"] == max(probe.values())
    assert oracle["dir"] == str(run / "models" / oracle["picked"])
    assert single["label"]["top1"] == probe["single"]
    for rank, e in enumerate(fittest):
        key = ("single", "single_2")[rank]
        assert json.loads((run / "weights" / f"{key}.json").read_text())["weights"] == e["weights"]
    assert "oracle: best of the 2 fittest single tasks by test probe" in oracle["model"]


@pytest.mark.slow
def test_search_distill_evaluate(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    data, run = tmp_path / "data", tmp_path / "run"
    cmd = _demo_cmd(cfg, data, run)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    # the search: 4 evaluations (uniform + 3 seed points / samples), all finished
    evals = list(read_jsonl(run / "search" / "evaluations.jsonl"))
    assert len(evals) == 4 and all(e["status"] == "ok" for e in evals)
    best = Weights.load(run / "search" / "best_weights.json", terms_from_config(load_config(cfg)))
    # the winner by docs/search.md's rule: highest rung reached, then fitness at that rung
    top = max(evals, key=lambda e: (e.get("rung", 0), e["fitness"]))
    assert top["fitness"] == pytest.approx(
        json.loads((run / "search" / "best_weights.json").read_text())["fitness"]
    )
    assert (run / "search" / "warm_start.pt").stat().st_size > 0  # the shared trunk
    assert best.active, "the winner turns on at least one term"

    # distill: the evolved λ trained the model for 3 steps and exported the RGB encoder
    log = list(read_jsonl(run / "models" / "evolved" / "train_log.jsonl"))
    assert [r["step"] for r in log] == [1, 2, 3]
    assert (run / "models" / "evolved" / "rgb_encoder.safetensors").stat().st_size > 0

    # evaluate: both labels probed on the test split, for every row of the table
    comparison = json.loads((run / "comparison.json").read_text())
    rows = comparison["rows"]
    assert [r["key"] for r in rows] == ["frame", "random", "single", "oracle", "evolved"]
    for r in rows:
        for label in ("label", "identity"):
            assert 0.0 <= r[label]["top1"] <= 1.0
            assert r[label]["num_classes"] >= 2
    assert comparison["seed"] == 0 and comparison["jobs"] == 2
    assert comparison["machine"]["cores"] >= 1 and comparison["date"][:2] == "20"
    table = (run / "comparison.md").read_text()
    assert "| evolved λ (ELo) |" in table and "seed 0" in table and "rows 2 at a time" in table

    _check_single_task_rows(run, evals, single=rows[2], oracle=rows[3])

    # each row's commands and output in its own log; the timing printed per row and in all
    for key in ("evolved", "random", "single", "single_2", "frame"):
        lines = (run / "logs" / f"{key}.log").read_text().splitlines()
        outs = {line.split("--out ")[1].split()[0] for line in lines if "--out " in line}
        assert outs and all(Path(o).is_relative_to(run / "models" / key) for o in outs), outs
        assert f"row {key}: " in proc.stdout and f"row {key}: started" in proc.stdout
    assert "demo finished in" in proc.stdout

    # a rerun reuses every row (one at a time this time) and gives the same numbers
    cmd[cmd.index("--jobs") + 1] = "1"
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    rerun = json.loads((run / "comparison.json").read_text())
    assert [r["label"] for r in rerun["rows"]] == [r["label"] for r in rows]
    assert all(r["reused"] for r in rerun["rows"]) and rerun["jobs"] == 1
    assert "| evolved λ (ELo) |" in again.stdout and "reused |" in again.stdout
