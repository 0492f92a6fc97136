"""The weight space: ordered term keys <-> a real vector the strategies evolve.

ELo (Piergiovanni, Angelova & Ryoo, "Evolving Losses for Unsupervised Video
Representation Learning", CVPR 2020) searches the weights λ_k ∈ [0, 1] of the loss
terms. The strategies work in R^n; one pure function maps a vector to λ and one pure
function inverts it:

* ``clip``: λ = clip(x, 0, 1). Negative coordinates switch a term off exactly (λ = 0,
  so the term is not computed at all); the inverse is the identity on [0, 1].
* ``sigmoid``: λ = 1 / (1 + e^-x). Smooth, never exactly 0; the inverse is the logit,
  with λ clamped to [ε, 1 - ε] so 0 and 1 map to finite vectors.

>>> to_lambda([-0.5, 0.25, 3.0], "clip")
[0.0, 0.25, 1.0]
>>> [round(v, 6) for v in to_lambda(to_vector([0.2, 0.9], "sigmoid"), "sigmoid")]
[0.2, 0.9]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from elo.errors import ConfigError

MAPPINGS: tuple[str, ...] = ("clip", "sigmoid")
#: λ is clamped to [EPS, 1 - EPS] before the sigmoid's inverse (|x| <= 6.9).
EPS = 1e-3


def _check_mapping(mapping: str) -> None:
    if mapping not in MAPPINGS:
        raise ConfigError(f"search.mapping is {mapping!r}; use one of: {', '.join(MAPPINGS)}")


def to_lambda(x: Sequence[float], mapping: str = "clip") -> list[float]:
    """Vector in R^n -> λ ∈ [0, 1]^n (pure)."""
    _check_mapping(mapping)
    if mapping == "clip":
        return [min(1.0, max(0.0, float(v))) for v in x]
    out = []
    for v in x:
        v = float(v)  # numerically stable logistic for large |v|
        out.append(1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v)))
    return out


def to_vector(lam: Sequence[float], mapping: str = "clip") -> list[float]:
    """λ ∈ [0, 1]^n -> a vector that :func:`to_lambda` maps back to λ (pure)."""
    _check_mapping(mapping)
    for v in lam:
        if not (isinstance(v, int | float) and 0.0 <= float(v) <= 1.0):
            raise ConfigError(f"λ must lie in [0, 1], got {v!r}")
    if mapping == "clip":
        return [float(v) for v in lam]
    out = []
    for v in lam:
        p = min(1.0 - EPS, max(EPS, float(v)))
        out.append(math.log(p / (1.0 - p)))
    return out


@dataclass(frozen=True)
class WeightSpace:
    """The ordered term keys of one config and the vector mapping."""

    terms: tuple[str, ...]
    mapping: str = "clip"

    def __post_init__(self) -> None:
        _check_mapping(self.mapping)
        if not self.terms:
            raise ConfigError(
                "the objective has no terms to search; check objective.modalities / "
                "objective.tasks (`elo-train --list-terms` prints them)"
            )
        if len(set(self.terms)) != len(self.terms):
            raise ConfigError(f"duplicate term keys in the search space: {list(self.terms)}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, object], mapping: str | None = None) -> WeightSpace:
        """The space of a composed config (``objective`` + ``search.mapping``, or
        ``mapping`` when given: :attr:`search.settings.SearchSettings.mapping`)."""
        from elo.model.objective import terms_from_config

        if mapping is None:
            from elo.config import require

            mapping = str(require(cfg, "search.mapping", str))
        return cls(tuple(str(t) for t in terms_from_config(cfg)), mapping)

    @property
    def dim(self) -> int:
        return len(self.terms)

    def weights(self, x: Sequence[float]) -> dict[str, float]:
        """Vector -> ``{term key: λ}``."""
        if len(x) != self.dim:
            raise ValueError(f"vector has {len(x)} entries, the space has {self.dim} terms")
        return dict(zip(self.terms, to_lambda(x, self.mapping), strict=True))

    def vector(self, weights: Mapping[str, float]) -> list[float]:
        """``{term key: λ}`` (every term) -> vector."""
        missing = [t for t in self.terms if t not in weights]
        if missing:
            raise ConfigError(f"no λ for term {missing[0]!r}")
        return to_vector([weights[t] for t in self.terms], self.mapping)

    def centre(self) -> list[float]:
        """The vector of λ = 0.5 everywhere (the CMA-ES starting mean)."""
        return self.vector({t: 0.5 for t in self.terms})

    def seed_points(self) -> list[list[float]]:
        """Uniform weights, then one point per task with λ = 1 on that task's terms.

        A task is the term's task name (``rgb/reconstruction`` and
        ``flow/reconstruction`` are one task; all distillation terms are ``distill``).
        """
        from elo.model.terms import TermKey

        points = [self.vector({t: 1.0 for t in self.terms})]
        tasks: list[str] = []
        for t in self.terms:
            name = TermKey.parse(t).task
            if name not in tasks:
                tasks.append(name)
        for name in tasks:
            lam = {t: 1.0 if TermKey.parse(t).task == name else 0.0 for t in self.terms}
            points.append(self.vector(lam))
        return points
