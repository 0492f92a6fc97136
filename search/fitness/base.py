"""The fitness protocol every fitness of :mod:`search.fitness` follows, the
:data:`FITNESSES` registry with :func:`build_fitness`, and the checks they share:
embeddings as a finite ``N,D`` array (:func:`as_embeddings`) and collapse detection
(:func:`collapse_reason`).

Every fitness module of the package builds on this one (never on the package itself,
which re-exports them all); :data:`FITNESSES` discovers them on first lookup.

A fitness class with ``scores_weights = True`` scores λ itself instead of embeddings
(``score_weights(weights, fractions=..., key=...)``, one score per rung fraction): a
trial of such a kind trains nothing (:func:`scores_weights`; the ``synthetic`` stand-in
of :mod:`search.fitness.synthetic`, or a plug-in's own stand-in).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, cast

import numpy as np

from elo.config import merge_checked
from elo.errors import ConfigError
from elo.registry import Registry

#: fitness kinds by name: every module of :mod:`search.fitness` and ``elo.fitness``
#: plug-ins (elo/registry.py)
FITNESSES: Registry[type[Any]] = Registry(
    "fitness", packages=("elo.search.fitness",), entry_point_group="elo.fitness"
)


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
    return cast(np.ndarray, x)


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


def scores_weights(section: Mapping[str, Any]) -> bool:
    """Whether the fitness kind of config ``section`` scores λ itself (the class sets
    ``scores_weights``), so that its trials train nothing and read no data."""
    return bool(getattr(FITNESSES.get(section["kind"]), "scores_weights", False))


def build_fitness(section: Mapping[str, Any] | None, *, seed: int | None = None) -> Any:
    """The fitness a config section describes (``kind`` selects it).

    ``seed`` (the experiment seed) is used when the section's own ``seed`` is null or
    absent. Unknown keys raise :class:`ConfigError` naming ``fitness.<key>``.
    """
    section = dict(section or {})
    if "kind" not in section:
        raise ConfigError("missing config key 'fitness.kind' (a configs/fitness/ name)")
    kind = section["kind"]
    cls = FITNESSES.get(kind)
    if seed is not None and section.get("seed") is None:
        section["seed"] = seed
    kwargs = _check_config(cls, section, "fitness")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad fitness config ({kind}): {exc}") from None
