"""``elo-search``: evolve the loss weights."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="demo", help="experiment config name or YAML path")
    p.add_argument("--data", help="folder of videos (or CSV manifest) to learn from")
    p.add_argument("--population", type=int, default=64, help="individuals per generation")
    p.add_argument("--generations", type=int, default=4)
    p.add_argument("--strategy", choices=["cma", "ga"], default="cma")
    p.add_argument("--fitness", default="zipf", help="zipf | xmodal | combined | weak")
    p.add_argument("--steps", type=int, help="proxy training steps per candidate")
    p.add_argument("--workers", type=int, help="concurrent trials (default: all CPUs)")
    p.add_argument("--address", help="join an existing Ray cluster (default: start locally)")
    p.add_argument("--out", help="run directory (default runs/<timestamp>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed or stopped search")
    p.add_argument("--seed-points", action="store_true", help="inject uniform + single-task λ")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("overrides", nargs="*", help="config overrides key=value")


def run(args: argparse.Namespace) -> int:
    from elo.cli import not_implemented

    return not_implemented("search", "issue 7")
