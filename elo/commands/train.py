"""``elo-train``: train with fixed loss weights and export the RGB encoder.

    elo-train --weights W.json --data D --steps N --out DIR [--resume] [key=value ...]
    elo-train --only rgb/speed ...   (or --weights rgb/speed=1,flow/recon=0.5; others 0)
    elo-train --weighting uniform|rlw|uncertainty [--lr-grid 0.001,0.002,0.004] ...
    elo-train --list-terms
    elo-train --objective byol|simsiam --data D [--config NAME|PATH] [key=value ...]

Writes ``DIR/train_log.jsonl`` (every raw and weighted term, each step),
``DIR/checkpoint.pt`` and ``DIR/rgb_encoder.safetensors`` + ``DIR/encoder.yaml``
(``elo.load_encoder(DIR)``).

``--objective NAME`` runs a standalone trainer of :data:`OBJECTIVES` instead of the ELo
trainer: the ``elo.objectives`` entry points of pyproject.toml (BYOL and SimSiam, in
baselines/trainer.py), so the core imports no baseline. Such a trainer reads its own
config (``configs/baseline/<name>.yaml``, or ``--config``) with the overrides; the
options of ELo training (``--weights``, ``--only``, ``--weighting``, ``--lr-grid``, ``--train``,
``--list-terms``) are refused with it in one line, as is an ELo experiment for
``--config``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from elo.errors import ConfigError
from elo.registry import Registry

if TYPE_CHECKING:
    from elo.model.objective import Weights, WeightSchedule
    from elo.model.terms import TermKey


class ObjectiveTrainer(Protocol):
    """A standalone trainer (``elo-train --objective NAME``): trains on the images or
    videos of ``data`` and writes ``out``; returns the exit code."""

    def __call__(
        self,
        data: str | None,
        *,
        config: str | None,
        overrides: list[str],
        steps: int | None,
        seed: int | None,
        out: str | None,
        device: str,
        resume: bool,
    ) -> int: ...


#: ``--objective`` trainers by name: the ``elo.objectives`` entry points (pyproject.toml)
OBJECTIVES: Registry[ObjectiveTrainer] = Registry("objective", entry_point_group="elo.objectives")
#: options of ELo training that a standalone objective cannot use
_ELO_ONLY = ("weights", "only", "weighting", "lr_grid", "lr_grid_steps", "train", "list_terms")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        help="experiment config name or YAML path (default: demo); with --objective a "
        "configs/baseline name or path (default: configs/baseline/<objective>.yaml)",
    )
    p.add_argument(
        "--weights",
        help='a JSON file {"weights": {term: λ}}, a λ schedule {"schedule": [{"from_step": 0, '
        '"weights": {...}}, ...]} such as a PBT search\'s best_schedule.json, or term=λ pairs '
        "(rgb/speed=1,flow/recon=0.5; unlisted terms 0); default: uniform",
    )
    p.add_argument(
        "--only",
        metavar="TERMS",
        help="train only these terms, comma-separated (λ 1; the others 0), e.g. --only rgb/speed",
    )
    p.add_argument(
        "--objective",
        help="a standalone objective instead of ELo's terms: " + " | ".join(OBJECTIVES.declared()),
    )
    p.add_argument("--data", help="folder of videos / images to train on")
    p.add_argument("--steps", type=int)
    p.add_argument("--out", help="output folder for checkpoints, logs and the export")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--list-terms", action="store_true", help="print the term keys and exit")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--seed", type=int, help="seed (default: 0; --objective: its config's)")
    p.add_argument(
        "--train",
        help="train settings from configs/train/<name>.yaml, under the experiment's own "
        "train keys (default: final; proxy = the search's short runs)",
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
        return _run_objective(args)
    return _run_elo(args)


def _run_objective(args: argparse.Namespace) -> int:
    """``--objective NAME``: the trainer :data:`OBJECTIVES` holds under that name."""
    trainer = OBJECTIVES.get(args.objective)
    for name in _ELO_ONLY:
        if getattr(args, name) not in (None, False):
            flag = "--" + name.replace("_", "-")
            raise ConfigError(
                f"{flag} is an option of ELo training; --objective {args.objective} cannot "
                "use it (leave it out, or drop --objective)"
            )
    return trainer(
        args.data,
        config=args.config,
        overrides=list(args.overrides or []),
        steps=args.steps,
        seed=args.seed,
        out=args.out,
        device=args.device,
        resume=args.resume,
    )


def _seed(args: argparse.Namespace) -> int:
    return 0 if args.seed is None else int(args.seed)


def _elo_config(config: str, train: str, overrides: list[str]) -> dict[str, Any]:
    """The experiment ``config``, its train section over ``configs/train/<train>.yaml``,
    then the ``key=value`` overrides; checked (every key present, every number in its
    range) before anything is read or written."""
    from elo.config import apply_overrides, compose, deep_merge, load_part, resolve_config_path
    from elo.config_values import check_config

    path = resolve_config_path(config)
    sources: dict[str, Path] = {}
    cfg = compose(path, sources=sources)
    # the train file, then the experiment's own train keys, then overrides
    cfg["train"] = deep_merge(load_part("train", train), explicit_section(path, "train"))
    sources["train"] = resolve_config_path(train, "train")
    cfg = apply_overrides(cfg, overrides)
    check_config(cfg, sources)
    return cfg


def _run_elo(args: argparse.Namespace) -> int:
    from elo.model.objective import WeightSchedule, terms_from_config

    cfg = _elo_config(args.config or "demo", args.train or "final", args.overrides)
    if args.weighting:  # objective.weighting (elo/train/weighting.py)
        cfg["objective"]["weighting"] = args.weighting
    terms = terms_from_config(cfg)
    if args.list_terms:
        for term in terms:
            print(term)
        return 0
    weights = _weights(args, terms)
    if not args.out:
        raise ConfigError("--out is required: the folder for logs, checkpoints and the export")
    data = args.data or cfg["data"]["root"]
    if not data:
        raise ConfigError("--data is required (or set data.root in the config)")
    steps = args.steps if args.steps is not None else int(cfg["train"]["steps"])

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
        seed=_seed(args),
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


def _weights(args: argparse.Namespace, terms: Sequence[TermKey]) -> Weights | WeightSchedule:
    """λ from ``--weights`` (a weights or schedule file, or term=λ pairs) or ``--only``;
    uniform without them."""
    from elo.model.objective import Weights, weights_from_argument

    if args.weights and args.only:
        raise ConfigError("--weights and --only both set λ: give one of them")
    if args.only:
        return Weights.only(args.only, terms)
    return weights_from_argument(args.weights, terms) if args.weights else Weights.uniform(terms)


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
            cfg,
            weights,
            lrs,
            steps=grid_steps,
            full_steps=steps,
            data_root=data,
            seed=_seed(args),
            device=args.device,
        )
        atomic_write_json(path, {**choice, "grid": lrs})
    print(f"elo-train: lr grid {lrs} at {grid_steps} steps each -> lr {choice['chosen']}")
    return {**cfg, "train": {**cfg["train"], "lr": float(choice["chosen"])}}
