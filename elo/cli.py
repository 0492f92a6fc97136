"""Console entry points. A command is ``add_arguments(parser)`` and ``run(args) -> int``;
the core ones (elo-train, elo-eval, elo-extract, elo-data) live in
``elo/commands/<name>.py``, elo-search with the search layer it drives
(``search/cli.py``), all framed by :func:`run_command`. Heavy imports (torch, ray, av,
cv2) happen inside ``run`` so ``--help`` is instant.

User errors (:class:`elo.errors.EloError`) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
import textwrap
from collections.abc import Sequence
from typing import Protocol, cast

DESCRIPTIONS = {
    "search": "Evolve the weights of the self-supervised loss terms (CMA-ES or GA on Ray).",
    "train": "Train a model with a fixed loss weighting and export the RGB encoder.",
    "eval": "Evaluate an exported encoder on a labeled video folder.",
    "extract": "Decode a video folder and cache its RGB / flow / audio tensors.",
    "data": "Make datasets (the built-in demo dataset).",
}

#: commands that read a labeled dataset's split and take ``--fold N`` (elo-eval has its
#: own ``--fold 1|2|3|all``)
FOLD_COMMANDS = ("train", "search")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends ``(default: X)`` only where X is the true default: not for options whose
    help already states it (config-driven ones name the config key and its demo value),
    not ``None`` (the config decides) and not for on/off flags."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default is None or isinstance(action.default, bool):
            return text
        return super()._get_help_string(action)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        """Description and epilog keep their line breaks: each line is wrapped on its own;
        an indented ``  name   text`` line (an epilog's list) hangs under its text."""
        lines = []
        for line in text.split("\n"):
            head = re.match(r"\s+\S+\s+", line)
            hang = " " * (len(head.group(0)) if head else 0)
            lines.append(
                textwrap.fill(
                    line.strip() if not head else line,
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent + hang,
                )
            )
        return "\n".join(lines)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


class Command(Protocol):
    """A console command: a module (or object) with these two functions."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def run_command(name: str, command: Command, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` for ``elo-<name>``, set up logging and run ``command``: the shared
    frame of every console script, wherever the command lives (docs/architecture.md, Layout)."""
    parser = argparse.ArgumentParser(
        prog=f"elo-{name}",
        description=DESCRIPTIONS[name],
        formatter_class=HelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    command.add_arguments(parser)
    if name in FOLD_COMMANDS:
        parser.add_argument(
            "--fold",
            type=_positive_int,
            help="official split fold of a labeled dataset (UCF101 / HMDB51: 1-3); sets "
            "data.fold (default: the config's data.fold; demo: 1)",
        )
    # Intermixed, so `elo-extract DIR --cache X key=val` works (overrides after options);
    # argparse cannot intermix with sub-commands (elo-data), which parse normally.
    if parser._subparsers is None:
        args = parser.parse_intermixed_args(argv)
    else:
        args = parser.parse_args(argv)
    if getattr(args, "fold", None) is not None and name in FOLD_COMMANDS:
        args.overrides = [*args.overrides, f"data.fold={args.fold}"]
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    from elo.errors import EloError

    try:
        return int(command.run(args) or 0)
    except EloError as exc:
        print(f"elo-{name}: error: {exc}", file=sys.stderr)
        return int(getattr(exc, "exit_code", 2))  # 2; 143 for a SIGTERM-stopped elo-train
    except KeyboardInterrupt:
        print(f"elo-{name}: interrupted", file=sys.stderr)
        return 130


def _main(name: str, argv: Sequence[str] | None = None) -> int:
    module = importlib.import_module(f"elo.commands.{name}")
    return run_command(name, cast(Command, module), argv)


def train_main(argv: Sequence[str] | None = None) -> int:
    return _main("train", argv)


def eval_main(argv: Sequence[str] | None = None) -> int:
    return _main("eval", argv)


def extract_main(argv: Sequence[str] | None = None) -> int:
    return _main("extract", argv)


def data_main(argv: Sequence[str] | None = None) -> int:
    return _main("data", argv)
