"""End to end on real encoded video: tiny search -> distill the winner -> evaluate.

The same driver as ``make demo`` (``python -m elo.demo``), at a size the suite can
afford: 48 demo clips written with PyAV, a real Ray runtime, population 4 for one
generation with the uniform + single-task seed points, then the evolved λ and a
random-init encoder trained / exported and probed on the test split.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from elo.config import load_config
from elo.model.objective import Weights, terms_from_config
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


@pytest.mark.slow
def test_search_distill_evaluate(tmp_path: Path) -> None:
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(TINY)
    data, run = tmp_path / "data", tmp_path / "run"
    cmd = [sys.executable, "-m", "elo.demo", "--data", str(data), "--run", str(run),
           "--config", str(cfg), "--clips", "48", "--population", "4", "--generations",
           "1", "--final-steps", "3", "--contenders", "random,evolved", "--workers", "2"]  # fmt: skip
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

    # evaluate: both labels probed on the test split, for both rows of the table
    rows = json.loads((run / "comparison.json").read_text())["rows"]
    assert [r["model"] for r in rows] == ["random init", "evolved λ (ELo)"]
    for r in rows:
        for label in ("label", "identity"):
            assert 0.0 <= r[label]["top1"] <= 1.0
            assert r[label]["num_classes"] >= 2
    table = (run / "comparison.md").read_text()
    assert "| evolved λ (ELo) |" in table and "seed 0" in table
