"""The ``python -m elo.demo`` command line (:func:`parse_options`) and the table's rows
(:data:`CONTENDERS`); docs/demo.md lists the rows and what each trains."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elo.demo.processes import cores

#: rows of the comparison table, in order (``--contenders`` chooses among them)
CONTENDERS = (
    "frame",
    "timemean",
    "motion",
    "pixels",
    "random",
    "supervised",
    "uniform",
    "uniform_tuned",
    "rlw",
    "uncertainty",
    "single",
    "oracle",
    "byol",
    "simsiam",
    "clip_byol",
    "clip_simsiam",
    "evolved",
)
#: rows left out by default because they duplicate another row: the label-free lr grid
#: picks the final lr (x1 of configs/train/final.yaml), so "uniform λ (tuned lr)" trains
#: what "uniform λ" trains; pixel statistics are the motion statistics plus per-cell
#: colour means (time-mean appearance), 0.503 against 0.500 in docs/results.md (Demo results)
DUPLICATES = {"uniform_tuned": "uniform", "pixels": "motion"}
#: the rows ``make demo`` runs
DEFAULT_CONTENDERS = tuple(c for c in CONTENDERS if c not in DUPLICATES)
#: parameter-free probe rows: what a linear probe reads from raw clips without learning
PROBES = ("frame", "timemean", "motion", "pixels")
#: the nuisance probe's labels.csv column per demo style: the digit / glyph for a and b;
#: style c's test split has other shapes than its train split (elo/data/demo_c.py), so
#: its nuisance probe reads the object's texture (solid, stripes, noise: in both splits)
NUISANCE = {"a": "identity", "b": "identity", "c": "texture"}


@dataclass(frozen=True)
class DemoOptions:
    """The parsed ``python -m elo.demo`` options (see :func:`parse_options`)."""

    data: Path
    run: Path
    config: str = "demo"
    clips: int = 1200
    style: str = "a"
    population: int = 64
    generations: int = 2
    proxy_steps: int | None = None
    final_steps: int = 300
    workers: int | None = None
    fitness: str | None = None
    seed: int = 0
    contenders: tuple[str, ...] = DEFAULT_CONTENDERS
    jobs: int = 2
    threads: int | None = None
    oracle_k: int = 3
    search_args: tuple[str, ...] = field(default_factory=tuple)
    nuisance: str | None = None

    @property
    def nuisance_label(self) -> str:
        """The labels.csv column of the nuisance probe (:data:`NUISANCE` by style)."""
        return self.nuisance or NUISANCE[self.style]

    @property
    def log(self) -> Path:
        return self.run / "demo.log"

    def row_log(self, key: str) -> Path:
        return self.run / "logs" / f"{key}.log"

    @property
    def row_threads(self) -> int:
        """Torch threads of each row: ``--threads``, else the cores shared by the jobs."""
        return self.threads or max(1, cores() // self.jobs)

    @property
    def cfg(self) -> list[str]:
        return ["--config", self.config]

    @property
    def seed_args(self) -> list[str]:
        return ["--seed", str(self.seed)]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def _add_search_options(parser: argparse.ArgumentParser) -> None:
    """Steps 1 and 2: the dataset and the loss search."""
    p = parser.add_argument_group("the dataset and the loss search (steps 1 and 2)")
    p.add_argument("--data", default="data/demo")
    p.add_argument("--run", default="runs/demo")
    p.add_argument("--config", default="demo")
    p.add_argument("--clips", type=int, default=1200)
    p.add_argument(
        "--style",
        choices=("a", "b", "c"),
        default="a",
        help="demo generator when the dataset is made (elo-data demo --style)",
    )
    p.add_argument("--population", type=int, default=64)
    p.add_argument("--generations", type=int, default=2)
    p.add_argument("--proxy-steps", type=int, default=None, help="default: train.steps")
    p.add_argument("--workers", type=int, default=None, help="the search's concurrent trials")
    p.add_argument("--fitness", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--search-args",
        default="",
        help='more elo-search arguments, one shell-quoted string (e.g. "search.steps=30")',
    )


def _add_row_options(parser: argparse.ArgumentParser) -> None:
    """Steps 3 and 4: the rows, how many at a time, and the probes."""
    p = parser.add_argument_group("the rows: training and probing (steps 3 and 4)")
    p.add_argument("--final-steps", type=int, default=300, help="budget of every model")
    p.add_argument(
        "--jobs",
        type=_positive,
        default=2,
        help="rows trained and probed at a time (default 2; 1 = one after another)",
    )
    p.add_argument(
        "--threads",
        type=_positive,
        default=None,
        help="torch threads of each row (default: cores // jobs, at least 1)",
    )
    p.add_argument(
        "--oracle-k",
        type=_positive,
        default=3,
        help="the oracle row trains the K fittest single tasks and keeps the best by the "
        "test probe (default 3)",
    )
    p.add_argument(
        "--nuisance",
        help="labels.csv column of the nuisance probe (default: identity; texture on style c)",
    )
    p.add_argument(
        "--contenders",
        default=",".join(DEFAULT_CONTENDERS),
        help=f"comma list of rows to train and evaluate, from {','.join(CONTENDERS)} "
        f"(default: all but {','.join(DUPLICATES)}, which duplicate other rows)",
    )


def parse_options(argv: Sequence[str] | None = None) -> DemoOptions:
    """The options of ``argv`` (default: the command line); a bad one exits 2 naming it."""
    p = argparse.ArgumentParser(
        prog="python -m elo.demo",
        description="make demo: the whole method on the built-in demo dataset, in one command.",
    )
    _add_search_options(p)
    _add_row_options(p)
    args = p.parse_args(argv)
    wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = sorted(set(wanted) - set(CONTENDERS))
    if unknown:
        p.error(f"unknown contender(s) {', '.join(unknown)}; choose from {', '.join(CONTENDERS)}")
    try:
        search_args = tuple(shlex.split(args.search_args))
    except ValueError as exc:
        p.error(f"--search-args {args.search_args!r}: {exc}")
    return DemoOptions(
        data=Path(args.data),
        run=Path(args.run),
        config=args.config,
        clips=args.clips,
        style=args.style,
        population=args.population,
        generations=args.generations,
        proxy_steps=args.proxy_steps,
        final_steps=args.final_steps,
        workers=args.workers,
        fitness=args.fitness,
        seed=args.seed,
        contenders=tuple(wanted),
        jobs=args.jobs,
        threads=args.threads,
        oracle_k=args.oracle_k,
        search_args=search_args,
        nuisance=args.nuisance,
    )
