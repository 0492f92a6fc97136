"""``--help`` states true defaults: no ``(default: None)``, the search's config-driven
defaults are those a flag-less run resolves (the demo's fitness is xmodal, not zipf), and
``--fold`` reaches the dataset of ``elo-train``."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest
from _media import moving_square, write_video
from _scripts import COMMANDS, main_of


def _help(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(_help_raw(name, capsys).split())  # unwrap argparse's line breaks


@pytest.mark.parametrize("name", COMMANDS)
def test_help_never_claims_a_none_or_flag_default(name: str, capsys) -> None:
    text = _help(name, capsys)
    assert "(default: None)" not in text and "(default: False)" not in text
    assert text.count("(default: ") >= 1 or name == "data"


def test_search_help_shows_what_a_flagless_run_uses(capsys) -> None:
    from elo.search.cli import resolve_config

    text = _help("search", capsys)
    names = ["data", "population", "generations", "strategy", "fitness", "steps", "workers"]
    flags = dict.fromkeys([*names, "seed_points", "seed"])
    cfg = resolve_config(argparse.Namespace(config="demo", overrides=[], **flags))
    assert cfg["fitness"]["kind"] == "xmodal"
    want = {
        "search.population": cfg["search"]["population"],
        "search.generations": cfg["search"]["generations"],
        "search.strategy": cfg["search"]["strategy"],
        "fitness.kind": cfg["fitness"]["kind"],
        "search.steps or train.steps": cfg["search"].get("steps") or cfg["train"]["steps"],
        "seed": cfg["seed"],
    }
    for key, value in want.items():
        assert re.search(rf"default: {re.escape(key)} of --config; demo: {value}\)", text), key
    assert "(zipf)" not in text


def test_search_help_lists_every_fitness_of_the_registry(capsys) -> None:
    """The --fitness help and the epilog come from the registry, so a plug-in kind
    (registered here, the way an ``elo.fitness`` entry point would be) is listed too."""
    from elo.search.fitness.base import FITNESSES

    @FITNESSES.register("zz_plugin")
    class ZzPlugin:
        """Scores nothing useful. A second sentence the listing leaves out."""

    try:
        raw = _help_raw("search", capsys)
    finally:
        FITNESSES.remove("zz_plugin")
    kinds = FITNESSES.list()
    assert {"zipf", "xmodal", "weak", "synthetic"} <= set(kinds)
    text = " ".join(raw.split())
    assert " | ".join([*sorted([*kinds, "zz_plugin"])]) in text
    listing = raw.split("fitness kinds:\n", 1)[1].splitlines()
    names = [ln.split()[0] for ln in listing if ln.startswith("  ") and not ln.startswith("   ")]
    assert names == sorted([*kinds, "zz_plugin"])
    assert "  zz_plugin  Scores nothing useful\n" in raw and "second sentence" not in raw


def _help_raw(name: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main_of(name)(["--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_train_fold_flag_reaches_the_dataset(tmp_path: Path, capsys) -> None:
    root = tmp_path / "ucf"
    for c in ("A", "B"):
        write_video(root / c / f"v_{c}_g01_c01.avi", moving_square(16, 32, 32), fps=8.0)
    (root / "trainlist01.txt").write_text("A/v_A_g01_c01.avi 1\n")
    (root / "testlist01.txt").write_text("B/v_B_g01_c01.avi\n")
    args = ["--data", str(root), "--steps", "1", "--out", str(tmp_path / "out"), "--fold", "3"]
    assert main_of("train")(args) == 2
    assert "no fold 3 in this ucf101 layout (folds: 1)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main_of("train")([*args[:-1], "0"])
    assert exc.value.code == 2
