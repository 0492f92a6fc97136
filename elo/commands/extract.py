"""``elo-extract``: decode videos and cache modality tensors."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("data_dir", help="folder of videos (any tree) or a CSV manifest")
    p.add_argument("--cache", required=False, help="cache folder")
    p.add_argument("--config", default="demo", help="experiment config (for data params)")
    p.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from elo.cli import not_implemented

    return not_implemented("extract", "issue 3")
