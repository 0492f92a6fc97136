"""One import name: the repository's tasks/, modalities/, search/, baselines/ and configs/
are ``elo.tasks``, ``elo.modalities``, ... (pyproject.toml, docs/architecture.md), so a
user's own ``tasks.py`` (or ``search.py``, ``configs.py``, ``modalities.py``,
``baselines.py``) next to a notebook shadows nothing: neither the public API nor the
console scripts read it. The wheel's only top-level name is checked in test_packaging."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SHADOWS = ("tasks", "search", "configs", "modalities", "baselines")
#: what each user file does when imported: says so on stderr and leaves an empty module
#: (the everyday case: an unrelated file that happens to carry the name)
USER_FILE = "import sys\nsys.stderr.write('IMPORTED USER FILE {name}\\n')\n"
API = (
    "import elo\n"
    "cfg = elo.load_config('demo')\n"
    "terms = [str(t) for t in elo.terms_from_config(cfg)]\n"
    "print(len(terms), terms[0], terms[-1])\n"
    "from elo.search.fitness.base import FITNESSES\n"
    "from elo.model.heads import TASKS\n"
    "print(sorted(FITNESSES.list()), sorted(TASKS.list()))\n"
)


def _folder(root: Path, shadowed: bool) -> Path:
    root.mkdir()
    if shadowed:
        for name in SHADOWS:
            (root / f"{name}.py").write_text(USER_FILE.format(name=name), encoding="utf-8")
    return root


def script(name: str) -> list[str]:
    """The installed console script (next to this interpreter)."""
    return [str(Path(sys.executable).parent / name)]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)


def test_user_files_named_like_our_packages_change_nothing_in_the_public_api(
    tmp_path: Path,
) -> None:
    """``python -c`` puts the working folder first on sys.path: a plain ``import tasks``
    there would read the user's file. The registries still hold every built-in task and
    fitness, and the demo's 24 terms are all there."""
    clean = _run([sys.executable, "-c", API], _folder(tmp_path / "clean", False))
    user = _run([sys.executable, "-c", API], _folder(tmp_path / "notebook", True))
    assert clean.returncode == 0, clean.stderr[-1500:]
    assert user.returncode == 0, user.stderr[-1500:]
    assert "IMPORTED USER FILE" not in user.stderr
    assert user.stdout == clean.stdout
    first = clean.stdout.splitlines()[0].split()
    assert first[0] == "24", clean.stdout  # every built-in task found
    assert "supervised" in clean.stdout and "xmodal" in clean.stdout


@pytest.mark.parametrize(
    "argv",
    [["elo-train", "--list-terms"], ["elo-search", "--help"], ["elo-eval", "--help"]],
    ids=lambda a: a[0],
)
def test_user_files_change_nothing_in_the_console_scripts(tmp_path: Path, argv: list[str]) -> None:
    clean = _run([*script(argv[0]), *argv[1:]], _folder(tmp_path / "clean", False))
    user = _run([*script(argv[0]), *argv[1:]], _folder(tmp_path / "notebook", True))
    assert clean.returncode == 0, clean.stderr[-1500:]
    assert "IMPORTED USER FILE" not in user.stderr
    assert (user.returncode, user.stdout) == (clean.returncode, clean.stdout)


def test_python_dash_m_from_a_user_folder_runs_our_module(tmp_path: Path) -> None:
    """``python -m elo.demo`` (what ``make demo`` runs) from a folder holding ``search.py``
    and ``configs.py``: ours answers."""
    proc = _run([sys.executable, "-m", "elo.demo", "--help"], _folder(tmp_path / "nb", True))
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert proc.stdout.startswith("usage:") and "--final-steps" in proc.stdout
    assert "IMPORTED USER FILE" not in proc.stderr
