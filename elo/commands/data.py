"""``elo-data``: dataset makers."""

from __future__ import annotations

import argparse
from typing import Any


def add_arguments(p: argparse.ArgumentParser) -> None:
    from elo.config import load_part

    d = load_part("data", "demo")["demo"]  # the defaults: configs/data/demo.yaml
    sub = p.add_subparsers(dest="what", required=True)
    demo = sub.add_parser("demo", help="write the built-in audio-visual demo dataset")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--clips", type=int, default=d["clips"])
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--classes", type=int, default=d["classes"], help="number of actions (2..8)")
    demo.add_argument(
        "--zipf", type=float, default=d["zipf"], help="class-size exponent (train pool)"
    )
    demo.add_argument(
        "--test-fraction", type=float, default=d["test_fraction"], help="balanced test split"
    )
    demo.add_argument("--workers", type=int, help="processes (default: all CPUs)")
    demo.add_argument(
        "--style",
        choices=("a", "b", "c"),
        default="a",
        help="generator: a (digits), b (glyphs), c (independent, to confirm defaults)",
    )
    demo.add_argument(
        "--audio",
        choices=("tied", "independent", "absent"),
        help="style c only: sound tied to the class, independent of it, or none (default tied)",
    )


def _style_options(args: argparse.Namespace) -> dict[str, Any]:
    from elo.errors import DataError

    if args.audio is not None and args.style != "c":
        raise DataError(f"--audio is for --style c only (got --style {args.style})")
    return {"style": args.style, **({"audio": args.audio} if args.audio else {})}


def run(args: argparse.Namespace) -> int:
    import time

    from elo.data.demo_data import make_demo

    options = _style_options(args)
    t0 = time.perf_counter()
    out = make_demo(
        args.out,
        clips=args.clips,
        seed=args.seed,
        workers=args.workers,
        progress=True,
        classes=args.classes,
        zipf=args.zipf,
        test_fraction=args.test_fraction,
        **options,
    )
    print(f"elo-data: wrote {args.clips} clips to {out} in {time.perf_counter() - t0:.1f} s")
    return 0
