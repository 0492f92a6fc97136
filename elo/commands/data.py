"""``elo-data``: dataset makers."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True)
    demo = sub.add_parser("demo", help="write the built-in audio-visual demo dataset")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--clips", type=int, default=1200)
    demo.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from elo.cli import not_implemented

    return not_implemented("data", "issue 3")
