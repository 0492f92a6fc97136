"""The ``synthetic`` stand-in fitness (``--fitness synthetic``): a known optimum over λ
and no training, for measuring the scheduler's own overhead and for tests of the search
machinery. It scores weights, not embeddings: :class:`SyntheticFitness` is a fitness
that *scores λ* (``scores_weights``, search/fitness/base.py), which the trial calls
instead of training a candidate (search/trainable.py).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from elo.search.fitness.base import FITNESSES


def synthetic_target(terms: Sequence[str]) -> dict[str, float]:
    """A known optimum over λ: spread over [0, 1], with one term at exactly 0 and one
    at exactly 1 so the box boundary is exercised."""
    n = len(terms)
    vals = [0.0 if i == 0 else 1.0 if i == 1 else (0.15 + 0.7 * i / n) for i in range(n)]
    return dict(zip(terms, vals, strict=True))


def synthetic_fitness(weights: Mapping[str, float]) -> float:
    """−‖λ − λ*‖² with λ* = :func:`synthetic_target` of the sorted terms."""
    target = synthetic_target(sorted(weights))  # independent of the dict's order
    return -sum((weights[k] - v) ** 2 for k, v in target.items())


def synthetic_rungs(
    weights: Mapping[str, float],
    fractions: Sequence[float],
    noise: float,
    seed: Sequence[int],
) -> list[float]:
    """The synthetic stand-in's score at each rung: its fitness plus Gaussian noise of
    std ``noise · (1 − fraction)`` (exact at the top rung), seeded by ``seed`` (the
    search seed, generation and index), so lower rungs are noisier estimates."""
    value = synthetic_fitness(weights)
    rng = random.Random("-".join(str(int(s)) for s in seed))
    return [value + noise * (1.0 - float(f)) * rng.gauss(0.0, 1.0) for f in fractions]


@FITNESSES.register()
@dataclass
class SyntheticFitness:
    """A stand-in with a known optimum, scored from λ alone without training
    (:func:`synthetic_fitness`; for tests and benchmarks of the search machinery).

    With ``rung_noise`` set, a search with rungs
    scores each candidate at every rung as that value plus Gaussian noise of std
    ``rung_noise · (1 − fraction)`` (:func:`synthetic_rungs`):
    lower rungs are noisier estimates, the top rung is exact."""

    name: ClassVar[str] = "synthetic"
    #: scores λ directly: the trial trains nothing (search/trainable.py)
    scores_weights: ClassVar[bool] = True

    rung_noise: float | None = None
    seed: int = 0

    def score_weights(
        self,
        weights: Mapping[str, float],
        *,
        fractions: Sequence[float] = (1.0,),
        key: Sequence[int] = (),
    ) -> list[float]:
        """The score at each rung ``fractions`` (of the top rung's steps); ``key`` (the
        search seed, generation and index) seeds the rung noise."""
        return synthetic_rungs(weights, fractions, float(self.rung_noise or 0.0), key)
