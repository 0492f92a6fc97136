"""Tune ``train.lr`` on a short budget, label-free (``elo-train --lr-grid``): the
"uniform λ with its learning rate tuned" baseline of the demo (docs/learning.md, "Loss
weighting baselines").

Each learning rate of the grid trains the same model (same seed, data order and
views) for ``steps`` steps, its warm-up scaled by ``steps / full_steps`` so every
short run has the full run's schedule shape, and is scored by :func:`frozen_objective`:
the run's objective with every term's scale frozen at its first-step value,
``F = Σ_k λ_k L_k / s_k(1)``, averaged over the last fifth of the steps. The running
scales of ``objective.normalize`` follow each run's own losses, so the logged
``loss`` is not comparable across learning rates; the first-step scales are (every
run computes them on the same batch with the same initial weights, before any
update). The lowest ``F`` wins.

Why the training objective and not the search's label-free fitness: it needs no extra
evaluation pass (cheap on 2 cores), and core ``elo/`` does not import ``search/``
(tests/test_architecture.py). Limit: a lower training loss can also mean a collapsing
term (e.g. a BYOL-like head); the fitness would see that, this criterion does not.
Labels are never read.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from elo.errors import ConfigError
from elo.model.objective import Weights


def frozen_objective(history: Sequence[Mapping[str, float]], tail: float = 0.2) -> float:
    """The score of one short run (module docstring): per record
    ``Σ_k λ_k raw_k / s_k(1)``, with ``λ_k / s_k(1)`` read from the first record
    (``weighted/<k> / raw/<k>``), averaged over the last ``tail`` of the records (at
    least one). NaN for an empty history."""
    if not history:
        return math.nan
    first = history[0]
    terms = [k[len("raw/") :] for k in first if k.startswith("raw/")]
    factor: dict[str, float] = {}  # λ_k / s_k(1)
    for k in terms:
        raw = float(first[f"raw/{k}"])
        factor[k] = float(first[f"weighted/{k}"]) / raw if raw != 0 else 0.0
    n = max(1, round(len(history) * tail))
    values = [sum(factor[k] * float(r[f"raw/{k}"]) for k in terms) for r in history[-n:]]
    return sum(values) / len(values)


def parse_grid(text: str) -> list[float]:
    """``"0.001,0.002"`` -> ``[0.001, 0.002]``; each > 0, no duplicates."""
    try:
        lrs = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--lr-grid {text!r}: give comma-separated numbers") from None
    if not lrs or any(not (v > 0 and math.isfinite(v)) for v in lrs) or len(set(lrs)) != len(lrs):
        raise ConfigError(f"--lr-grid {text!r}: give distinct learning rates > 0")
    return lrs


def grid_config(cfg: Mapping[str, Any], lr: float, steps: int, full_steps: int) -> dict[str, Any]:
    """``cfg`` with ``train.lr = lr``, no checkpoints, and the warm-up scaled to
    ``steps`` (``round(warmup_steps · steps / full_steps)``)."""
    from elo.train.settings import TrainSettings

    out = copy.deepcopy(dict(cfg))
    t = dict(out["train"])
    warmup = TrainSettings.from_config(cfg).warmup_steps
    t["lr"] = float(lr)
    t["warmup_steps"] = round(warmup * steps / max(1, full_steps))
    t["checkpoint_every"] = 0
    out["train"] = t
    return out


def tune_lr(
    cfg: Mapping[str, Any],
    weights: Weights,
    lrs: Sequence[float],
    *,
    steps: int,
    full_steps: int,
    data_root: str | Path | None,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train every lr of ``lrs`` for ``steps`` steps (nothing written) and return
    ``{"chosen": lr, "scores": {lr: F}, ...}`` (the module docstring); ties and NaN
    scores go to the earlier lr."""
    from elo.train.trainer import NonFiniteLossError, train_model

    if steps < 2:  # step 1's losses are measured before any update: every lr ties
        raise ConfigError(f"--lr-grid-steps must be >= 2, got {steps}")
    scores: dict[str, float] = {}
    for lr in lrs:
        try:
            result = train_model(
                grid_config(cfg, lr, steps, full_steps),
                weights,
                data_root=data_root,
                steps=steps,
                seed=seed,
                device=device,
                progress=False,
            )
        except NonFiniteLossError:  # this lr diverged: it loses
            scores[repr(float(lr))] = math.nan
            continue
        scores[repr(float(lr))] = frozen_objective(result.history)
    finite = {k: v for k, v in scores.items() if math.isfinite(v)}
    if not finite:
        raise ConfigError(f"--lr-grid: every learning rate diverged ({scores})")
    chosen = min(finite, key=lambda k: finite[k])
    return {
        "chosen": float(chosen),
        "scores": scores,
        "steps": steps,
        "criterion": "mean of the last fifth of the steps of sum_k lambda_k L_k / s_k(step 1)",
    }
