"""Reliability checks from the user's side: config and data errors give one
line and a non-zero exit; a dataset without any audio still searches, without the
audio terms, and says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _media import moving_square, write_video
from _scripts import python_c

from elo.config import load_config
from elo.data.datasets import drop_absent_modalities
from elo.model.objective import terms_from_config
from elo.rundir import read_jsonl


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = python_c(args[0])  # the entry point pyproject.toml names (tests/_scripts.py)
    return subprocess.run(
        [sys.executable, "-c", code, *args[1:]],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )


def _silent_videos(root: Path, n: int = 12) -> Path:
    for i in range(n):
        cls = "left" if i % 2 else "right"
        speed = (-2, 0) if i % 2 else (2, 0)
        frames = moving_square(16, 32, 32, speed=speed, side=8, seed=i)
        write_video(root / cls / f"clip{i:02d}.mp4", frames, fps=8.0, audio=None)
    return root


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("train", "--list-terms", "objective.tasks=[reconstruction,nope]"), "unknown task 'nope'"),
        (("train", "--weights", "{tmp}/missing.json", "--data", "{tmp}"), "weights file not found"),
        (("train", "--weights", "{tmp}/bad.json", "--data", "{tmp}"), "not valid JSON"),
        (("search", "--data", "{tmp}/no_such_folder"), "no_such_folder"),
        (("search", "--data", "{tmp}/empty"), "empty"),
        (("search", "train.stepz=3"), "unknown config key 'train.stepz'"),
        (("eval", "--encoder", "{tmp}/nothing", "--data", "{tmp}"), "encoder.yaml not found"),
    ],
)
def test_user_errors_are_one_line(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    (tmp_path / "bad.json").write_text("{oops")
    (tmp_path / "empty").mkdir()
    proc = _cli(*(a.format(tmp=tmp_path) for a in args), cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith(f"elo-{args[0]}: error: "), proc.stderr
    assert message in err[0]
    assert "Traceback" not in proc.stderr


def test_no_audio_anywhere_drops_audio_terms(tmp_path: Path) -> None:
    root = _silent_videos(tmp_path / "silent")
    cfg = load_config("demo", ["data.clip.size=32"])
    before = {str(t) for t in terms_from_config(cfg)}
    assert drop_absent_modalities(cfg, root) == ["audio"]
    after = {str(t) for t in terms_from_config(cfg)}
    assert after and after < before
    assert not any("audio" in t for t in after)
    assert cfg["fitness"]["references"] == ["flow"]


@pytest.mark.slow
def test_search_runs_on_a_dataset_without_audio(tmp_path: Path) -> None:
    root = _silent_videos(tmp_path / "silent")
    run = tmp_path / "run"
    sizes = ["--population", "2", "--generations", "1", "--steps", "1", "--workers", "1"]
    proc = _cli("search", "--data", str(root), *sizes, "--out", str(run), "train.batch_size=4")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "searching without audio" in proc.stdout
    evals = list(read_jsonl(run / "evaluations.jsonl"))
    assert len(evals) == 2 and all(e["status"] == "ok" for e in evals), evals
    weights = json.loads((run / "best_weights.json").read_text())["weights"]
    assert weights and not any("audio" in k for k in weights)
