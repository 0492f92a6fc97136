"""The ``search.pbt`` section (strategy ``pbt`` | ``pb2``, docs/search.md), checked once
into a frozen :class:`PBTSettings`, and how a member's λ travels in its Ray Tune config.

Each λ is one top-level config key (:func:`lambda_key`: ``l00``, ``l01``, ... in the
objective's term order) rather than the term key itself: Ray Tune flattens nested
configs and results on ``/``, which term keys contain (``rgb/reconstruction``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elo.errors import ConfigError

#: strategies run by search/pbt.py instead of the generational driver
PBT_STRATEGIES = ("pbt", "pb2")


@dataclass(frozen=True)
class PBTSettings:
    """The validated ``search.pbt`` section (configs/search/base.yaml says what each key
    does and holds its default)."""

    population: int
    steps: int
    interval: int
    quantile: float
    resample_probability: float
    perturbation_factors: tuple[float, ...]

    @classmethod
    def from_section(cls, section: Any) -> PBTSettings:
        """Parse ``search.pbt``: every key present, none unknown, each number in its
        range (elo/config_values.py), ``interval`` below ``steps``; each failure is a
        one-line :class:`~elo.errors.ConfigError` naming ``search.pbt.<key>``."""
        from elo.config import _unknown_key_message
        from elo.config_values import check_values

        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(section, Mapping):
            raise ConfigError(
                f"config key 'search.pbt' must be a mapping of {', '.join(names)} "
                f"(configs/search/base.yaml holds their defaults), got {section!r}"
            )
        for key in section:
            if key not in names:
                known = dict.fromkeys(names)
                raise ConfigError(_unknown_key_message(f"search.pbt.{key}", str(key), known))
        for key in names:
            if key not in section:
                raise ConfigError(
                    f"missing config key 'search.pbt.{key}': a search.pbt section holds "
                    "every key; configs/search/base.yaml holds the defaults"
                )
        check_values(section, "search.pbt.")
        if not section["perturbation_factors"]:
            raise ConfigError(
                "config key 'search.pbt.perturbation_factors' must be a non-empty list of "
                "numbers > 0 (e.g. [1.2, 0.8]), got []"
            )
        if section["interval"] >= section["steps"]:
            raise ConfigError(
                f"config key 'search.pbt.interval' ({section['interval']}) must be below "
                f"search.pbt.steps ({section['steps']}): members copy each other only between "
                "intervals; lower search.pbt.interval"
            )
        return cls(
            population=section["population"],
            steps=section["steps"],
            interval=section["interval"],
            quantile=float(section["quantile"]),
            resample_probability=float(section["resample_probability"]),
            perturbation_factors=tuple(float(f) for f in section["perturbation_factors"]),
        )

    @property
    def intervals(self) -> int:
        """Reports per member: ``ceil(steps / interval)`` (the last may be shorter)."""
        return -(-self.steps // self.interval)


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
