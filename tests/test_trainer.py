"""The trainer and ``elo-train``: a killed run resumed with ``--resume`` ends with the
same weights and optimizer state as an uninterrupted one; logs, export, one-line load,
non-finite losses named, ``--list-terms``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from test_tasks import real_batch, tiny_cfg, write_clips

import elo
from elo.model.objective import Weights, terms_from_config
from elo.rundir import read_jsonl
from elo.train.trainer import NonFiniteLossError, lr_factor, train_model

ACTIVE = [
    "rgb/reconstruction",
    "rgb/temporal_order",
    "rgb+flow/contrastive",
    "rgb/byol",
    "distill/flow->rgb@2",
]


def run_cfg(steps: int = 6, every: int = 2) -> dict[str, Any]:
    cfg = tiny_cfg(byol={"hidden_dim": 32, "proj_dim": 16})
    cfg["objective"].update(
        {
            "modalities": ["rgb", "flow"],
            "tasks": ["reconstruction", "temporal_order", "contrastive", "byol"],
            "distill": {"student": "rgb", "teachers": ["flow"], "levels": [2]},
        }
    )
    cfg["train"].update(
        {
            "steps": steps,
            "batch_size": 2,
            "lr": 0.003,
            "checkpoint_every": every,
            "warmup_steps": 2,
        }
    )
    cfg["seed"] = 0
    return cfg


def weights_for(cfg: dict[str, Any]) -> Weights:
    terms = terms_from_config(cfg)
    return Weights(terms, {str(t): (0.5 if str(t) in ACTIVE else 0.0) for t in terms})


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_clips(tmp_path_factory.mktemp("train") / "videos", 8, seed=5)


def train_cmd(*args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from elo.cli import train_main; raise SystemExit(train_main())",
        *args,
    ]


def test_killed_run_resumes_to_the_same_weights(data: Path, tmp_path: Path) -> None:
    """A real SIGKILL mid-run, then ``--resume``, against an uninterrupted run."""
    cfg = run_cfg(steps=10, every=2)
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    (tmp_path / "w.json").write_text(json.dumps(weights_for(cfg).to_json()))
    common = ["--config", str(tmp_path / "exp.yaml"), "--weights", str(tmp_path / "w.json")]
    common += ["--data", str(data), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        train_cmd(*common, "--out", str(tmp_path / "full")),
        check=True,
        env=env,
        capture_output=True,
    )

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        train_cmd(*common, "--out", str(killed)), env=env, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        steps = [r["step"] for r in read_jsonl(killed / "train_log.jsonl")]
        if steps and steps[-1] >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    ckpt = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert 2 <= ckpt["step"] < 10 and not (killed / "rgb_encoder.safetensors").exists()

    subprocess.run(
        train_cmd(*common, "--out", str(killed), "--resume"),
        check=True,
        env=env,
        capture_output=True,
    )
    a = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    b = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert a["step"] == b["step"] == 10
    for k, v in a["model"].items():
        assert torch.allclose(v.float(), b["model"][k].float(), atol=1e-5), k
    for i, st in a["optimizer"]["state"].items():
        for k, v in st.items():
            assert torch.allclose(
                torch.as_tensor(v).float(),
                torch.as_tensor(b["optimizer"]["state"][i][k]).float(),
                atol=1e-5,
            )
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    log = list(read_jsonl(killed / "train_log.jsonl"))
    assert [r["step"] for r in log] == list(range(1, 11))  # no step lost or repeated
    full_log = list(read_jsonl(tmp_path / "full" / "train_log.jsonl"))
    assert log[-1]["loss"] == pytest.approx(full_log[-1]["loss"], rel=1e-4)
    x = real_batch(data, 2, ["rgb"])["rgb"]
    e1, e2 = elo.load_encoder(tmp_path / "full"), elo.load_encoder(killed)
    with torch.no_grad():
        assert torch.allclose(e1(x).embedding, e2(x).embedding, atol=1e-5)


def test_train_logs_every_term_and_exports_the_rgb_encoder(data: Path, tmp_path: Path) -> None:
    cfg = run_cfg(steps=3, every=0)
    w = weights_for(cfg)
    res = train_model(cfg, w, data_root=data, steps=3, out_dir=tmp_path, progress=False)
    assert res.steps_done == 3 and len(res.history) == 3
    log = list(read_jsonl(tmp_path / "train_log.jsonl"))
    assert [r["step"] for r in log] == [1, 2, 3]
    for rec in log:
        assert set(ACTIVE) == {k[4:] for k in rec if k.startswith("raw/")}
        for key in ACTIVE:
            # each term divided by its running scale (elo/model/network.py, objective.normalize)
            want = 0.5 * rec[f"raw/{key}"] / rec[f"scale/{key}"]
            assert rec[f"weighted/{key}"] == pytest.approx(want, rel=1e-5)
        assert rec["loss"] == pytest.approx(sum(rec[f"weighted/{k}"] for k in ACTIVE), rel=1e-4)
    assert log[0]["lr"] == pytest.approx(0.003 * lr_factor(0, 3, 2, 0.0))
    enc = elo.load_encoder(tmp_path)
    assert enc.export_info["input"]["modality"] == "rgb"
    assert enc.export_info["input"]["shape"] == [3, 8, 32, 32]
    x = real_batch(data, 2, ["rgb"])["rgb"]
    with torch.no_grad():
        expect = res.model.encoders["rgb"].eval()(x).embedding
        assert torch.allclose(enc(x).embedding, expect, atol=1e-5)
    with pytest.raises(elo.ConfigError, match="already holds a training run"):
        train_model(cfg, w, data_root=data, steps=3, out_dir=tmp_path, progress=False)


def test_non_finite_loss_stops_naming_the_term(data: Path) -> None:
    cfg = run_cfg()
    cfg["objective"]["modalities"] = ["rgb", "flow"]
    terms = terms_from_config(cfg)
    on = {"rgb/reconstruction", "flow/reconstruction"}
    w = Weights(terms, {str(t): float(str(t) in on) for t in terms})
    good = real_batch(data, 2, ["rgb", "flow"])
    bad = {**good, "flow": good["flow"].clone()}
    bad["flow"][0, 0, 0, 0, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="'flow/reconstruction'"):
        train_model(cfg, w, data_root=None, steps=3, progress=False, loader=[good, bad])


def test_cli_list_terms_and_uniform_default(data: Path, tmp_path: Path) -> None:
    from elo.cli import train_main
    from elo.config import load_config

    out = subprocess.run(train_cmd("--list-terms"), check=True, capture_output=True, text=True)
    assert out.stdout.split() == [str(t) for t in terms_from_config(load_config("demo"))]
    cfg = run_cfg(steps=1, every=0)
    cfg["objective"].update({"modalities": ["rgb"], "tasks": ["reconstruction", "temporal_order"]})
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg))
    args = ["--config", str(tmp_path / "exp.yaml"), "--data", str(data)]
    rc = train_main([*args, "--out", str(tmp_path / "run"), "--no-progress"])
    assert rc == 0
    (rec,) = read_jsonl(tmp_path / "run" / "train_log.jsonl")
    assert {k for k in rec if k.startswith("weighted/")} == {
        "weighted/rgb/reconstruction",
        "weighted/rgb/temporal_order",
    }
    # λ = 1: the raw term over its running scale (elo/model/network.py, objective.normalize)
    want = rec["raw/rgb/reconstruction"] / rec["scale/rgb/reconstruction"]
    assert rec["weighted/rgb/reconstruction"] == pytest.approx(want, rel=1e-5)
    assert (
        train_main(["--config", str(tmp_path / "exp.yaml"), "--data", str(data)]) == 2
    )  # no --out
    # one term, no weights file: --only (and --weights term=λ) zero every other term
    for flag in (["--only", "rgb/temporal_order"], ["--weights", "rgb/temporal_order=1"]):
        out = tmp_path / ("run-" + flag[0].strip("-"))
        assert train_main([*args, *flag, "--out", str(out), "--no-progress"]) == 0
        (rec,) = read_jsonl(out / "train_log.jsonl")
        assert {k for k in rec if k.startswith("weighted/")} == {"weighted/rgb/temporal_order"}


def test_lr_schedule_warms_up_then_decays() -> None:
    f = [lr_factor(s, 10, 2, 0.1) for s in range(10)]
    assert f[0] == 0.5 and f[1] == 1.0 and f[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[2:], f[3:], strict=False)) and f[-1] > 0.1
    assert lr_factor(10, 10, 2, 0.1) == pytest.approx(0.1)
