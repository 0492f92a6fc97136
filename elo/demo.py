"""``make demo``: the main job on the built-in demo dataset.

Steps: make the demo dataset -> extract + cache -> evolve the loss -> distill the
winner into the RGB model -> evaluate. Each step is one of the console commands; a
step whose command is not implemented yet ends the demo early with a clear message.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from elo import cli


def steps(data: str, run: str) -> list[tuple[str, Callable[[Sequence[str]], int], list[str]]]:
    return [
        ("make the demo dataset", cli.data_main, ["demo", "--out", data]),
        ("extract and cache modalities", cli.extract_main, [data, "--cache", f"{data}-cache"]),
        (
            "evolve the loss",
            cli.search_main,
            ["--data", data, "--population", "64", "--out", f"{run}/search"],
        ),
        (
            "distill the winner",
            cli.train_main,
            [
                "--weights",
                f"{run}/search/best_weights.json",
                "--data",
                data,
                "--out",
                f"{run}/final",
            ],
        ),
        ("evaluate", cli.eval_main, ["--encoder", f"{run}/final", "--data", data]),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m elo.demo")
    p.add_argument("--data", default="data/demo")
    p.add_argument("--run", default="runs/demo")
    args = p.parse_args(argv)
    for title, fn, fn_args in steps(args.data, args.run):
        print(f"== {title}: {' '.join(fn_args)}", flush=True)
        rc = fn(fn_args)
        if rc == 2:
            print(f"== demo stops here: '{title}' is not available yet (see README Status)")
            return 0
        if rc != 0:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
