"""``elo-data``: dataset makers."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True)
    demo = sub.add_parser("demo", help="write the built-in audio-visual demo dataset")
    demo.add_argument("--out", required=True, help="output folder")
    demo.add_argument("--clips", type=int, default=1200)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--classes", type=int, default=8, help="number of actions (2..8)")
    demo.add_argument("--zipf", type=float, default=1.0, help="class-size exponent (train pool)")
    demo.add_argument("--test-fraction", type=float, default=0.25, help="balanced test split")
    demo.add_argument("--workers", type=int, help="processes (default: all CPUs)")


def run(args: argparse.Namespace) -> int:
    import time

    from elo.data.demo_data import make_demo

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
    )
    print(f"elo-data: wrote {args.clips} clips to {out} in {time.perf_counter() - t0:.1f} s")
    return 0
