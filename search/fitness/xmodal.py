"""Cross-modal cluster agreement as a label-free fitness (:class:`XModalFitness`,
``xmodal``): do the RGB embeddings group the held-out clips the way the fixed
statistics of their audio and flow (:mod:`search.fitness.references`) do?
:class:`AgreementOptions` are the options it shares with
:class:`search.fitness.combined.CombinedFitness`. Follows
:class:`search.fitness.base.Fitness`.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping
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


def _prepare(x: np.ndarray, how: str) -> np.ndarray:
    """Rows ready for k-means: ``standardize`` (z-score per dimension), ``l2`` or ``none``."""
    if how == "standardize":
        return cast(np.ndarray, (x - x.mean(axis=0)) / np.maximum(x.std(axis=0), 1e-8))
    if how == "l2":
        return cast(np.ndarray, x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12))
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


@dataclass
class AgreementOptions:
    """How cross-modal agreement is measured: the options :class:`XModalFitness` and
    :class:`CombinedFitness` share (see :class:`XModalFitness`)."""

    references: tuple[str, ...] = REFERENCES
    reference: str = "fixed"
    ks: tuple[int, ...] = (8, 16)
    seeds: int = 3
    metric: str = "ami"
    aggregate: str = "geomean"
    normalize: str = "standardize"

    def agreement_options(self) -> dict[str, Any]:
        """These options as keyword arguments (for an :class:`XModalFitness`)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(AgreementOptions)}


@FITNESSES.register()
@dataclass
class XModalFitness(AgreementOptions):
    """Cross-modal cluster agreement: do the RGB embeddings group the clips the way
    another modality of the same clips does? No labels.

    For each reference in ``references`` and each ``k`` in ``ks`` and seed in
    ``0..seeds-1``: k-means on the RGB embeddings and on the reference, agreement
    = adjusted mutual information (``metric="ami"``, chance-corrected: ≈ 0 for
    unrelated partitions, 1 when they coincide) or NMI. Averaged over k and seeds per
    reference, then over references by ``aggregate``: ``geomean`` (the geometric mean
    when every reference agrees above chance, else the smallest agreement:
    :func:`signed_geomean`, continuous and signed), ``mean`` or ``min``. Range
    [−1, 1], ≈ 0 for features unrelated to the references (AMI is chance-corrected and
    may be slightly negative: never clipped, so candidates near chance still rank);
    ``worst`` = −1 for a collapsed representation.

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

    seed: int = 0  # after the AgreementOptions fields

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
            return reference_rows(self.name, self.references, refs, n, suffix="_embeddings")
        return reference_rows(
            self.name, self.references, fixed_references(self.references, context), n
        )

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
            value = signed_geomean(vals)
        elif self.aggregate == "min":
            value = float(vals.min())
        else:
            value = float(vals.mean())
        details.update({f"{self.metric}_{r}": v for r, v in per.items()})
        details["seconds"] = time.perf_counter() - t0
        return FitnessResult(float(np.clip(value, -1.0, 1.0)), details)
