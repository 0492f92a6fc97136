"""The fitness protocol every fitness of :mod:`search.fitness` follows, the
:data:`FITNESSES` registry, and the checks they share: embeddings as a finite ``N,D``
array (:func:`as_embeddings`) and collapse detection (:func:`collapse_reason`).

A module of its own so that :mod:`search.fitness` (Zipf, weak) and
:mod:`search.fitness_xmodal` (cross-modal, combined) can both build on it;
import the fitnesses from :mod:`search.fitness`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from elo.registry import Registry

FITNESSES: Registry[type[Any]] = Registry("fitness", entry_point_group="elo.fitness")


@dataclass
class FitnessResult:
    """``value``: higher is better, always finite. ``details``: JSON-ready diagnostics."""

    value: float
    details: dict[str, Any] = field(default_factory=dict)


class Fitness(Protocol):
    """What the search calls. ``worst`` is the lowest value ``score`` can return."""

    name: ClassVar[str]

    @property
    def worst(self) -> float: ...

    def score(self, embeddings: Any, **context: Any) -> FitnessResult: ...


class NonFiniteEmbeddings(ValueError):
    """Embeddings contain NaN or inf rows (the candidate's training diverged)."""


def as_embeddings(x: Any) -> np.ndarray:
    """``N,D`` float64 numpy array from a numpy array or torch tensor; NaN rows raise."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be N,D; got shape {x.shape}")
    if len(x) == 0:
        raise ValueError("no embeddings to score: the held-out fitness set is empty")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        kinds = "NaN" if np.isnan(x).any() else "inf"
        rows = np.flatnonzero(bad)[:5].tolist()
        raise NonFiniteEmbeddings(
            f"{int(bad.sum())} of {len(x)} embedding rows contain {kinds} (first rows {rows}): "
            "the encoder produced non-finite features, usually diverged training "
            "(lower the learning rate or the loss weights)"
        )
    return x


def collapse_reason(x: np.ndarray, rtol: float = 1e-5) -> str | None:
    """Why ``x`` (N,D) is a collapsed representation, or ``None`` when it is not.

    Collapsed: fewer than two embeddings, all rows equal, or all rows on one line
    (centred rank one: second singular value ≤ ``rtol`` × the first).
    """
    if len(x) < 2:
        return f"only {len(x)} embedding: nothing to compare"
    centred = x - x.mean(axis=0, keepdims=True)  # N,D
    scale = max(float(np.abs(x).max()), 1e-30) * np.sqrt(len(x))
    sv = np.linalg.svd(centred, compute_uv=False)
    if sv[0] <= rtol * scale:
        return "all embeddings are equal (complete collapse)"
    if len(sv) < 2 or sv[1] <= rtol * sv[0]:
        return "embeddings are rank one (all on one line: dimensional collapse)"
    return None
