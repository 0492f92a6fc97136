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

One module per fitness, discovered like tasks (:data:`FITNESSES` imports every
non-underscore module of this package; plug-ins join through the ``elo.fitness``
entry-point group):

* :mod:`~search.fitness.base` — the protocol, the registry, :func:`build_fitness` and
  the shared checks.
* :mod:`~search.fitness.zipf` — :class:`ZipfFitness`, ELo's unsupervised fitness
  (Piergiovanni, Angelova & Ryoo, "Evolving Losses for Unsupervised Video
  Representation Learning", CVPR 2020, §3.3): k-means on the embeddings, the
  distribution of cluster sizes sorted in decreasing order, compared with a Zipf law
  ``q(i) = i^-s / H_{k,s}``; fitness = −KL.
* :mod:`~search.fitness.weak` — :class:`WeakFitness`, the paper's weakly-supervised
  alternative: cross-validated kNN or linear-probe accuracy on a small labeled subset.
* :mod:`~search.fitness.references` — the fixed audio / flow statistics the
  cross-modal kinds compare with.
* :mod:`~search.fitness.xmodal`, :mod:`~search.fitness.combined` —
  :class:`XModalFitness`, :class:`CombinedFitness`: cross-modal cluster agreement
  (alone, or with a Zipf penalty).
* :mod:`~search.fitness.predict` — :class:`XPredictFitness`: cross-validated ridge R²
  of those fixed references from the RGB embeddings.
* :mod:`~search.fitness.spectral` — :class:`RankMeFitness`, :class:`AlphaReqFitness`:
  effective rank (RankMe) and eigenspectrum decay (α-ReQ) of the embeddings.
* :mod:`~search.fitness.data` — the held-out clips a search scores on, and how they
  are embedded; :mod:`~search.fitness.synthetic` — the stand-in with a known optimum
  (``--fitness synthetic``, no training).

A collapsed representation (fewer than two distinct embeddings, all equal, or all on
one line) is detected before clustering and gets the fitness's ``worst`` value with
the reason in ``details["collapsed"]``. Non-finite embeddings raise
:class:`NonFiniteEmbeddings` (a ``ValueError``) naming how many rows and why; the
search turns it into the worst fitness for that trial.
"""

from __future__ import annotations

from elo.search.fitness.base import (
    FITNESSES,
    Fitness,
    FitnessResult,
    NonFiniteEmbeddings,
    as_embeddings,
    build_fitness,
    collapse_reason,
)
from elo.search.fitness.combined import CombinedFitness
from elo.search.fitness.predict import XPredictFitness, ridge_r2
from elo.search.fitness.references import (
    REFERENCES,
    audio_statistics,
    flow_statistics,
    reference_features,
    signed_geomean,
)
from elo.search.fitness.spectral import AlphaReqFitness, RankMeFitness, alpha_decay, rankme
from elo.search.fitness.weak import WeakFitness
from elo.search.fitness.xmodal import XModalFitness, kmeans_labels
from elo.search.fitness.zipf import DIRECTIONS, ZipfFitness, zipf_kl, zipf_pmf

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
