"""``elo-train`` hardening (docs/reliability.md): SIGTERM finishes the step,
checkpoints and exits 143, and ``--resume`` continues; a resume before the first
checkpoint starts over without duplicating log records; one writer per run folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
import yaml
from test_tasks import write_clips
from test_trainer import run_cfg, train_cmd, weights_for

from elo.errors import LockedError
from elo.rundir import DirLock, read_jsonl
from elo.train.trainer import train_model

STEPS = 12


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clips(tmp_path_factory.mktemp("train") / "videos", 6, seed=7)


def _start(tmp_path: Path, data: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    cfg = run_cfg(steps=STEPS, every=0)  # checkpoint only at the end (or on SIGTERM)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "w.json").write_text(json.dumps(weights_for(cfg).to_json()))
    files = ["--config", str(tmp_path / "exp.yaml"), "--weights", str(tmp_path / "w.json")]
    cmd = train_cmd(*files, "--data", str(data), "--no-progress", "--out", str(out), *extra)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)


def _wait_steps(proc: subprocess.Popen[str], log: Path, n: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(read_jsonl(log))) >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"the run ended or stalled before step {n}")


def _steps(log: Path) -> list[int]:
    return [int(r["step"]) for r in read_jsonl(log)]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_sigterm_checkpoints_and_resume_finishes(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(tmp_path, data, out)
    _wait_steps(proc, out / "train_log.jsonl", 3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-2000:]
    lines = [ln for ln in err.splitlines() if "elo-train" in ln]
    assert (
        len(lines) == 1 and "stopped by SIGTERM after step" in lines[0] and "--resume" in lines[0]
    )
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    done = _steps(out / "train_log.jsonl")
    assert 3 <= ckpt["step"] < STEPS and done == list(range(1, ckpt["step"] + 1))
    proc = _start(tmp_path, data, out, "--resume")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    assert _steps(out / "train_log.jsonl") == list(range(1, STEPS + 1))
    assert (out / "rgb_encoder.safetensors").exists()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_resume_before_the_first_checkpoint_repeats_no_record(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _start(tmp_path, data, out)
    _wait_steps(proc, out / "train_log.jsonl", 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "checkpoint.pt").exists() and len(_steps(out / "train_log.jsonl")) >= 3
    proc = _start(tmp_path, data, out, "--resume")
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err[-2000:]
    assert _steps(out / "train_log.jsonl") == list(range(1, STEPS + 1))  # once each


def test_second_trainer_on_one_folder_is_refused(data: Path, tmp_path: Path) -> None:
    cfg = run_cfg(steps=1, every=0)
    with DirLock(tmp_path / "run", "elo-train"), pytest.raises(LockedError, match="in use by"):
        w = weights_for(cfg)
        train_model(cfg, w, data_root=data, steps=1, out_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "train_log.jsonl").exists()
