"""The weight space: ordered term keys <-> a real vector the strategies evolve.

ELo (Piergiovanni, Angelova & Ryoo, "Evolving Losses for Unsupervised Video
Representation Learning", CVPR 2020) searches the weights λ_k ∈ [0, 1] of the loss
terms. The strategies work in R^n; one pure function maps a vector to λ and one pure
function inverts it:

* ``clip``: λ = clip(x, 0, 1). Negative coordinates switch a term off exactly (λ = 0,
  so the term is not computed at all); the inverse is the identity on [0, 1].
* ``sigmoid``: λ = 1 / (1 + e^-x). Smooth, never exactly 0; the inverse is the logit,
  with λ clamped to [ε, 1 - ε] so 0 and 1 map to finite vectors.

Two options of the ``search`` section shape the space (both off by default;
docs/search.md, "The space"):

* ``search.space: families``: one coordinate per task *family* instead of one per term
  (:func:`family_of`): every term of a family gets the family's λ. The default
  objective's 24 terms form 8 families of 3 terms each: ``reconstruction``,
  ``future``, ``temporal_order`` (each on rgb, flow, audio), ``contrastive``,
  ``alignment`` (each on the pairs rgb+flow, rgb+audio, flow+audio), ``transfer``
  (rgb->flow, rgb->audio, flow->audio), ``distill/flow`` and ``distill/audio`` (each
  at levels 2, 3, 4). A task dropped into tasks/ is a family of its own.
* ``search.sparse_threshold: t``: a λ below ``t`` is exactly 0, so that term gets no
  head and an encoder no active term reads is not built or run
  (:class:`elo.model.network.ELoModel`); ``t`` is in ``[0, 0.5)`` so the strategies'
  starting mean (λ = 0.5) stays on.

>>> to_lambda([-0.5, 0.25, 3.0], "clip")
[0.0, 0.25, 1.0]
>>> [round(v, 6) for v in to_lambda(to_vector([0.2, 0.9], "sigmoid"), "sigmoid")]
[0.2, 0.9]
>>> family_of("distill/audio->rgb@3"), family_of("rgb+flow/contrastive")
('distill/audio', 'contrastive')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from elo.errors import ConfigError

MAPPINGS: tuple[str, ...] = ("clip", "sigmoid")
#: ``search.space``: one coordinate per term, or per task family (:func:`family_of`)
SPACES: tuple[str, ...] = ("terms", "families")
#: λ is clamped to [EPS, 1 - EPS] before the sigmoid's inverse (|x| <= 6.9).
EPS = 1e-3


def check_space(space: Any) -> str:
    if space not in SPACES:
        raise ConfigError(
            f"config key 'search.space' must be one of {', '.join(SPACES)}, got {space!r}"
        )
    return str(space)


def check_sparse_threshold(threshold: Any) -> float:
    ok = isinstance(threshold, int | float) and not isinstance(threshold, bool)
    if not ok or not 0.0 <= float(threshold) < 0.5:
        raise ConfigError(
            "config key 'search.sparse_threshold' must be a number in [0, 0.5) (0: off; the "
            f"strategies start at λ = 0.5, which must stay on), got {threshold!r}"
        )
    return float(threshold)


def family_of(term: str) -> str:
    """The task family of a term key: its task name (``rgb/future`` and
    ``audio/future`` are ``future``), except distillation, one family per teacher
    (``distill/flow->rgb@2`` is ``distill/flow``)."""
    from elo.model.terms import TermKey

    key = TermKey.parse(term)
    return f"distill/{key.teacher}" if key.task == "distill" else key.task


def sparsify(lam: Sequence[float], threshold: float) -> list[float]:
    """λ below ``threshold`` set to exactly 0 (``threshold`` 0: unchanged)."""
    return [0.0 if float(v) < threshold else float(v) for v in lam]


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
    """The ordered term keys of one config, the vector mapping, the coordinates
    (``space``: one per term, or one per task family) and the sparse threshold."""

    terms: tuple[str, ...]
    mapping: str = "clip"
    space: str = "terms"
    sparse_threshold: float = 0.0
    #: the coordinates' names: the terms, or the families in first-appearance order
    names: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        _check_mapping(self.mapping)
        check_space(self.space)
        check_sparse_threshold(self.sparse_threshold)
        if not self.terms:
            raise ConfigError(
                "the objective has no terms to search; check objective.modalities / "
                "objective.tasks (`elo-train --list-terms` prints them)"
            )
        if len(set(self.terms)) != len(self.terms):
            raise ConfigError(f"duplicate term keys in the search space: {list(self.terms)}")
        names = self.terms
        if self.space == "families":
            names = tuple(dict.fromkeys(family_of(t) for t in self.terms))
        object.__setattr__(self, "names", names)

    @classmethod
    def from_config(cls, cfg: Mapping[str, object], mapping: str | None = None) -> WeightSpace:
        """The space of a composed config (``objective`` + ``search.mapping``, or
        ``mapping`` when given: :attr:`search.settings.SearchSettings.mapping`; and
        ``search.space``, ``search.sparse_threshold``)."""
        from elo.model.objective import terms_from_config

        if mapping is None:
            from elo.config import require

            mapping = str(require(cfg, "search.mapping", str))
        from elo.config import require

        return cls(
            tuple(str(t) for t in terms_from_config(cfg)),
            mapping,
            space=check_space(require(cfg, "search.space", str)),
            sparse_threshold=check_sparse_threshold(require(cfg, "search.sparse_threshold", float)),
        )

    @property
    def dim(self) -> int:
        """The number of coordinates (terms, or families)."""
        return len(self.names)

    def families(self) -> dict[str, list[str]]:
        """Each coordinate's terms (a term per coordinate in the ``terms`` space)."""
        if self.space == "terms":
            return {t: [t] for t in self.terms}
        out: dict[str, list[str]] = {name: [] for name in self.names}
        for t in self.terms:
            out[family_of(t)].append(t)
        return out

    def weights(self, x: Sequence[float]) -> dict[str, float]:
        """Vector -> ``{term key: λ}`` (every term, in term order)."""
        if len(x) != self.dim:
            raise ValueError(f"vector has {len(x)} entries, the space has {self.dim} {self.space}")
        lam = sparsify(to_lambda(x, self.mapping), self.sparse_threshold)
        per_name = dict(zip(self.names, lam, strict=True))
        if self.space == "terms":
            return per_name
        return {t: per_name[family_of(t)] for t in self.terms}

    def vector(self, weights: Mapping[str, float]) -> list[float]:
        """``{term key: λ}`` (every term) -> vector. In the ``families`` space the terms
        of a family must share one λ."""
        missing = [t for t in self.terms if t not in weights]
        if missing:
            raise ConfigError(f"no λ for term {missing[0]!r}")
        lam = []
        for name, members in self.families().items():
            values = {float(weights[t]) for t in members}
            if len(values) > 1:
                raise ConfigError(
                    f"search.space is families but the terms of family {name!r} have "
                    f"different λ ({', '.join(f'{t}={weights[t]}' for t in members)}); "
                    "give them one λ or use search.space: terms"
                )
            lam.append(values.pop())
        return to_vector(lam, self.mapping)

    def centre(self) -> list[float]:
        """The vector of λ = 0.5 everywhere (the CMA-ES starting mean)."""
        return self.vector({t: 0.5 for t in self.terms})

    def seed_points(self) -> list[list[float]]:
        """Uniform weights, then one point per task with λ = 1 on that task's terms.

        A task is the term's task name (``rgb/reconstruction`` and
        ``flow/reconstruction`` are one task; all distillation terms are ``distill``).
        In the ``families`` space a point per family instead (distillation from flow
        and from audio are two).
        """
        from elo.model.terms import TermKey

        def group(t: str) -> str:
            return family_of(t) if self.space == "families" else TermKey.parse(t).task

        points = [self.vector({t: 1.0 for t in self.terms})]
        for name in dict.fromkeys(group(t) for t in self.terms):
            lam = {t: 1.0 if group(t) == name else 0.0 for t in self.terms}
            points.append(self.vector(lam))
        return points
