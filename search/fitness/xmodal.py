"""Cross-modal cluster agreement as a label-free fitness (:class:`XModalFitness`),
alone or with ELo's Zipf prior as a penalty (:class:`CombinedFitness`), and the fixed
hand-made statistics of raw audio and flow clips they compare with
(:func:`reference_features`). Both follow :class:`search.fitness_base.Fitness` and
are registered as ``xmodal`` and ``combined``; :mod:`search.fitness` re-exports
them, so ``build_fitness({"kind": "xmodal"})`` finds them.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from elo.errors import DataError
from search.fitness_base import FITNESSES, FitnessResult, as_embeddings, collapse_reason

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


def fixed_references(names: Sequence[str], context: Mapping[str, Any]) -> dict[str, Any]:
    """The fixed reference statistics named ``names``: given ones
    (``context["references"]``) or computed from the raw held-out clips in ``context``."""
    given = dict(context.get("references") or {})
    raw = {r: context.get(r) for r in names if r not in given}
    return {**given, **reference_features(**raw)}


def reference_rows(
    kind: str, names: Sequence[str], refs: Mapping[str, Any], n: int, suffix: str = ""
) -> dict[str, np.ndarray]:
    """Each named reference as ``N,D`` rows, checked present and ``n`` long; a missing
    one is a one-line error naming the context key (``<name><suffix>``)."""
    out = {}
    for r in names:
        if refs.get(r) is None:
            raise DataError(
                f"the {kind} fitness needs {r}{suffix}=... (the held-out clips' {r}) in its "
                f"context, or fitness.references without {r!r}"
            )
        raw_r = _numpy(refs[r])
        arr = as_embeddings(raw_r.reshape(len(raw_r), -1))
        if len(arr) != n:
            raise DataError(f"{kind} fitness: {n} embeddings but {len(arr)} {r} rows")
        out[r] = arr
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


def signed_geomean(vals: Any) -> float:
    """Geometric mean of ``vals`` when all are > 0, else their minimum: continuous
    (both tend to 0 as the smallest value does) and signed, so an agreement below
    chance (AMI < 0) ranks below one at chance instead of tying with it at 0.

    >>> round(signed_geomean([0.04, 0.09]), 6), signed_geomean([0.3, -0.01])
    (0.06, -0.01)
    """
    v = np.asarray(vals, dtype=np.float64)
    if (v > 0).all():
        return float(np.exp(np.mean(np.log(v))))
    return float(v.min())


@dataclass
class _CombinedWeights:
    """The weights of :class:`CombinedFitness`'s two parts: a base class of their own
    so that they stay its first fields, before the :class:`AgreementOptions`."""

    agreement_weight: float = 1.0
    zipf_weight: float = 0.1


@FITNESSES.register()
@dataclass
class CombinedFitness(AgreementOptions, _CombinedWeights):
    """Cross-modal agreement with a Zipf-prior penalty:
    ``agreement_weight · xmodal − zipf_weight · KL(cluster sizes ‖ Zipf)``.

    The agreement term is :class:`XModalFitness` (``references``, ``reference``,
    ``ks``, ``seeds``, ``metric``, ``aggregate``, ``normalize``), the penalty is the KL
    of :class:`ZipfFitness` (``zipf_k``, ``zipf_exponent``, ``zipf_direction``): ELo's
    distribution prior kept as a regularizer rather than the whole fitness. A collapsed
    representation gets ``worst`` (both parts at their worst).
    """

    name: ClassVar[str] = "combined"

    # fields: agreement_weight, zipf_weight (_CombinedWeights), the AgreementOptions, then
    zipf_k: int = 16
    zipf_exponent: float = 1.0
    zipf_direction: str = "clusters||zipf"
    seed: int = 0

    def __post_init__(self) -> None:
        from search.fitness import ZipfFitness  # not at the top: search.fitness imports us

        if self.agreement_weight < 0 or self.zipf_weight < 0:
            raise ValueError("agreement_weight and zipf_weight must be >= 0")
        self.xmodal = XModalFitness(**self.agreement_options(), seed=self.seed)
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
