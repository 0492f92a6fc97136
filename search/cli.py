"""``elo-search``: evolve the loss weights (CMA-ES or GA over λ, trials on Ray Tune; or
population-based training, ``--strategy pbt | pb2``, search/pbt.py).

The command lives with the search layer it drives; :func:`main` runs it in the frame
every console script shares (``elo.cli.run_command``: logging, one-line errors).
Options left unset come from the config (``configs/search/base.yaml``); with
``--resume RUN_DIR`` the run's own ``config.yaml`` is used and only ``--address``
and ``--workers`` (which do not change results) apply.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from elo.cli import Command, run_command


def config_defaults(config: str = "demo") -> dict[str, Any]:
    """What a search with no flags uses (``--config`` ``config``), for ``--help``; empty
    when the config cannot be read (help must still print)."""
    try:
        flags: dict[str, Any] = {**dict.fromkeys(_FLAGS), "overrides": []}
        cfg = resolve_config(argparse.Namespace(config=config, **flags))
    except Exception:
        return {}
    s = cfg["search"]
    return {
        "population": s["population"],
        "generations": s["generations"],
        "strategy": s["strategy"],
        "fitness": cfg["fitness"]["kind"],
        "steps": s["steps"] if s["steps"] is not None else cfg["train"]["steps"],
        "seed": cfg["seed"],
    }


_FLAGS = (
    "data",
    "population",
    "generations",
    "strategy",
    "fitness",
    "steps",
    "workers",
    "seed_points",
    "seed",
    "overrides",
)


def fitness_kinds() -> dict[str, str]:
    """Every kind of the fitness registry (library modules and ``elo.fitness`` plug-ins)
    with the first sentence of its docstring, for ``--help``."""
    from elo.search.fitness.base import FITNESSES

    out = {}
    for kind in FITNESSES.list():
        doc = inspect.getdoc(FITNESSES.get(kind)) or ""
        text = " ".join(doc.split("\n\n")[0].split())
        text = re.sub(r":\w+:`~?([^`]+)`", r"\1", text).replace("``", "")
        out[kind] = text.split(". ")[0].rstrip(".")
    return out


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = config_defaults()

    def dflt(key: str, name: str) -> str:
        return f"default: {key} of --config; demo: {d[name]}" if name in d else f"config: {key}"

    p.add_argument("--config", default="demo", help="experiment config name or YAML path")
    p.add_argument("--data", help="folder of videos (or CSV manifest) to learn from")
    p.add_argument(
        "--population",
        type=int,
        help=f"individuals per generation ({dflt('search.population', 'population')})",
    )
    p.add_argument(
        "--generations", type=int, help=f"generations ({dflt('search.generations', 'generations')})"
    )
    p.add_argument(
        "--strategy",
        choices=["cma", "ga", "pbt", "pb2"],
        help="CMA-ES or GA over generations, or population-based training of the final "
        "model (pbt | pb2: Ray Tune's PBT / PB2; --population and --steps then set "
        "search.pbt.population and .steps; docs/search.md) "
        f"({dflt('search.strategy', 'strategy')})",
    )
    kinds = fitness_kinds()
    p.add_argument(
        "--fitness",
        help=" | ".join(kinds) + " (the fitness registry: settings in configs/fitness/<kind>"
        f".yaml, plug-ins through elo.fitness entry points; {dflt('fitness.kind', 'fitness')})",
    )
    p.epilog = "fitness kinds:\n" + "\n".join(f"  {k:<10} {line}" for k, line in kinds.items())
    p.add_argument(
        "--steps",
        type=int,
        help=f"proxy training steps per candidate ({dflt('search.steps or train.steps', 'steps')})",
    )
    p.add_argument("--workers", type=int, help="concurrent trials (default: all CPUs)")
    p.add_argument("--address", help="join an existing Ray cluster (default: start locally)")
    p.add_argument("--out", help="run directory (default: runs/search-<timestamp>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a killed or stopped search")
    p.add_argument("--seed-points", action="store_true", help="inject uniform + single-task λ")
    p.add_argument("--seed", type=int, help=f"experiment seed ({dflt('seed', 'seed')})")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")


def resolve_config(args: argparse.Namespace) -> dict[str, Any]:
    """The experiment config with the command-line flags and overrides applied, checked
    (every key present, every number in range) before anything is created; the
    ``search`` section is parsed once, later, by
    :meth:`search.settings.SearchSettings.from_config`."""
    from elo.config import apply_overrides, load_config, require, resolve_config_path
    from elo.config_values import check_config
    from elo.search.pbt_settings import PBT_STRATEGIES
    from elo.search.settings import fitness_section

    sources: dict[str, Path] = {}
    cfg = load_config(args.config, sources=sources)
    flags = {
        "population": args.population,
        "generations": args.generations,
        "strategy": args.strategy,
        "steps": args.steps,
        "workers": args.workers,
    }
    if (args.strategy or require(cfg, "search.strategy", str)) in PBT_STRATEGIES:
        pbt = require(cfg, "search.pbt", dict)  # search/pbt.py
        for key in ("population", "steps"):
            if flags[key] is not None:
                pbt[key] = flags.pop(key)
    cfg["search"].update({k: v for k, v in flags.items() if v is not None})
    if args.seed_points:
        cfg["search"]["seed_points"] = True
    if args.seed is not None:
        cfg["seed"] = args.seed
    if args.data:
        cfg["data"]["root"] = args.data
    if args.fitness and args.fitness != cfg["fitness"]["kind"]:
        cfg["fitness"] = fitness_section(args.fitness)
        sources["fitness"] = resolve_config_path(args.fitness, "fitness")
    cfg = apply_overrides(cfg, args.overrides)
    check_config(cfg, sources)
    return cfg


def _echo(line: str) -> None:
    print(line, flush=True)


def run(args: argparse.Namespace) -> int:
    from elo.search.prepare import drop_absent_modalities
    from elo.search.run import run_search
    from elo.search.rundir import load_run_config, prepare_run_dir
    from elo.search.settings import SearchSettings

    if args.resume:
        cfg = load_run_config(args.resume)
        run_dir = args.resume
        settings = SearchSettings.from_config(cfg)
    else:
        cfg = resolve_config(args)
        settings = SearchSettings.from_config(cfg)  # validate before creating anything
        drop_absent_modalities(cfg, _echo)
        run_dir = str(prepare_run_dir(cfg, args.out))
    out = run_search(
        cfg,
        run_dir,
        resume=bool(args.resume),
        address=args.address,
        workers=args.workers,
        settings=settings,
    )
    return 0 if out["finished"] else 130


def main(argv: Sequence[str] | None = None) -> int:
    """The ``elo-search`` console script (pyproject.toml)."""
    return run_command("search", cast(Command, sys.modules[__name__]), argv)
