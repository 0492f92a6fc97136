"""The ``synthetic`` stand-in fitness (``--fitness synthetic``): a known optimum over λ
and no training, for tests and for measuring the scheduler's own overhead. It scores
weights, not embeddings, so it is not a :class:`search.fitness.base.Fitness`:
:func:`search.trainable.evaluate` calls :func:`synthetic_fitness` directly, after
sleeping ``fitness.seconds``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


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
