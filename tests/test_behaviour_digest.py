"""benchmarks/behaviour_digest.py --diff: the value-level comparison of two digests that
docs/results.md ("Behaviour kept across the house refactor") reports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "behaviour_digest.py"

BEFORE = """\
run/config.yaml {"model": {"depth": 4}, "train": {"lr": 0.002}}
run/log.jsonl 0 {"loss": 1.5, "step": 1}
run/rgb.safetensors conv.weight 1a2b3c4d5e6f7a8b
run/notes.txt file
"""


def _diff(tmp_path: Path, after: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "a.txt").write_text(BEFORE)
    (tmp_path / "b.txt").write_text(after)
    cmd = [sys.executable, str(SCRIPT), "--diff", str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def test_identical_digests_exit_0(tmp_path: Path) -> None:
    proc = _diff(tmp_path, BEFORE)
    assert (proc.returncode, proc.stdout) == (0, "0 differing values\n")


def test_each_differing_value_is_named(tmp_path: Path) -> None:
    after = (
        BEFORE.replace('"depth": 4}', '"depth": 4, "init": "kaiming"}')
        .replace('"loss": 1.5', '"loss": 1.25')
        .replace("1a2b3c4d5e6f7a8b", "ffff3c4d5e6f7a8b")
    )
    proc = _diff(tmp_path, after)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "run/config.yaml: model.init: <absent> -> kaiming",
        "run/log.jsonl 0: loss: 1.5 -> 1.25",
        "run/rgb.safetensors conv.weight: 1a2b3c4d5e6f7a8b -> ffff3c4d5e6f7a8b",
        "3 differing values",
    ]
