"""Cross-modal predictability as a label-free fitness (:class:`XPredictFitness`,
``xpredict``): how much of the fixed hand-made audio and flow statistics of the
held-out clips (:func:`search.fitness.references.reference_features`) a ridge regression
can predict from the candidate's RGB embeddings, as cross-validated R².

The same idea as :class:`search.fitness.xmodal.XModalFitness` (agreeing with another
modality's content means having learnt something about the clip from its frames; the
references are fixed statistics that cannot drift and RGB never sees audio), measured
by regression instead of comparing two k-means partitions: continuous, signed (R² < 0
when the embeddings predict worse than the mean) and without clustering noise.
Follows :class:`search.fitness.base.Fitness`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

from elo.search.fitness.base import FITNESSES, FitnessResult, as_embeddings, collapse_reason
from elo.search.fitness.references import (
    REFERENCES,
    fixed_references,
    reference_rows,
    signed_geomean,
)


def _standardize(x: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8))


def ridge_r2(
    x: np.ndarray, y: np.ndarray, *, alphas: Sequence[float] = (0.01, 0.1, 1.0, 10.0)
) -> float:
    """Leave-one-out R² of predicting ``y`` (N,K) from ``x`` (N,D) by ridge regression,
    pooled over the standardized columns of ``y`` (1 − Σ LOO residual² / Σ (y − ȳ)²), at
    the best penalty of ``alphas`` (× N, on standardized ``x``). Exact LOO residuals of
    ridge from one SVD: ``e_i = (y_i − ŷ_i) / (1 − h_ii − 1/N)`` (the 1/N: the intercept).
    Unrelated features score about 0 (a large penalty predicts the mean), slightly below
    it, never far: choosing among a few penalties barely overfits.

    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(200, 8))
    >>> y = x[:, :2] @ np.array([[1.0, 0.5], [-1.0, 2.0]])
    >>> ridge_r2(x, y, alphas=(1e-4,)) > 0.99
    True
    >>> abs(ridge_r2(x, rng.normal(size=(200, 2)))) < 0.05
    True
    """
    x, y = _standardize(x), _standardize(y)
    n = len(x)
    u, sv, _ = np.linalg.svd(x, full_matrices=False)  # u: N,r
    uty = u.T @ y  # r,K
    sst = max(float((y**2).sum()), 1e-30)
    best = -np.inf
    for a in alphas:
        shrink = sv**2 / (sv**2 + float(a) * n)  # r
        fitted = u @ (shrink[:, None] * uty)  # N,K
        lev = (u**2 * shrink).sum(axis=1) + 1.0 / n  # N
        resid = (y - fitted) / np.maximum(1.0 - lev, 1e-6)[:, None]
        best = max(best, 1.0 - float((resid**2).sum()) / sst)
    return float(best)


@FITNESSES.register()
@dataclass
class XPredictFitness:
    """Cross-validated ridge R² of fixed audio / flow statistics from RGB embeddings.

    Per reference in ``references``: :func:`ridge_r2` (leave-one-out, the best ridge
    penalty of ``alphas``; deterministic), then ``aggregate`` over references:
    ``mean`` (default), ``min`` or ``geomean`` (:func:`signed_geomean`). Context: ``audio`` /
    ``flow`` raw clips, or precomputed ``references={"audio": N,Da, "flow": N,Df}``.
    About 0 for unrelated features, at most 1; ``worst`` = −1 for a collapsed
    representation (every value is clipped at it).
    """

    name: ClassVar[str] = "xpredict"

    references: tuple[str, ...] = REFERENCES
    alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    aggregate: str = "mean"
    seed: int = 0

    def __post_init__(self) -> None:
        self.references = tuple(self.references)
        if not self.references or set(self.references) - set(REFERENCES):
            raise ValueError(f"references must be a non-empty subset of {REFERENCES}")
        self.alphas = tuple(float(a) for a in self.alphas)
        if not self.alphas or min(self.alphas) <= 0:
            raise ValueError(f"alphas must be a non-empty list of values > 0, got {self.alphas}")
        if self.aggregate not in ("mean", "min", "geomean"):
            raise ValueError(f"aggregate must be mean, min or geomean, got {self.aggregate!r}")

    @property
    def worst(self) -> float:
        return -1.0

    def _references(self, n: int, context: Mapping[str, Any]) -> dict[str, np.ndarray]:
        refs = fixed_references(self.references, context)
        return reference_rows(self.name, self.references, refs, n)

    def score(self, embeddings: Any, **context: Any) -> FitnessResult:
        t0 = time.perf_counter()
        x = as_embeddings(embeddings)
        refs = self._references(len(x), context)
        details: dict[str, Any] = {"kind": self.name, "n": len(x)}
        reason = collapse_reason(x)
        if reason is not None:
            details.update(collapsed=reason, seconds=time.perf_counter() - t0)
            return FitnessResult(self.worst, details)
        per = {r: ridge_r2(x, y, alphas=self.alphas) for r, y in refs.items()}
        vals = np.array(list(per.values()))
        if self.aggregate == "geomean":
            value = signed_geomean(vals)
        elif self.aggregate == "min":
            value = float(vals.min())
        else:
            value = float(vals.mean())
        details.update({f"r2_{r}": v for r, v in per.items()})
        details["seconds"] = time.perf_counter() - t0
        return FitnessResult(max(float(value), self.worst), details)
