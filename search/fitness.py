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
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import numpy as np

from elo.config import merge_checked
from elo.errors import ConfigError, DataError
from elo.registry import Registry

FITNESSES: Registry[type[Any]] = Registry("fitness", entry_point_group="elo.fitness")
DIRECTIONS = ("clusters||zipf", "zipf||clusters")


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


# -- shared checks ----------------------------------------------------------------------
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

        from elo.probe import knn_probe, linear_probe

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


# -- cross-modal agreement -----------------------------------------------------------------
#: reference modalities with fixed hand-made statistics (see :func:`reference_features`)
REFERENCES = ("audio", "flow")


def audio_statistics(audio: Any) -> np.ndarray:
    """Fixed per-clip statistics of log-mel spectrograms ``N,1,F,Tm`` -> ``N,2F``.

    The spectral *shape* (mean log-mel per band over time, minus the clip's mean over
    bands: pitch and timbre, not loudness) and the temporal std per band (how each
    band's loudness moves). No weights: a reference that cannot drift.
    """
    a = as_embeddings(np.asarray(_numpy(audio), dtype=np.float64).reshape(len(audio), -1))
    a = a.reshape(np.shape(audio))[:, 0]  # N,F,Tm
    profile = a.mean(axis=2)  # N,F
    profile = profile - profile.mean(axis=1, keepdims=True)
    return np.concatenate([profile, a.std(axis=2)], axis=1)  # N,2F


def flow_statistics(flow: Any, bins: int = 8) -> np.ndarray:
    """Fixed per-clip statistics of optical flow ``N,2,T,H,W`` -> ``N,bins+7``.

    Magnitude-weighted direction histogram (``bins`` sectors), mean flow direction
    (u, v), mean curl and divergence (rotation, scaling), temporal std of the
    divergence (pulsing), turning of the per-frame mean flow (orbiting), log mean
    magnitude (moving or not) — every ratio normalized by the clip's mean magnitude.
    """
    f = _numpy(flow).astype(np.float64)  # N,2,T,H,W
    if f.ndim != 5 or f.shape[1] != 2:
        raise ValueError(f"flow must be N,2,T,H,W; got shape {f.shape}")
    u, v = f[:, 0], f[:, 1]  # N,T,H,W
    mag = np.hypot(u, v)
    norm = mag.mean(axis=(1, 2, 3)) + 1e-6  # N
    ang = np.arctan2(v, u)
    sector = np.floor((ang + np.pi) / (2 * np.pi) * bins).astype(np.int64) % bins
    hist = np.stack([(mag * (sector == b)).mean(axis=(1, 2, 3)) for b in range(bins)], 1)
    hist = hist / norm[:, None]  # N,bins
    du_dy, du_dx = np.gradient(u, axis=(2, 3))
    dv_dy, dv_dx = np.gradient(v, axis=(2, 3))
    curl = (dv_dx - du_dy).mean(axis=(2, 3))  # N,T
    div = (du_dx + dv_dy).mean(axis=(2, 3))  # N,T
    m = np.stack([u.mean(axis=(2, 3)), v.mean(axis=(2, 3))], -1)  # N,T,2
    if m.shape[1] > 1:
        cross = m[:, :-1, 0] * m[:, 1:, 1] - m[:, :-1, 1] * m[:, 1:, 0]  # N,T-1
        dots = np.linalg.norm(m[:, :-1], axis=-1) * np.linalg.norm(m[:, 1:], axis=-1)
        turn = (cross / (dots + 1e-12)).mean(axis=1)  # N
    else:
        turn = np.zeros(len(f))
    mean_uv = m.mean(axis=1) / norm[:, None]  # N,2
    scalars = [curl.mean(1) / norm, div.mean(1) / norm, div.std(1) / norm, turn, np.log(norm)]
    return np.concatenate([hist, mean_uv, np.stack(scalars, 1)], axis=1)


def reference_features(**modalities: Any) -> dict[str, np.ndarray]:
    """Fixed statistics of the raw ``audio`` and/or ``flow`` clips given (N,... each)."""
    out: dict[str, np.ndarray] = {}
    if modalities.get("audio") is not None:
        out["audio"] = audio_statistics(modalities["audio"])
    if modalities.get("flow") is not None:
        out["flow"] = flow_statistics(modalities["flow"])
    return out


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _prepare(x: np.ndarray, how: str) -> np.ndarray:
    """Rows ready for k-means: ``standardize`` (z-score per dimension), ``l2`` or ``none``."""
    if how == "standardize":
        return (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8)
    if how == "l2":
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return x


def kmeans_labels(x: np.ndarray, k: int, seed: int, n_init: int = 1) -> np.ndarray:
    """k-means cluster index per row. k is capped at the number of distinct rows and at
    half the rows: with about one point per cluster any two partitions "agree" (AMI 1
    on 8 clips with k = 8), which would score a random encoder as perfect."""
    from sklearn.cluster import KMeans

    k_eff = max(1, min(int(k), len(np.unique(x, axis=0)), len(x) // 2))
    if k_eff == 1:
        return np.zeros(len(x), dtype=np.int64)
    km = KMeans(k_eff, n_init=n_init, max_iter=100, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(km.fit_predict(x), dtype=np.int64)


#: k-means labels of fixed references, shared by every score in a process (the
#: held-out clips are the same for all candidates): (digest, k, seed) -> labels
_REFERENCE_LABELS: dict[tuple[str, int, int], np.ndarray] = {}


def _reference_labels(ref: np.ndarray, k: int, seed: int) -> np.ndarray:
    import hashlib

    key = (hashlib.sha1(np.ascontiguousarray(ref).tobytes()).hexdigest(), int(k), int(seed))
    if key not in _REFERENCE_LABELS:
        if len(_REFERENCE_LABELS) > 256:
            _REFERENCE_LABELS.clear()
        _REFERENCE_LABELS[key] = kmeans_labels(ref, k, seed)
    return _REFERENCE_LABELS[key]


@FITNESSES.register()
@dataclass
class XModalFitness:
    """Cross-modal cluster agreement: do the RGB embeddings group the clips the way
    another modality of the same clips does? No labels.

    For each reference in ``references`` and each ``k`` in ``ks`` and seed in
    ``0..seeds-1``: k-means on the RGB embeddings and on the reference, agreement
    = adjusted mutual information (``metric="ami"``, chance-corrected: ≈ 0 for
    unrelated partitions, 1 when they coincide) or NMI. Averaged over k and seeds per
    reference, then over references by ``aggregate`` (``geomean`` of the values
    clipped at 0 — default —, ``mean`` or ``min``). Range [0, 1]; ``worst`` = −1 for a
    collapsed representation (strictly below unrelated features).

    Cross-modal agreement as a learning signal is the idea of audio-visual clustering
    (Alwassel et al., "Self-Supervised Learning by Cross-Modal Audio-Video
    Clustering", NeurIPS 2020); here it only *scores* a frozen encoder, as the fitness
    of ELo's search (Piergiovanni et al., CVPR 2020, §3.3) instead of the Zipf prior.

    **Trivial optimum and the guard.** If the reference were the candidate's own
    audio/flow encoder (``reference="candidate"``, context ``audio_embeddings`` /
    ``flow_embeddings``), a loss that makes RGB and audio agree on *anything* — e.g.
    distillation of an untrained audio teacher, both encoding the same arbitrary
    partition — would score 1. The default ``reference="fixed"`` compares with fixed
    hand-made statistics computed from the raw clips (:func:`audio_statistics`,
    :func:`flow_statistics`; context ``audio`` / ``flow`` tensors, or precomputed
    ``references={"audio": N,Da, "flow": N,Df}``): they cannot drift, and the RGB
    network never sees audio, so agreeing with them means predicting the other
    modality's content from frames. ``aggregate="geomean"`` over *two* references
    also requires agreement with both, so a shortcut shared with one modality only
    (e.g. brightness ↔ loudness envelope) is not enough.
    """

    name: ClassVar[str] = "xmodal"

    references: tuple[str, ...] = REFERENCES
    reference: str = "fixed"
    ks: tuple[int, ...] = (8, 16)
    seeds: int = 3
    metric: str = "ami"
    aggregate: str = "geomean"
    normalize: str = "standardize"
    seed: int = 0

    def __post_init__(self) -> None:
        self.references = tuple(self.references)
        self.ks = tuple(int(k) for k in self.ks)
        if not self.references or set(self.references) - set(REFERENCES):
            raise ValueError(f"references must be a non-empty subset of {REFERENCES}")
        if self.reference not in ("fixed", "candidate"):
            raise ValueError(f"reference must be 'fixed' or 'candidate', got {self.reference!r}")
        if not self.ks or min(self.ks) < 2 or self.seeds < 1:
            raise ValueError("ks must be a non-empty list of k >= 2 and seeds >= 1")
        if self.metric not in ("ami", "nmi"):
            raise ValueError(f"metric must be 'ami' or 'nmi', got {self.metric!r}")
        if self.aggregate not in ("geomean", "mean", "min"):
            raise ValueError(f"aggregate must be geomean, mean or min, got {self.aggregate!r}")
        if self.normalize not in ("standardize", "l2", "none"):
            raise ValueError(f"normalize must be standardize, l2 or none, got {self.normalize!r}")

    @property
    def worst(self) -> float:
        return -1.0

    def reference_arrays(self, n: int, context: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The ``N,D`` reference per name in ``references``, from ``context``."""
        if self.reference == "candidate":
            refs = {r: context.get(f"{r}_embeddings") for r in self.references}
        else:
            given = dict(context.get("references") or {})
            raw = {r: context.get(r) for r in self.references if r not in given}
            refs = {**given, **reference_features(**raw)}
        out = {}
        for r in self.references:
            if refs.get(r) is None:
                key = f"{r}_embeddings" if self.reference == "candidate" else r
                raise DataError(
                    f"the xmodal fitness needs {key}=... (the held-out clips' {r}) in its "
                    f"context, or fitness.references without {r!r}"
                )
            raw_r = _numpy(refs[r])
            arr = as_embeddings(raw_r.reshape(len(raw_r), -1))
            if len(arr) != n:
                raise DataError(f"xmodal fitness: {n} embeddings but {len(arr)} {r} rows")
            out[r] = arr
        return out

    def agreement(self, x: np.ndarray, ref: np.ndarray) -> float:
        from sklearn.metrics import adjusted_mutual_info_score, normalized_mutual_info_score

        mi = adjusted_mutual_info_score if self.metric == "ami" else normalized_mutual_info_score
        xs, rs = _prepare(x, self.normalize), _prepare(ref, "standardize")
        vals = []
        for k in self.ks:
            for s in range(int(self.seeds)):
                a = kmeans_labels(xs, k, self.seed + s)
                vals.append(float(mi(_reference_labels(rs, k, self.seed + s), a)))
        return float(np.mean(vals))

    def score(self, embeddings: Any, **context: Any) -> FitnessResult:
        t0 = time.perf_counter()
        x = as_embeddings(embeddings)
        refs = self.reference_arrays(len(x), context)
        details: dict[str, Any] = {"kind": self.name, "n": len(x), "reference": self.reference}
        reason = collapse_reason(x)
        if reason is not None:
            details.update(collapsed=reason, seconds=time.perf_counter() - t0)
            return FitnessResult(self.worst, details)
        per = {r: self.agreement(x, ref) for r, ref in refs.items()}
        vals = np.array(list(per.values()))
        if self.aggregate == "geomean":
            value = float(np.exp(np.mean(np.log(np.maximum(vals, 0.0) + 1e-12))))
        elif self.aggregate == "min":
            value = float(vals.min())
        else:
            value = float(vals.mean())
        details.update({f"{self.metric}_{r}": v for r, v in per.items()})
        details["seconds"] = time.perf_counter() - t0
        return FitnessResult(float(np.clip(value, -1.0, 1.0)), details)


@FITNESSES.register()
@dataclass
class CombinedFitness:
    """Cross-modal agreement with a Zipf-prior penalty:
    ``agreement_weight · xmodal − zipf_weight · KL(cluster sizes ‖ Zipf)``.

    The agreement term is :class:`XModalFitness` (``references``, ``reference``,
    ``ks``, ``seeds``, ``metric``, ``aggregate``, ``normalize``), the penalty is the KL
    of :class:`ZipfFitness` (``zipf_k``, ``zipf_exponent``, ``zipf_direction``): ELo's
    distribution prior kept as a regularizer rather than the whole fitness. A collapsed
    representation gets ``worst`` (both parts at their worst).
    """

    name: ClassVar[str] = "combined"

    agreement_weight: float = 1.0
    zipf_weight: float = 0.1
    references: tuple[str, ...] = REFERENCES
    reference: str = "fixed"
    ks: tuple[int, ...] = (8, 16)
    seeds: int = 3
    metric: str = "ami"
    aggregate: str = "geomean"
    normalize: str = "standardize"
    zipf_k: int = 16
    zipf_exponent: float = 1.0
    zipf_direction: str = "clusters||zipf"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.agreement_weight < 0 or self.zipf_weight < 0:
            raise ValueError("agreement_weight and zipf_weight must be >= 0")
        self.xmodal = XModalFitness(
            references=self.references, reference=self.reference, ks=self.ks,
            seeds=self.seeds, metric=self.metric, aggregate=self.aggregate,
            normalize=self.normalize, seed=self.seed,
        )  # fmt: skip
        self.zipf = ZipfFitness(
            k=self.zipf_k, exponent=self.zipf_exponent, direction=self.zipf_direction,
            seed=self.seed,
        )  # fmt: skip

    @property
    def worst(self) -> float:
        return self.agreement_weight * self.xmodal.worst + self.zipf_weight * self.zipf.worst

    def score(self, embeddings: Any, **context: Any) -> FitnessResult:
        t0 = time.perf_counter()
        x = as_embeddings(embeddings)
        a = self.xmodal.score(x, **context)
        details: dict[str, Any] = {"kind": self.name, "n": len(x)}
        if "collapsed" in a.details:
            details.update(collapsed=a.details["collapsed"], seconds=time.perf_counter() - t0)
            return FitnessResult(self.worst, details)
        z = self.zipf.score(x)
        kl = float(z.details.get("kl", -z.value))
        value = self.agreement_weight * a.value - self.zipf_weight * kl
        details.update(
            agreement=a.value,
            kl=kl,
            **{k: v for k, v in a.details.items() if k.startswith(self.metric)},
            seconds=time.perf_counter() - t0,
        )
        return FitnessResult(max(value, self.worst), details)
