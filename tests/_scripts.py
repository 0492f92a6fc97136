"""The console scripts as pyproject.toml declares them (``elo-<command>`` ->
``module:function``), so tests call each command through its real entry point
wherever the command lives (elo/cli.py, search/cli.py)."""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = ["search", "train", "eval", "extract", "data"]


def scripts() -> dict[str, str]:
    """``{"elo-train": "elo.cli:train_main", ...}`` from ``[project.scripts]``."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    return dict(tomllib.loads(text)["project"]["scripts"])


def target(command: str) -> tuple[str, str]:
    """``(module, function)`` of ``elo-<command>``."""
    module, _, func = scripts()[f"elo-{command}"].partition(":")
    return module, func


def main_of(command: str) -> Callable[[Sequence[str] | None], int]:
    """The entry point function of ``elo-<command>``."""
    module, func = target(command)
    main: Callable[[Sequence[str] | None], int] = getattr(importlib.import_module(module), func)
    return main


def python_c(command: str) -> str:
    """``python -c`` code that runs ``elo-<command>`` with ``sys.argv[1:]``."""
    module, func = target(command)
    return f"import sys; from {module} import {func}; sys.exit({func}(sys.argv[1:]))"
