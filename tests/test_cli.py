"""Console scripts: --help is instant (no torch), unimplemented commands exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _scripts import COMMANDS, target


@pytest.mark.parametrize("name", COMMANDS)
def test_help_does_not_import_heavy_modules(name: str) -> None:
    module, func = target(name)
    code = (
        "import sys\n"
        f"from {module} import {func}\n"
        f"try:\n    {func}(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
        "heavy = ('torch', 'ray', 'av', 'cv2', 'deap', 'sklearn')\n"
        "heavy = [m for m in heavy if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: elo-" in out.stdout
    assert "HEAVY []" in out.stdout


def test_user_error_is_one_line_exit_2(tmp_path: object) -> None:
    from elo import cli
    from elo.errors import ConfigError

    def boom(args: object) -> int:
        raise ConfigError("unknown task 'x'; known: a, b")

    import elo.commands.extract as mod

    orig = mod.run
    mod.run = boom  # type: ignore[assignment]
    try:
        assert cli.extract_main(["somewhere"]) == 2
    finally:
        mod.run = orig
