"""Label-free measures of representation quality from the eigenspectrum of the
embeddings: effective rank (:class:`RankMeFitness`, ``rankme``) and power-law decay of
the covariance eigenvalues (:class:`AlphaReqFitness`, ``alphareq``). Both follow
:class:`search.fitness.base.Fitness`. No clustering: one SVD of an ``N,D`` matrix,
deterministic, fast.

* RankMe (Garrido, Balestriero, Najman & LeCun, "RankMe: Assessing the Downstream
  Performance of Pretrained Self-Supervised Representations by Their Rank", ICML 2023):
  singular values σ of the embedding matrix, ``p_k = σ_k / Σσ + ε``,
  ``RankMe = exp(−Σ p_k log p_k)``, in [1, min(N, D)]; higher is better.
* α-ReQ (Agrawal, Mondal, Ghosh & Richards, "α-ReQ: Assessing Representation Quality
  in Self-Supervised Learning by measuring eigenspectrum decay", NeurIPS 2022): fit
  ``λ_k ∝ k^−α`` to the eigenvalues of the feature covariance (least squares in
  log-log); α near a target (≈ 1) predicts good probes, smaller is noise-like and
  larger is collapse-like, so the fitness is ``−|α − target|``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from elo.search.fitness.base import FITNESSES, FitnessResult, as_embeddings, collapse_reason


def _prepare(x: np.ndarray, how: str) -> np.ndarray:
    """``none`` (raw rows), ``centre`` (minus the mean row) or ``standardize`` (z-score per
    dimension: every feature counts once, whatever its scale)."""
    if how == "none":
        return x
    x = x - x.mean(axis=0, keepdims=True)
    if how == "standardize":
        x = x / np.maximum(x.std(axis=0, keepdims=True), 1e-8)
    return x


def singular_values(x: np.ndarray, how: str = "centre") -> np.ndarray:
    """Singular values (decreasing) of the prepared ``N,D`` embedding matrix."""
    return np.linalg.svd(_prepare(x, how), compute_uv=False)


def rankme(x: np.ndarray, how: str = "centre", eps: float = 1e-7) -> float:
    """RankMe effective rank of ``x`` (``N,D``): ``exp`` of the entropy of ``σ / Σσ``.

    >>> round(rankme(np.eye(4), how="none"), 3)  # four equal singular values
    4.0
    """
    sv = singular_values(x, how)
    p = sv / max(float(sv.sum()), 1e-30) + eps
    return float(np.exp(-np.sum(p * np.log(p))))


def alpha_decay(
    x: np.ndarray, how: str = "centre", fit_range: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, int]:
    """α of ``λ_k ∝ k^−α`` fitted to the covariance eigenvalues of ``x`` (``N,D``), and
    the number of eigenvalues used. ``fit_range`` (fractions of the non-zero spectrum)
    selects the ranks the line is fitted to.

    >>> rng = np.random.default_rng(0)
    >>> k = np.arange(1, 33)
    >>> z = rng.standard_normal((4000, 32)) * k ** -0.5  # eigenvalues ∝ k^-1
    >>> round(alpha_decay(z)[0], 1)
    1.0
    """
    ev = singular_values(x, how) ** 2 / max(len(x) - 1, 1)
    ev = ev[ev > ev[0] * 1e-12] if len(ev) and ev[0] > 0 else ev[:0]
    lo = int(np.floor(fit_range[0] * len(ev)))
    hi = max(lo + 2, int(np.ceil(fit_range[1] * len(ev))))
    ev = ev[lo:hi]
    if len(ev) < 2:
        return float("inf"), len(ev)
    k = np.arange(lo + 1, lo + 1 + len(ev), dtype=np.float64)
    slope = np.polyfit(np.log(k), np.log(ev), 1)[0]
    return float(-slope), len(ev)


def _checked(
    name: str, worst: float, embeddings: Any, t0: float
) -> tuple[np.ndarray, dict[str, Any], FitnessResult | None]:
    """The ``N,D`` embeddings, the details every spectral score starts with, and the
    worst result when they have collapsed (else ``None``)."""
    x = as_embeddings(embeddings)
    details: dict[str, Any] = {"kind": name, "n": len(x), "dim": x.shape[1]}
    reason = collapse_reason(x)
    if reason is None:
        return x, details, None
    details.update(collapsed=reason, seconds=time.perf_counter() - t0)
    return x, details, FitnessResult(worst, details)


@FITNESSES.register()
@dataclass
class RankMeFitness:
    """RankMe effective rank of the held-out embeddings (higher is better), divided by
    ``min(N, D)`` when ``relative`` (then in (0, 1]: comparable across widths).

    ``prepare``: ``centre`` (default: a constant offset is not information),
    ``standardize`` or ``none`` (the paper's raw matrix). A collapsed representation
    scores ``worst`` = 0. ``seed`` is accepted for a uniform config and unused.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> f = RankMeFitness()
    >>> wide, narrow = rng.standard_normal((200, 16)), rng.standard_normal((200, 2))
    >>> f.score(wide).value > f.score(narrow @ rng.standard_normal((2, 16))).value
    True
    """

    name: ClassVar[str] = "rankme"

    prepare: str = "centre"
    relative: bool = True
    eps: float = 1e-7
    seed: int = 0

    def __post_init__(self) -> None:
        if self.prepare not in ("centre", "standardize", "none"):
            raise ValueError(f"prepare must be centre, standardize or none, got {self.prepare!r}")

    @property
    def worst(self) -> float:
        return 0.0

    def score(self, embeddings: Any, **context: Any) -> FitnessResult:
        t0 = time.perf_counter()
        x, details, collapsed = _checked(self.name, self.worst, embeddings, t0)
        if collapsed is not None:
            return collapsed
        r = rankme(x, self.prepare, self.eps)
        value = r / min(x.shape) if self.relative else r
        details.update(rankme=r, seconds=time.perf_counter() - t0)
        return FitnessResult(float(value), details)


@FITNESSES.register()
@dataclass
class AlphaReqFitness:
    """α-ReQ: ``−|α − target|`` for the eigenvalue decay ``λ_k ∝ k^−α`` of the held-out
    embeddings' covariance (0 is best). ``target`` = 1 (the paper's sweet spot);
    ``fit_range`` = fractions of the spectrum fitted (the tail of a small sample is
    noise, hence the default top half). Collapsed: ``worst`` = −``max_penalty``, and
    every value is clipped at it so the fitness stays finite.
    """

    name: ClassVar[str] = "alphareq"

    target: float = 1.0
    fit_range: tuple[float, float] = (0.0, 0.5)
    prepare: str = "centre"
    max_penalty: float = 10.0
    seed: int = 0

    def __post_init__(self) -> None:
        self.fit_range = (float(self.fit_range[0]), float(self.fit_range[1]))
        if not 0.0 <= self.fit_range[0] < self.fit_range[1] <= 1.0:
            raise ValueError(f"fit_range must be 0 <= lo < hi <= 1, got {self.fit_range}")
        if self.prepare not in ("centre", "standardize", "none"):
            raise ValueError(f"prepare must be centre, standardize or none, got {self.prepare!r}")
        if self.max_penalty <= 0:
            raise ValueError(f"max_penalty must be > 0, got {self.max_penalty}")

    @property
    def worst(self) -> float:
        return -float(self.max_penalty)

    def score(self, embeddings: Any, **context: Any) -> FitnessResult:
        t0 = time.perf_counter()
        x, details, collapsed = _checked(self.name, self.worst, embeddings, t0)
        if collapsed is not None:
            return collapsed
        alpha, used = alpha_decay(x, self.prepare, self.fit_range)
        value = max(-abs(alpha - self.target), self.worst) if np.isfinite(alpha) else self.worst
        details.update(alpha=alpha, eigenvalues_fitted=used, seconds=time.perf_counter() - t0)
        return FitnessResult(float(value), details)
