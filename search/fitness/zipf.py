"""ELo's unsupervised fitness (:class:`ZipfFitness`, ``zipf``): k-means on the
embeddings, the sorted cluster sizes compared with a Zipf law (Piergiovanni, Angelova &
Ryoo, "Evolving Losses for Unsupervised Video Representation Learning", CVPR 2020,
§3.3); fitness = −KL. Follows :class:`search.fitness.base.Fitness`.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np

from elo.errors import ConfigError
from elo.search.fitness.base import FITNESSES, FitnessResult, as_embeddings, collapse_reason

DIRECTIONS = ("clusters||zipf", "zipf||clusters")


def zipf_pmf(k: int, exponent: float) -> np.ndarray:
    """``q(i) = i^-s / H_{k,s}`` for ranks ``i = 1..k`` (a k-vector summing to 1)."""
    q = np.arange(1, k + 1, dtype=np.float64) ** (-float(exponent))
    return cast(np.ndarray, q / q.sum())


def zipf_kl(
    sizes: Any,
    exponent: float = 1.0,
    *,
    direction: str = "clusters||zipf",
    smoothing: float = 1e-6,
) -> float:
    """KL divergence between sorted cluster sizes and a Zipf law of the same length.

    ``sizes`` are counts (or soft masses) per cluster, in any order; they are
    normalized, sorted in decreasing order and smoothed as
    ``p = (1 - smoothing) * p + smoothing / k`` so an empty cluster never gives inf.
    ``direction`` ``"clusters||zipf"`` is KL(p‖q) as in ELo; ``"zipf||clusters"`` is
    KL(q‖p), which punishes empty tail clusters much harder.
    """
    if direction not in DIRECTIONS:
        raise ConfigError(f"fitness.direction must be one of {DIRECTIONS}, got {direction!r}")
    p = np.sort(np.asarray(sizes, dtype=np.float64))[::-1]
    if p.ndim != 1 or len(p) == 0 or p.sum() <= 0 or (p < 0).any():
        raise ValueError(f"cluster sizes must be a non-empty non-negative vector, got {sizes!r}")
    p = p / p.sum()
    p = (1.0 - smoothing) * p + smoothing / len(p)
    q = zipf_pmf(len(p), exponent)
    a, b = (p, q) if direction == "clusters||zipf" else (q, p)
    nz = a > 0
    return float(np.sum(a[nz] * np.log(a[nz] / b[nz])))


@FITNESSES.register()
@dataclass
class ZipfFitness:
    """ELo's unsupervised fitness: −KL between sorted k-means cluster sizes and Zipf.

    Defaults follow the paper where it is explicit and are marked where it is not:

    * ``k = 16`` clusters (the paper leaves k to the dataset; 16 fits the demo's
      few hundred held-out clips), ``exponent`` s = 1 (classic Zipf; the paper uses a
      real constant s).
    * ``direction = "clusters||zipf"``: KL(p‖q) with p the cluster distribution and q
      the Zipf prior, as in the paper's equation.
    * ``assignment = "hard"``: p = sorted k-means cluster sizes. ``"soft"`` is the
      paper's exact form: ``p(c_i|x) = softmax_i(-‖x - c_i‖² / temperature)`` with
      ``temperature`` = 2σ² = 1, averaged over clips (scale dependent: a candidate can
      sharpen it by scaling its features, hence not the default).
    * ``normalize = False``: k-means on the raw embeddings as in the paper; ``True``
      L2-normalizes rows first (cosine geometry).
    * ``smoothing = 1e-6``: mixes a uniform distribution into p so empty clusters
      give a finite KL in either direction.

    k-means is scikit-learn's (``n_init`` restarts, ``random_state=seed``): the value
    is deterministic for a seed. With fewer distinct embeddings than ``k`` the
    clustering uses that many clusters and the rest count as empty. ``worst`` is the
    minimum of −KL over all sorted histograms (the extreme points of that set are
    "uniform over the first m clusters"; KL is convex), which a collapsed
    representation gets.

    >>> import numpy as np
    >>> f = ZipfFitness(k=4)
    >>> round(-zipf_kl([6, 3, 2, 1]), 4)
    -0.007
    >>> f.score(np.zeros((10, 3))).value == f.worst
    True
    """

    name: ClassVar[str] = "zipf"

    k: int = 16
    exponent: float = 1.0
    direction: str = "clusters||zipf"
    assignment: str = "hard"
    temperature: float = 1.0
    normalize: bool = False
    smoothing: float = 1e-6
    n_init: int = 4
    max_iter: int = 100
    seed: int = 0

    def __post_init__(self) -> None:
        if int(self.k) < 2:
            raise ValueError(f"k must be >= 2, got {self.k}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {self.direction!r}")
        if self.assignment not in ("hard", "soft"):
            raise ValueError(f"assignment must be 'hard' or 'soft', got {self.assignment!r}")
        if not 0 < self.smoothing < 1:
            raise ValueError(f"smoothing must be in (0, 1), got {self.smoothing}")
        if self.temperature <= 0 or self.n_init < 1:
            raise ValueError("temperature must be > 0 and n_init >= 1")

    def kl(self, sizes: Any) -> float:
        return zipf_kl(sizes, self.exponent, direction=self.direction, smoothing=self.smoothing)

    @property
    def worst(self) -> float:
        k = int(self.k)
        return -max(self.kl(np.r_[np.ones(m), np.zeros(k - m)]) for m in range(1, k + 1))

    def cluster_sizes(self, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Per-cluster mass (length ``k``, decreasing) and the k k-means actually used."""
        from sklearn.cluster import KMeans

        k = int(self.k)
        if self.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        k_eff = min(k, len(np.unique(x, axis=0)))
        km = KMeans(k_eff, n_init=self.n_init, max_iter=self.max_iter, random_state=self.seed)
        with warnings.catch_warnings():  # near-duplicate points: fewer clusters than asked
            warnings.simplefilter("ignore")
            km.fit(x)
        if self.assignment == "hard":
            mass = np.bincount(km.labels_, minlength=k_eff).astype(np.float64)
        else:
            d2 = ((x[:, None, :] - km.cluster_centers_[None]) ** 2).sum(-1)  # N,k_eff
            logits = -d2 / self.temperature
            logits -= logits.max(axis=1, keepdims=True)
            prob = np.exp(logits)
            mass = (prob / prob.sum(axis=1, keepdims=True)).sum(axis=0)
        mass = np.r_[mass, np.zeros(k - k_eff)]
        return np.sort(mass)[::-1], k_eff

    def score(self, embeddings: Any, **context: Any) -> FitnessResult:
        t0 = time.perf_counter()
        x = as_embeddings(embeddings)
        details: dict[str, Any] = {
            "kind": self.name,
            "k": int(self.k),
            "exponent": self.exponent,
            "direction": self.direction,
            "n": len(x),
        }
        reason = collapse_reason(x)
        if reason is not None:
            details.update(collapsed=reason, kl=-self.worst, seconds=time.perf_counter() - t0)
            return FitnessResult(self.worst, details)
        sizes, k_eff = self.cluster_sizes(x)
        kl = self.kl(sizes)
        details.update(
            kl=kl,
            k_effective=k_eff,
            sizes=[round(float(s), 4) for s in sizes],
            zipf=[round(float(q) * len(x), 4) for q in zipf_pmf(int(self.k), self.exponent)],
            seconds=time.perf_counter() - t0,
        )
        return FitnessResult(max(-kl, self.worst), details)
