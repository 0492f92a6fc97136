"""``elo-train``: train with fixed loss weights and export the RGB encoder."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="demo", help="experiment config name or YAML path")
    p.add_argument("--weights", help='JSON {"weights": {term: λ}} (default: uniform)')
    p.add_argument("--objective", help="baseline objective instead of ELo terms: byol | simsiam")
    p.add_argument("--data", help="folder of videos / images to train on")
    p.add_argument("--steps", type=int)
    p.add_argument("--out", help="output folder for checkpoints, logs and the export")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--list-terms", action="store_true", help="print the term keys and exit")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from elo.cli import not_implemented

    return not_implemented("train", "issue 4")
