"""Fitness functions: how good is a candidate's representation, scored from its
embeddings of held-out clips. Higher is better; every value is finite.

Every fitness follows one protocol, :class:`Fitness`:
``score(embeddings, **context) -> FitnessResult(value, details)``. ``embeddings``
are the RGB encoder's ``N,D`` pooled features; ``context`` carries what a fitness
needs beyond them (``labels`` for :class:`WeakFitness`; later e.g. another
modality's embeddings of the same clips). Fitnesses register in :data:`FITNESSES`
by ``kind`` and are built from a config section with :func:`build_fitness`::

    fitness = build_fitness({"kind": "zipf", "k": 16, "exponent": 1.0}, seed=0)
    fitness.score(emb).value        # -KL(cluster sizes || Zipf)

* :class:`ZipfFitness` — ELo's unsupervised fitness (Piergiovanni, Angelova & Ryoo,
  "Evolving Losses for Unsupervised Video Representation Learning", CVPR 2020, §3.3):
  k-means on the embeddings, the distribution of cluster sizes sorted in decreasing
  order, compared with a Zipf law ``q(i) = i^-s / H_{k,s}``; fitness = −KL.
* :class:`WeakFitness` — the paper's weakly-supervised alternative: cross-validated
  kNN or linear-probe accuracy on a small labeled subset.
* :class:`XModalFitness`, :class:`CombinedFitness` — cross-modal cluster agreement
  (alone, or with a Zipf penalty), defined in :mod:`search.fitness_xmodal` and
  re-exported (and so registered) here.
* :class:`XPredictFitness` — cross-validated ridge R² of those fixed references from
  the RGB embeddings (:mod:`search.fitness_predict`).
* :class:`RankMeFitness`, :class:`AlphaReqFitness` — effective rank (RankMe) and
  eigenspectrum decay (α-ReQ) of the embeddings, in :mod:`search.fitness_spectral`.

A collapsed representation (fewer than two distinct embeddings, all equal, or all on
one line) is detected before clustering and gets the fitness's ``worst`` value with
the reason in ``details["collapsed"]``. Non-finite embeddings raise
:class:`NonFiniteEmbeddings` (a ``ValueError``) naming how many rows and why; the
search turns it into the worst fitness for that trial.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from elo.config import merge_checked
from elo.errors import ConfigError, DataError
from search.fitness_base import (
    FITNESSES,
    Fitness,
    FitnessResult,
    NonFiniteEmbeddings,
    as_embeddings,
    collapse_reason,
)
from search.fitness_predict import XPredictFitness, ridge_r2  # registers "xpredict"
from search.fitness_spectral import (  # registers "rankme" and "alphareq"
    AlphaReqFitness,
    RankMeFitness,
    alpha_decay,
    rankme,
)
from search.fitness_xmodal import (  # registers "xmodal" and "combined"
    REFERENCES,
    CombinedFitness,
    XModalFitness,
    audio_statistics,
    flow_statistics,
    kmeans_labels,
    reference_features,
    signed_geomean,
)

DIRECTIONS = ("clusters||zipf", "zipf||clusters")


def _check_config(cls: type[Any], section: Mapping[str, Any], where: str) -> dict[str, Any]:
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.init}
    return merge_checked(defaults, {k: v for k, v in section.items() if k != "kind"}, where)


def build_fitness(section: Mapping[str, Any] | None, *, seed: int | None = None) -> Any:
    """The fitness a config section describes (``kind`` selects it; default ``zipf``).

    ``seed`` (the experiment seed) is used when the section does not set its own.
    Unknown keys raise :class:`ConfigError` naming ``fitness.<key>``.
    """
    section = dict(section or {})
    kind = section.get("kind", "zipf")
    cls = FITNESSES.get(kind)
    if seed is not None and "seed" not in section:
        section["seed"] = seed
    kwargs = _check_config(cls, section, "fitness")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad fitness config ({kind}): {exc}") from None


# -- Zipf ----------------------------------------------------------------------------------
def zipf_pmf(k: int, exponent: float) -> np.ndarray:
    """``q(i) = i^-s / H_{k,s}`` for ranks ``i = 1..k`` (a k-vector summing to 1)."""
    q = np.arange(1, k + 1, dtype=np.float64) ** (-float(exponent))
    return q / q.sum()


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


# -- weakly supervised ---------------------------------------------------------------------
@FITNESSES.register()
@dataclass
class WeakFitness:
    """Weakly-supervised fitness (ELo §3.3's alternative): probe accuracy of the
    embeddings on a small labeled subset, by stratified ``folds``-fold cross-validation.

    ``score(embeddings, labels=...)``: ``labels`` (N ints, −1 = unlabeled, dropped).
    ``protocol`` ``"knn"`` (cosine kNN, ``knn_k`` neighbours) or ``"linear"``
    (standardized logistic regression with fixed ``C``: choosing C inside each fold
    would triple the cost). ``metric`` ``"balanced_accuracy"`` (default: robust on
    Zipf-sized label pools) or ``"top1"``. Range [0, 1]; ``worst`` = 0 for a
    collapsed representation.
    """

    name: ClassVar[str] = "weak"

    protocol: str = "knn"
    knn_k: int = 10
    C: float = 1.0
    folds: int = 3
    metric: str = "balanced_accuracy"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.protocol not in ("knn", "linear"):
            raise ValueError(f"protocol must be 'knn' or 'linear', got {self.protocol!r}")
        if self.metric not in ("balanced_accuracy", "top1"):
            raise ValueError(f"metric must be 'balanced_accuracy' or 'top1', got {self.metric!r}")
        if self.folds < 2:
            raise ValueError(f"folds must be >= 2, got {self.folds}")

    @property
    def worst(self) -> float:
        return 0.0

    def score(self, embeddings: Any, **context: Any) -> FitnessResult:
        from sklearn.model_selection import StratifiedKFold

        from elo.evaluation.probe import knn_probe, linear_probe

        t0 = time.perf_counter()
        if context.get("labels") is None:
            raise DataError("the weak fitness needs labels=...: a small labeled subset")
        x = as_embeddings(embeddings)
        y = np.asarray(
            context["labels"].detach().cpu()
            if hasattr(context["labels"], "detach")
            else context["labels"],
            dtype=np.int64,
        ).ravel()
        if len(y) != len(x):
            raise DataError(f"weak fitness: {len(x)} embeddings but {len(y)} labels")
        keep = y >= 0
        x, y = x[keep], y[keep]
        classes, counts = np.unique(y, return_counts=True)
        if len(classes) < 2:
            raise DataError("weak fitness needs labeled clips of at least 2 classes")
        details: dict[str, Any] = {"kind": self.name, "protocol": self.protocol, "n": len(x)}
        reason = collapse_reason(x)
        if reason is not None:
            details.update(collapsed=reason, seconds=time.perf_counter() - t0)
            return FitnessResult(self.worst, details)
        folds = int(min(self.folds, max(2, counts.max())))
        skf = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        n_cls = int(classes.max()) + 1
        scores = []
        with warnings.catch_warnings():  # a rare class with < folds members
            warnings.simplefilter("ignore", UserWarning)
            splits = list(skf.split(x, y))
        for tr, te in splits:
            if self.protocol == "knn":
                res = knn_probe(x[tr], y[tr], x[te], y[te], self.knn_k, num_classes=n_cls)
            else:
                res = linear_probe(
                    x[tr], y[tr], x[te], y[te], seed=self.seed, C=self.C, num_classes=n_cls
                )
            scores.append(res.balanced_accuracy if self.metric != "top1" else res.top1)
        value = float(np.mean(scores))
        details.update(
            metric=self.metric,
            folds=folds,
            fold_scores=scores,
            seconds=time.perf_counter() - t0,
        )
        return FitnessResult(value, details)


__all__ = [
    "DIRECTIONS",
    "AlphaReqFitness",
    "RankMeFitness",
    "alpha_decay",
    "rankme",
    "signed_geomean",
    "FITNESSES",
    "REFERENCES",
    "CombinedFitness",
    "Fitness",
    "FitnessResult",
    "NonFiniteEmbeddings",
    "WeakFitness",
    "XModalFitness",
    "XPredictFitness",
    "ridge_r2",
    "ZipfFitness",
    "as_embeddings",
    "audio_statistics",
    "build_fitness",
    "collapse_reason",
    "flow_statistics",
    "kmeans_labels",
    "reference_features",
    "zipf_kl",
    "zipf_pmf",
]
