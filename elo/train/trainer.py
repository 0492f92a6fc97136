"""Train an :class:`~elo.model.network.ELoModel` with fixed loss weights (ELo, arXiv 2002.12177:
the search's proxy runs and the final distillation into the RGB network), with a λ
schedule (a population-based search's, elo/model/objective.py), or with one of the
weighting baselines of ``objective.weighting`` (elo/train/weighting.py).

AdamW or SGD, linear warm-up then cosine decay, gradient-norm clipping, one seed for
everything. Every step's raw and weighted terms go to ``history`` and, with an output
folder, to ``train_log.jsonl``; checkpoints (model, optimizer, scheduler, step, RNG
states) are written atomically every ``train.checkpoint_every`` steps and at the end,
and ``resume=True`` continues from the last one with the same data order, views and
optimizer state, ending with the same weights as an uninterrupted run. At the end the
RGB encoder is exported: ``elo.load_encoder(out_dir)`` rebuilds it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from elo.errors import ConfigError, EloError
from elo.model.network import ELoModel
from elo.model.objective import Weights, WeightSchedule
from elo.rundir import DirLock, append_jsonl, atomic_write_text, read_jsonl, seed_everything
from elo.train.batches import batch_stream, to_device
from elo.train.export import export_student
from elo.train.loop import (
    StopOnSigterm,
    load_state,
    lr_at,
    optimizer_for,
    progress_bar,
    rng_state,
    save_state,
    set_rng_state,
)
from elo.train.settings import TrainSettings
from elo.train.tblog import TrainingBoard
from elo.train.weighting import LossWeighting, effective_weights, weighting_mode

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "train_log.jsonl"


class TrainingStopped(EloError):
    """``elo-train`` got SIGTERM: the step in progress finished, a checkpoint was
    written, and ``--resume`` continues from it (exit code 143)."""

    exit_code = 143


class NonFiniteLossError(EloError):
    """A loss term became NaN or infinite; the message names the term."""


@dataclass
class TrainResult:
    model: ELoModel
    steps_done: int
    history: list[dict[str, float]] = field(default_factory=list)
    out_dir: Path | None = None
    seconds: float = 0.0


def train_settings(cfg: Mapping[str, Any]) -> TrainSettings:
    """The parsed ``train`` section (:class:`elo.train.settings.TrainSettings`)."""
    return TrainSettings.from_config(cfg)


def make_optimizer(model: torch.nn.Module, t: TrainSettings) -> torch.optim.Optimizer:
    """SGD or AdamW over the trainable parameters. Parameters that a head lists in
    ``fixed_lr_parameters()`` (SimSiam's predictor, ``heads.simsiam.fix_predictor_lr``)
    form a second group flagged ``fix_lr`` that :func:`make_scheduler` keeps at the
    base lr."""
    fixed: dict[int, None] = {}
    for head in getattr(model, "heads", {}).values():
        for p in getattr(head, "fixed_lr_parameters", list)():
            fixed[id(p)] = None
    params = [p for p in model.parameters() if p.requires_grad]
    groups: list[dict[str, Any]] = [
        {"params": [p for p in params if id(p) not in fixed], "fix_lr": False}
    ]
    if fixed:
        groups.append({"params": [p for p in params if id(p) in fixed], "fix_lr": True})
    return optimizer_for(groups, t.optimizer, t.lr, t.momentum, t.weight_decay)


def make_scheduler(
    optimizer: torch.optim.Optimizer, steps: int, warmup: int, floor: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """:func:`lr_factor` for every group except those flagged ``fix_lr`` (factor 1)."""

    def schedule(s: int) -> float:
        return lr_factor(s, steps, warmup, floor)

    def constant(s: int) -> float:
        return 1.0

    lambdas: list[Callable[[int], float]] = [
        constant if g.get("fix_lr") else schedule for g in optimizer.param_groups
    ]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)


def lr_factor(step: int, total: int, warmup: int, floor: float) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to ``floor``
    (:func:`elo.train.loop.lr_at`)."""
    return lr_at(step, total, warmup, floor=floor)


def train_model(
    cfg: Mapping[str, Any],
    weights: Weights | WeightSchedule,
    *,
    data_root: str | Path | None,
    steps: int,
    out_dir: str | Path | None = None,
    seed: int = 0,
    device: str = "cpu",
    resume: bool = False,
    progress: bool = True,
    loader: Any = None,
) -> TrainResult:
    """Train for ``steps`` optimizer steps; see the module docstring. ``weights`` may be
    a :class:`~elo.model.objective.WeightSchedule` (λ changing at its steps; each step's
    λ is logged as ``lambda/<term>``). ``out_dir`` is locked meanwhile: a second
    ``elo-train`` on it exits 2 (:class:`DirLock`)."""
    kw: dict[str, Any] = dict(
        data_root=data_root,
        steps=steps,
        out_dir=out_dir,
        seed=seed,
        device=device,
        resume=resume,
        progress=progress,
        loader=loader,
    )
    if out_dir is None:
        return _train_model(cfg, weights, **kw)
    with DirLock(out_dir, "elo-train"):
        return _train_model(cfg, weights, **kw)


@dataclass
class _Run:
    """One training run's moving parts (:func:`_train_model`)."""

    model: ELoModel
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    weights: Weights
    t: TrainSettings
    steps: int
    out: Path | None
    weighting: LossWeighting
    start: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def checkpoint(self, step: int) -> None:
        if self.out is not None:
            save_checkpoint(
                self.out / CHECKPOINT_FILE,
                self.model,
                self.optimizer,
                self.scheduler,
                step,
                self.weights,
                self.weighting,
            )


def _train_model(
    cfg: Mapping[str, Any],
    weights: Weights | WeightSchedule,
    *,
    data_root: str | Path | None,
    steps: int,
    out_dir: str | Path | None,
    seed: int,
    device: str,
    resume: bool,
    progress: bool,
    loader: Any,
) -> TrainResult:
    t0 = time.perf_counter()
    weights, schedule = _unscheduled(cfg, weights)
    weights = effective_weights(weighting_mode(cfg), weights)  # λ = 1 unless `fixed`
    run = start_run(cfg, weights, steps, out_dir, seed, device, resume)
    modalities = sorted({m for m, _ in run.model.read_views})
    batches = (
        batch_stream(cfg, data_root, modalities, run.t, seed, run.start, loader)
        if run.start < steps
        else iter(())
    )
    bar = progress_bar(progress, run.start, steps, "elo-train")
    out = run.out
    board = None
    if out is not None:
        board = TrainingBoard(out, weights.values, start=run.start, batch_size=run.t.batch_size)
    run.model.train()
    params = [p for p in run.model.parameters() if p.requires_grad]
    stop = StopOnSigterm()
    every = run.t.checkpoint_every
    for step in range(run.start, steps):
        if stop.requested and out is not None and step > run.start:
            run.checkpoint(step)
            stop.restore()
            raise TrainingStopped(
                f"stopped by SIGTERM after step {step}/{steps}; checkpoint in {out}: "
                "continue with --resume"
            )
        rec = _scheduled_step(run, params, to_device(next(batches), device), step, schedule)
        run.history.append(rec)
        if out is not None:
            append_jsonl(out / LOG_FILE, rec)
            if board is not None:  # the TensorBoard view of this record (elo/train/tblog.py)
                board.step(rec)
            if every > 0 and (step + 1) % every == 0 and step + 1 < steps:
                run.checkpoint(step + 1)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{rec['loss']:.4f}")
    stop.restore()
    if bar is not None:
        bar.close()
    if board is not None:
        board.close()
    if out is not None:
        run.checkpoint(steps)
        export_student(out, run.model, cfg, weights, steps)
    return TrainResult(run.model, steps, run.history, out, time.perf_counter() - t0)


def _unscheduled(
    cfg: Mapping[str, Any], weights: Weights | WeightSchedule
) -> tuple[Weights, WeightSchedule | None]:
    """The λ to build the model with (a schedule's union: every term it uses), the schedule."""
    if not isinstance(weights, WeightSchedule):
        return weights, None
    if weighting_mode(cfg) != "fixed":
        raise ConfigError(
            "a λ schedule (--weights with a 'schedule' key) needs objective.weighting: "
            f"fixed, not {weighting_mode(cfg)}"
        )
    return weights.union, weights


def _scheduled_step(
    run: _Run, params: list[torch.nn.Parameter], batch: Any, step: int, sched: WeightSchedule | None
) -> dict[str, float]:
    """:func:`train_step`, at the λ of ``step`` of ``sched`` (logged as ``lambda/<term>``)."""
    if sched is None:
        return train_step(run, params, batch, step)
    run.model.weights = sched.at(step)
    rec = train_step(run, params, batch, step)
    rec.update({f"lambda/{k}": v for k, v in run.model.weights.values.items()})
    return rec


def start_run(
    cfg: Mapping[str, Any],
    weights: Weights,
    steps: int,
    out_dir: str | Path | None,
    seed: int,
    device: str,
    resume: bool,
) -> _Run:
    """Checked settings, the seeded model, optimizer and scheduler, and where to start:
    the checkpoint of ``out_dir`` with ``resume``, else step 0 (an old log is removed).
    Public with :func:`train_step` so a staged run (search/warmstart.py: score at rungs
    between steps) drives the same steps as :func:`train_model`."""
    t = train_settings(cfg)
    if steps < 0:
        raise ConfigError(f"steps must be >= 0, got {steps}")
    if not weights.active:
        raise ConfigError("every loss weight is 0: give at least one term a weight > 0")
    seed_everything(seed)
    model = ELoModel(cfg, weights, seed=seed).to(device)
    weighting = LossWeighting(weighting_mode(cfg), [str(k) for k in model.active], seed).to(device)
    optimizer = make_optimizer(model, t)
    group = weighting.parameter_group()  # uncertainty's log-variances
    if group is not None:
        optimizer.add_param_group(group)
    warmup, floor = t.warmup_steps, t.min_lr_ratio
    scheduler = make_scheduler(optimizer, steps, warmup, floor)
    out = Path(out_dir) if out_dir is not None else None
    run = _Run(model, optimizer, scheduler, weights, t, steps, out, weighting)
    if out is not None:
        ckpt = out / CHECKPOINT_FILE
        if resume and ckpt.exists():
            run.start = load_checkpoint(ckpt, model, optimizer, scheduler, weights, weighting)
            run.history = truncate_log(out / LOG_FILE, run.start)
            log.info("resuming %s at step %d", out, run.start)
        elif ckpt.exists():
            raise ConfigError(
                f"{out} already holds a training run; pass --resume or pick a new --out"
            )
        elif (out / LOG_FILE).exists():  # no checkpoint: start over without old records
            (out / LOG_FILE).unlink()
    return run


def train_step(
    run: _Run, params: list[torch.nn.Parameter], batch: Any, step: int
) -> dict[str, float]:
    """One optimizer step on ``batch``; its log record (every raw and weighted term)."""
    model, optimizer = run.model, run.optimizer
    result = run.weighting(model(batch, step=step), step)  # as is unless rlw / uncertainty
    bad = model.first_nonfinite(result)
    if bad is not None:
        raise NonFiniteLossError(
            f"non-finite loss at step {step + 1}: term {bad[0]!r} = {bad[1]}; "
            "lower train.lr or that term's weight"
        )
    optimizer.zero_grad(set_to_none=True)
    result.total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, run.t.grad_clip or float("inf"))
    if not torch.isfinite(grad_norm):
        raise NonFiniteLossError(
            f"non-finite gradient at step {step + 1} (loss {float(result.total):.4g}); "
            "lower train.lr or enable train.grad_clip"
        )
    lr = optimizer.param_groups[0]["lr"]
    weights_used = run.weighting.record(step)  # weight/<term>, logvar/<term> of this step
    optimizer.step()
    run.scheduler.step()
    model.after_step(step + 1, run.steps)
    rec: dict[str, float] = {"step": step + 1, "loss": float(result.total.detach()), "lr": lr}
    rec["grad_norm"] = float(grad_norm)
    rec.update({f"raw/{k}": float(v.detach()) for k, v in result.raw.items()})
    rec.update({f"weighted/{k}": float(v.detach()) for k, v in result.weighted.items()})
    rec.update({f"scale/{k}": v for k, v in model.term_scales().items()})  # weighted=λ·raw/scale
    rec.update({f"log/{k}": float(v) for k, v in result.logs.items()})
    rec.update(weights_used)
    return rec


# -- checkpoints --------------------------------------------------------------------------
def save_checkpoint(
    path: Path,
    model: ELoModel,
    optimizer: Any,
    scheduler: Any,
    step: int,
    weights: Weights,
    weighting: LossWeighting | None = None,
) -> None:
    """Model, optimizer, scheduler, step and RNG states, written atomically; with a
    weighting other than ``fixed``, its mode and state (uncertainty's log-variances)."""
    state: dict[str, Any] = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "weights": {k: float(v) for k, v in weights.values.items()},
    }
    if weighting is not None and weighting.mode != "fixed":  # a fixed run's file as before
        state["weighting"] = {"mode": weighting.mode, "state": weighting.state_dict()}
    save_state(path, state)  # elo/train/loop.py: one checkpoint writer for both trainers


def load_checkpoint(
    path: Path,
    model: ELoModel,
    optimizer: Any,
    scheduler: Any,
    weights: Weights,
    weighting: LossWeighting | None = None,
) -> int:
    """Restore everything :func:`save_checkpoint` wrote; returns the step to continue at."""
    state = load_state(path)
    if state.get("weights") != {k: float(v) for k, v in weights.values.items()}:
        raise ConfigError(
            f"{path} was trained with other loss weights; resume with the same --weights"
        )
    saved = state.get("weighting") or {"mode": "fixed", "state": {}}
    mode = "fixed" if weighting is None else weighting.mode
    if saved["mode"] != mode:
        raise ConfigError(
            f"{path} was trained with objective.weighting={saved['mode']}, not {mode}; "
            "resume with the same --weighting"
        )
    if weighting is not None:
        weighting.load_state_dict(saved["state"])
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])


def truncate_log(path: Path, step: int) -> list[dict[str, Any]]:
    """Keep the log records up to ``step`` (later ones were lost with the kill)."""
    import json

    kept = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= step]
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    return kept
