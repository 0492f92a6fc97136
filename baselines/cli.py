"""``elo-train``: train with fixed loss weights and export the RGB encoder.

    elo-train --weights W.json --data D --steps N --out DIR [--resume] [key=value ...]
    elo-train --weighting uniform|rlw|uncertainty [--lr-grid 0.001,0.002,0.004] ...
    elo-train --list-terms
    elo-train --objective byol|simsiam ...      (baselines, see baselines/trainer.py)

Writes ``DIR/train_log.jsonl`` (every raw and weighted term, each step),
``DIR/checkpoint.pt`` and ``DIR/rgb_encoder.safetensors`` + ``DIR/encoder.yaml``
(``elo.load_encoder(DIR)``).

The command lives here, at the top of the layers it drives (the ELo trainer of
``elo/train/trainer.py`` and the baseline trainer of ``baselines/trainer.py``), so the
core ``elo/`` imports no baseline; its frame is ``elo.cli.run_command``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="demo", help="experiment config name or YAML path")
    p.add_argument(
        "--weights",
        help='JSON {"weights": {term: λ}} (default: uniform), or a λ schedule '
        '{"schedule": [{"from_step": 0, "weights": {...}}, ...]} such as a PBT search\'s '
        "best_schedule.json",
    )
    p.add_argument("--objective", help="baseline objective instead of ELo terms: byol | simsiam")
    p.add_argument("--data", help="folder of videos / images to train on")
    p.add_argument("--steps", type=int)
    p.add_argument("--out", help="output folder for checkpoints, logs and the export")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--list-terms", action="store_true", help="print the term keys and exit")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--train",
        default="final",
        help="train settings from configs/train/<name>.yaml, under the experiment's own "
        "train keys (proxy = the search's short runs)",
    )
    p.add_argument(
        "--weighting",
        choices=("fixed", "uniform", "rlw", "uncertainty"),
        help="how the normalised terms are combined (objective.weighting; default fixed: "
        "the λ of --weights): uniform = λ 1, rlw = random loss weighting, uncertainty = "
        "learned log-variances (elo/train/weighting.py, docs/learning.md)",
    )
    p.add_argument(
        "--lr-grid",
        help="comma list of learning rates: train each for --lr-grid-steps, keep the one "
        "with the lowest training objective (label-free, elo/train/lrgrid.py), then train",
    )
    p.add_argument(
        "--lr-grid-steps",
        type=int,
        help="steps per grid learning rate (default: steps // 10, at least 2)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="config overrides key=value")


def explicit_section(path: Path, key: str) -> dict[str, Any]:
    """The ``key`` section an experiment file (and its ``base`` chain) writes itself,
    without what its ``defaults`` pull in."""
    import yaml

    from elo.config import deep_merge, resolve_config_path

    with open(path, encoding="utf-8") as fh:
        raw = yaml.safe_load(fh) or {}
    out: dict[str, Any] = {}
    base = (raw.get("defaults") or {}).get("base")
    if base:
        out = explicit_section(resolve_config_path(base, "experiment"), key)
    return deep_merge(out, raw.get(key) or {})


def run(args: argparse.Namespace) -> int:
    if args.objective:
        from elo.baselines.trainer import train_baseline

        return train_baseline(
            args.objective,
            args.data,
            config=args.config,
            overrides=list(args.overrides or []),
            steps=args.steps,
            seed=args.seed,
            out=args.out,
            device=args.device,
            resume=args.resume,
        )
    return _run_elo(args)


def _elo_config(config: str, train: str | None, overrides: list[str]) -> dict[str, Any]:
    """The experiment ``config``, its train section over ``configs/train/<train>.yaml``,
    then the ``key=value`` overrides."""
    from elo.config import apply_overrides, compose, deep_merge, resolve_config_path

    path = resolve_config_path(config)
    cfg = compose(path)
    if train:  # the train file, then the experiment's own train keys, then overrides
        chosen = compose(resolve_config_path(train, "train"))
        cfg["train"] = deep_merge(chosen, explicit_section(path, "train"))
    return apply_overrides(cfg, overrides)


def _run_elo(args: argparse.Namespace) -> int:
    from elo.errors import ConfigError
    from elo.model.objective import Weights, WeightSchedule, load_weights_file, terms_from_config

    cfg = _elo_config(args.config, args.train, args.overrides)
    if args.weighting:  # objective.weighting (elo/train/weighting.py)
        cfg["objective"] = {**(cfg.get("objective") or {}), "weighting": args.weighting}
    terms = terms_from_config(cfg)
    if args.list_terms:
        for term in terms:
            print(term)
        return 0
    weights = load_weights_file(args.weights, terms) if args.weights else Weights.uniform(terms)
    if not args.out:
        raise ConfigError("--out is required: the folder for logs, checkpoints and the export")
    data = args.data or (cfg.get("data", {}) or {}).get("root")
    if not data:
        raise ConfigError("--data is required (or set data.root in the config)")
    steps = args.steps if args.steps is not None else int(cfg.get("train", {}).get("steps", 0))

    import yaml

    from elo.rundir import atomic_write_text
    from elo.train.trainer import train_model

    out = Path(args.out)
    if args.lr_grid:
        cfg = _tune_lr(cfg, weights, args, data, steps)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    result = train_model(
        cfg,
        weights,
        data_root=data,
        steps=steps,
        out_dir=out,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        progress=not args.no_progress,
    )
    last = result.history[-1]["loss"] if result.history else float("nan")
    active = len((weights.union if isinstance(weights, WeightSchedule) else weights).active)
    print(
        f"elo-train: {result.steps_done} steps, {active}/{len(terms)} terms active, "
        f"final loss {last:.4f}; RGB encoder exported to {out} "
        f"(load with elo.load_encoder({str(out)!r}))"
    )
    return 0


def _tune_lr(
    cfg: dict[str, Any], weights: Any, args: argparse.Namespace, data: str, steps: int
) -> dict[str, Any]:
    """``--lr-grid``: the chosen ``train.lr`` in ``cfg`` and ``OUT/lr_grid.json`` (reused
    when it exists, so a rerun or ``--resume`` does not tune again)."""
    import json

    from elo.rundir import atomic_write_json
    from elo.train.lrgrid import parse_grid, tune_lr

    lrs = parse_grid(args.lr_grid)
    path = Path(args.out) / "lr_grid.json"
    grid_steps = args.lr_grid_steps if args.lr_grid_steps is not None else max(2, steps // 10)
    if path.exists():
        choice = json.loads(path.read_text(encoding="utf-8"))
    else:
        choice = tune_lr(
            cfg, weights, lrs, steps=grid_steps, full_steps=steps, data_root=data,
            seed=args.seed, device=args.device,
        )  # fmt: skip
        atomic_write_json(path, {**choice, "grid": lrs})
    print(f"elo-train: lr grid {lrs} at {grid_steps} steps each -> lr {choice['chosen']}")
    return {**cfg, "train": {**cfg.get("train", {}), "lr": float(choice["chosen"])}}


def main(argv: Sequence[str] | None = None) -> int:
    """The ``elo-train`` console script."""
    from elo.cli import Command, run_command

    return run_command("train", cast(Command, sys.modules[__name__]), argv)
