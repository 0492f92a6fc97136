"""Multi-fidelity scoring of the candidates (the rule is in docs/search.md).

Each candidate is scored at *rungs*, fractions of its proxy steps
(``search.rungs``, e.g. ``[0.25, 0.5, 1.0]``), and reports each with ``tune.report``;
Ray Tune's ASHA scheduler (:func:`asha_scheduler`) stops the bottom of each rung
early. The strategy still receives exactly one value per candidate
(:func:`selection_values`): candidates are ranked by the highest rung they reached,
then by their fitness at that rung, so one stopped at rung 1 never outranks one that
completed, and for candidates that completed the value is their fitness itself.

With ``search.rungs`` unset (or one rung) nothing here is used: a search is the
paper's one score per candidate after all its proxy steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from elo.search.strategies import WORST_FITNESS

#: the result keys of a rung report: its 1-based index and ASHA's time for it
RUNG, RUNG_TIME = "rung", "rung_t"


def rung_steps(fractions: Sequence[float] | None, steps: int) -> list[int]:
    """The step counts at which a candidate of ``steps`` proxy steps is scored: each
    fraction of ``steps`` rounded, at least 1, duplicates dropped, the last ``steps``."""
    if not fractions:
        return [steps]
    out: list[int] = []
    for f in fractions:
        s = max(1, min(steps, round(float(f) * steps)))
        if not out or s > out[-1]:
            out.append(s)
    if out[-1] != steps:
        out.append(steps)
    return out


def rung_time(rung: int, reduction_factor: int) -> int:
    """ASHA's ``time_attr`` value of 1-based ``rung``: ``reduction_factor ** (rung - 1)``.
    ASHA (ray/tune/schedulers/async_hyperband.py) cuts at ``grace_period · rf^k``; with
    ``grace_period = 1`` every rung below the top is a cut whatever the step fractions."""
    return int(int(reduction_factor) ** (int(rung) - 1))


def asha_scheduler(n_rungs: int, reduction_factor: int, base: Any = None) -> Any:
    """Ray Tune's ASHA over the rungs (``max_t`` = the top rung's time). ``base``: an
    ASHA subclass to instantiate instead (search/failures.py adds trial timeouts)."""
    from ray.tune.schedulers import ASHAScheduler

    cls = base or ASHAScheduler
    return cls(
        time_attr=RUNG_TIME,
        metric="fitness",
        mode="max",
        max_t=rung_time(n_rungs, reduction_factor),
        grace_period=1,
        reduction_factor=reduction_factor,
    )


def rank_key(rung: int, fitness: float | None) -> tuple[int, float]:
    """The order of the search: highest rung reached, then fitness at that rung; a
    failed or rejected candidate (``None``) is last."""
    if fitness is None or not math.isfinite(fitness):
        return (-1, WORST_FITNESS)
    return (int(rung), float(fitness))


def selection_values(
    fitness: Sequence[float | None], rungs: Sequence[int], top: int
) -> list[float]:
    """One value per candidate for the strategy (docs/search.md, "One value per
    candidate"): ``fitness + (rung - top) · span`` with ``span`` = the spread of the
    generation's finite fitness values + 1, so every candidate of a higher rung ranks
    above every one of a lower rung, the order within a rung is the fitness order and
    a candidate that completed (``rung == top``) keeps its fitness. Failed / rejected:
    :data:`~search.strategies.WORST_FITNESS`."""
    ok = [f for f in fitness if f is not None and math.isfinite(f)]
    span = (max(ok) - min(ok) + 1.0) if ok else 1.0
    out = []
    for f, r in zip(fitness, rungs, strict=True):
        if f is None or not math.isfinite(f):
            out.append(WORST_FITNESS)
        else:
            out.append(float(f) + (int(r) - int(top)) * span)
    return out


def embedding_std(emb: Any) -> float:
    """Mean over dimensions of the std over clips of ``emb`` (N, D): ≈ 0 when every
    clip maps to the same point (collapse)."""
    import torch

    x = emb.detach().float()
    if x.shape[0] < 2:
        return float("nan")
    return float(torch.std(x, dim=0).mean())


def rejection(fitness: float, std: float | None, collapse_std: float) -> str | None:
    """Why a rung's score rejects its candidate: ``nonfinite`` fitness or embeddings,
    ``collapsed`` (mean embedding std below ``search.collapse_std``), else ``None``."""
    if not math.isfinite(fitness) or (std is not None and not math.isfinite(std)):
        return "nonfinite"
    if std is not None and std < collapse_std:
        return "collapsed"
    return None


def active_rungs(fitness: Any, settings: Any, steps: int) -> list[int] | None:
    """The step counts scored by each candidate, or ``None`` for one score after all
    ``steps`` (the paper): ``search.rungs`` with more than one rung, for a fitness that
    trains, or for the synthetic stand-in when ``fitness.rung_noise`` is set (it has no
    training to score part-way, so it models lower rungs as noisier scores).
    ``fitness``: :class:`search.settings.FitnessSettings`."""
    if settings.rungs is None:
        return None
    if not fitness.trains and fitness.options["rung_noise"] is None:
        return None
    steps_at = rung_steps(settings.rungs, steps)
    return steps_at if len(steps_at) > 1 else None


def rung_list(
    so_far: Sequence[float | None], result: Mapping[str, Any], metric: str = "fitness"
) -> list[float | None]:
    """``so_far`` (fitness per rung of one trial) with ``result``'s rung set to its
    fitness (``None``: rejected or non-finite); later rungs are dropped, so a trial
    that Tune restarted from scratch starts its list over."""
    k = int(result[RUNG])
    out = list(so_far[: k - 1])
    out += [None] * (k - 1 - len(out))
    value = result.get(metric)
    ok = isinstance(value, int | float) and math.isfinite(value) and not result.get("rejected")
    out.append(float(value) if ok else None)  # type: ignore[arg-type]
    return out


def outranks(rung: int, fitness: float, best: Mapping[str, Any] | None, top: int) -> bool:
    """Whether a candidate at ``rung`` with ``fitness`` beats the search's ``best`` so
    far (which reached ``best["rung"]``, or ``top`` when it has none) by :func:`rank_key`."""
    if best is None:
        return True
    return rank_key(rung, fitness) > rank_key(int(best.get("rung", top)), best["fitness"])


def proxy_steps(cfg: Mapping[str, Any], settings: Any) -> int:
    """Proxy steps per candidate: ``search.steps``, else ``train.steps``."""
    from elo.config import require

    if settings.steps is not None:
        return int(settings.steps)
    return int(require(cfg, "train.steps", int))


def rung_summary(fitness: Sequence[float | None], rungs: Sequence[int], top: int) -> dict[str, Any]:
    """A generation's ``best`` by :func:`rank_key` (its fitness) and how many of its
    candidates reached each rung (``reached[k]``: rung ``k + 1``)."""
    keys = [rank_key(r, f) for f, r in zip(fitness, rungs, strict=True)]
    best = max(keys, default=(-1, WORST_FITNESS))
    return {
        "best": best[1] if best[0] >= 0 else None,
        "reached": [sum(1 for r in rungs if r >= k) for k in range(1, top + 1)],
    }
