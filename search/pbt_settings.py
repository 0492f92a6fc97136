"""The ``search.pbt`` section (strategy ``pbt`` | ``pb2``, docs/search.md), checked once
into a frozen :class:`PBTSettings`, and how a member's λ travels in its Ray Tune config.

Each λ is one top-level config key (:func:`lambda_key`: ``l00``, ``l01``, ... in the
objective's term order) rather than the term key itself: Ray Tune flattens nested
configs and results on ``/``, which term keys contain (``rgb/reconstruction``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elo.errors import ConfigError

#: strategies run by search/pbt.py instead of the generational driver
PBT_STRATEGIES = ("pbt", "pb2")

PBT_DEFAULTS: dict[str, Any] = {
    "population": 4,  # members trained at once (time-shared over the workers)
    "steps": 300,  # training steps of every member: the final model's budget
    "interval": 50,  # steps between fitness reports; exploit and explore at each
    "quantile": 0.25,  # the bottom quantile copies the top one (Tune's quantile_fraction)
    "resample_probability": 0.25,  # pbt: chance a λ is redrawn from U(0, 1)
    "perturbation_factors": [1.2, 0.8],  # pbt: else λ is scaled by one (then clipped)
}


@dataclass(frozen=True)
class PBTSettings:
    """The validated ``search.pbt`` section (see :data:`PBT_DEFAULTS`)."""

    population: int = 4
    steps: int = 300
    interval: int = 50
    quantile: float = 0.25
    resample_probability: float = 0.25
    perturbation_factors: tuple[float, ...] = (1.2, 0.8)

    @classmethod
    def from_section(cls, section: Mapping[str, Any] | None) -> PBTSettings:
        """Parse ``search.pbt`` over :data:`PBT_DEFAULTS`; unknown keys and bad values
        are one-line :class:`~elo.errors.ConfigError` naming ``search.pbt.<key>``."""
        from elo.config import merge_checked

        out = merge_checked(dict(PBT_DEFAULTS), dict(section or {}), "search.pbt")
        for key, low in (("population", 2), ("steps", 1), ("interval", 1)):
            v = out[key]
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ConfigError(
                    f"config key 'search.pbt.{key}' must be an integer >= {low}, got {v!r}"
                )
        if out["interval"] >= out["steps"]:
            raise ConfigError(
                f"config key 'search.pbt.interval' ({out['interval']}) must be below "
                f"search.pbt.steps ({out['steps']}): members copy each other only between "
                "intervals; lower search.pbt.interval"
            )
        q = _number(out, "quantile")
        if not 0.0 < q <= 0.5:
            raise ConfigError(f"config key 'search.pbt.quantile' must be in (0, 0.5], got {q!r}")
        r = _number(out, "resample_probability")
        if not 0.0 <= r <= 1.0:
            raise ConfigError(
                f"config key 'search.pbt.resample_probability' must be in [0, 1], got {r!r}"
            )
        factors = out["perturbation_factors"]
        ok = isinstance(factors, list | tuple) and len(factors) > 0
        ok = ok and all(
            isinstance(f, int | float) and not isinstance(f, bool) and 0 < f < math.inf
            for f in factors
        )
        if not ok:
            raise ConfigError(
                "config key 'search.pbt.perturbation_factors' must be a list of positive "
                f"numbers (e.g. [1.2, 0.8]), got {factors!r}"
            )
        return cls(
            population=out["population"],
            steps=out["steps"],
            interval=out["interval"],
            quantile=q,
            resample_probability=r,
            perturbation_factors=tuple(float(f) for f in factors),
        )

    @property
    def intervals(self) -> int:
        """Reports per member: ``ceil(steps / interval)`` (the last may be shorter)."""
        return -(-self.steps // self.interval)


def _number(out: Mapping[str, Any], key: str) -> float:
    v = out[key]
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ConfigError(f"config key 'search.pbt.{key}' must be a number, got {v!r}")
    return float(v)


def lambda_key(i: int) -> str:
    """The Ray Tune config key of the ``i``-th term's λ."""
    return f"l{i:02d}"


def from_config(config: Mapping[str, Any], n_terms: int) -> list[float]:
    """The λ (term order) of a member's Tune config."""
    return [float(config[lambda_key(i)]) for i in range(n_terms)]


def clip_lambdas(config: dict[str, Any]) -> dict[str, Any]:
    """Ray Tune's ``custom_explore_fn``: every λ of an explored config clipped to
    [0, 1] (PBT scales λ by its perturbation factors, which can leave the box)."""
    for key, value in config.items():
        if key.startswith("l") and key[1:].isdigit():
            config[key] = min(1.0, max(0.0, float(value)))
    return config
