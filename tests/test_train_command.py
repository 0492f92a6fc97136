"""``elo-train`` (elo/commands/train.py): it dispatches ``--objective`` through the
``OBJECTIVES`` registry (the ``elo.objectives`` entry points: BYOL and SimSiam), the
baseline trainer honours ``--config`` and the overrides, and what it cannot use (an ELo
experiment, an option of ELo training) is refused in one line with exit 2 before
anything is written."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from _scripts import main_of, target

from elo.config import configs_dir

TINY = [
    "encoder.arch=small_cnn",
    "encoder.width=4",
    "train.batch_size=8",
    "train.checkpoint_every=0",
    "data.image_size=12",
]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 labeled 8x8 digit images (scikit-learn's) as PNG files, root/<class>/<i>.png."""
    import torch
    from sklearn.datasets import load_digits
    from torchvision.io import write_png

    root = tmp_path_factory.mktemp("imgs") / "data"
    d = load_digits()
    for i in range(60):
        x = torch.tensor(d.images[i] / 16.0 * 255, dtype=torch.uint8)[None].repeat(3, 1, 1)
        (root / f"d{int(d.target[i])}").mkdir(parents=True, exist_ok=True)
        write_png(x, str(root / f"d{int(d.target[i])}" / f"{i}.png"))
    return root


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    rc = main_of("train")(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_elo_train_lives_in_elo_commands() -> None:
    import importlib

    module, func = target("train")
    assert (module, func) == ("elo.cli", "train_main")
    train = importlib.import_module("elo.commands.train")
    assert Path(str(train.__file__)).parent == Path(__file__).resolve().parents[1] / "elo" / (
        "commands"
    )


def test_byol_and_simsiam_come_from_the_registry() -> None:
    from elo.commands.train import OBJECTIVES

    assert {"byol", "simsiam"} <= set(OBJECTIVES.list())
    assert OBJECTIVES.origin("byol") == "elo.baselines.trainer.train_byol"
    assert OBJECTIVES.origin("simsiam") == "elo.baselines.trainer.train_simsiam"


@pytest.fixture
def recorder() -> Iterator[list[dict[str, Any]]]:
    """A stand-in objective ``zz_obj`` in the registry that records its call."""
    from elo.commands.train import OBJECTIVES

    calls: list[dict[str, Any]] = []

    def zz_obj(data: str | None, **options: Any) -> int:
        calls.append({"data": data, **options})
        return 0

    OBJECTIVES.add("zz_obj", zz_obj)
    try:
        yield calls
    finally:
        OBJECTIVES.remove("zz_obj")


def test_objective_is_dispatched_through_the_registry(
    recorder: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--objective", "zz_obj", "--data", "d", "--config", "c.yaml", "--steps", "3"]
    assert _run([*argv, "--out", "o", "--fold", "2", "a.b=1"], capsys)[0] == 0
    (call,) = recorder
    assert call == {
        "data": "d",
        "config": "c.yaml",
        "overrides": ["a.b=1", "data.fold=2"],
        "steps": 3,
        "seed": None,
        "out": "o",
        "device": "cpu",
        "resume": False,
    }
    rc, _, err = _run(["--objective", "nope", "--data", "d"], capsys)
    assert rc == 2 and "unknown objective 'nope'; known: byol, simsiam" in err


ELO_ONLY = [
    ["--weights", "w.json"],
    ["--weighting", "rlw"],
    ["--only", "rgb/future"],
    ["--lr-grid", "0.1,0.2"],
    ["--train", "proxy"],
    ["--list-terms"],
    ["--lr-grid-steps", "3"],
]


@pytest.mark.parametrize("flag", ELO_ONLY)
def test_options_of_elo_training_are_refused_with_an_objective(
    flag: list[str], recorder: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, _, err = _run(["--objective", "zz_obj", "--data", "d", *flag], capsys)
    assert rc == 2 and not recorder
    assert err.count("\n") == 1 and f"{flag[0]} is an option of ELo training" in err


def test_baseline_honours_its_config_file_and_overrides(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A baseline config of one's own (a copy of configs/baseline/byol.yaml with other
    values) is the one trained with: its keys reach the run, the overrides on top."""
    own = yaml.safe_load((configs_dir() / "baseline" / "byol.yaml").read_text())
    own["byol"].update(hidden_dim=24, proj_dim=8)
    own["train"]["steps"] = 3
    own["seed"] = 7
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(own))
    out = tmp_path / "run"
    argv = ["--objective", "byol", "--config", str(tmp_path / "mine.yaml"), "--data", str(images)]
    rc, stdout, err = _run([*argv, "--out", str(out), *TINY, "train.log_every=1"], capsys)
    assert rc == 0, err
    used = yaml.safe_load((out / "config.yaml").read_text())
    assert (used["byol"]["hidden_dim"], used["byol"]["proj_dim"], used["seed"]) == (24, 8, 7)
    assert used["encoder"]["width"] == 4 and used["train"]["log_every"] == 1
    assert json.loads((out / "summary.json").read_text())["steps"] == 3
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    assert "byol: 3 steps" in stdout


def test_a_config_the_baseline_cannot_use_is_refused_before_anything_is_written(
    images: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    base = ["--objective", "byol", "--data", str(images), "--out", str(out)]
    rc, _, err = _run([*base, "--config", "demo"], capsys)
    demo = configs_dir() / "experiment" / "demo.yaml"
    assert rc == 2 and err.count("\n") == 1
    assert f"{demo} is an ELo experiment, which --objective byol cannot use" in err
    assert "byol, simsiam" in err
    rc, _, err = _run([*base, "--config", "simsiam"], capsys)
    assert rc == 2 and "is for objective 'simsiam', not 'byol'" in err
    partial = tmp_path / "partial.yaml"
    partial.write_text("objective: byol\ntrain:\n  steps: 2\n")
    rc, _, err = _run([*base, "--config", str(partial)], capsys)
    assert rc == 2 and f"{partial}: missing config key" in err
    rc, _, err = _run([*base, "--config", "nope"], capsys)
    assert rc == 2 and "no config 'nope'" in err
    assert not out.exists()


def test_help_lists_the_objectives_without_importing_them() -> None:
    """``elo-train --help`` names every ``--objective`` from the entry points, and
    importing none of them keeps it instant (tests/test_cli.py: no torch)."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom elo.cli import train_main\n"
        "try:\n    train_main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', 'elo.baselines.trainer' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "byol | simsiam" in " ".join(out.stdout.split())
    assert "LOADED False" in out.stdout
