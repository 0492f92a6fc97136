"""The ``search`` section of a config, parsed and validated once into a frozen
:class:`SearchSettings` that every part of a search takes (the driver, the strategy
factory, the trials' :class:`search.trainable.TrialContext`).

Unknown keys and bad values are one-line :class:`~elo.errors.ConfigError` naming the
config key (``search.<key>``). :func:`fitness_section` is the ``fitness`` section that
``--fitness NAME`` selects.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from elo.errors import ConfigError
from elo.search.pbt_settings import PBTSettings

#: BatchNorm statistics of the fitness embeddings (search/fitness/data.py)
BN_MODES = ("recalibrate", "train", "eval")


def check_heldout_split(split: str) -> None:
    if split == "test":
        raise ConfigError(
            "config key 'search.heldout_split' is 'test': the search would choose the loss "
            "on the clips the final probe reports on; use 'train' (a held-out slice of the "
            "train pool, search.heldout_fraction) or a validation split"
        )


def check_heldout_fraction(fraction: Any) -> float:
    ok = isinstance(fraction, int | float) and not isinstance(fraction, bool)
    if not ok or not 0.0 < float(fraction) < 1.0:
        raise ConfigError(
            f"config key 'search.heldout_fraction' must be in (0, 1), got {fraction!r}"
        )
    return float(fraction)


def check_heldout_bn(bn: str) -> None:
    if bn not in BN_MODES:
        raise ConfigError(f"config key 'search.heldout_bn' must be one of {BN_MODES}, got {bn!r}")


def _check_fidelity(out: Mapping[str, Any]) -> None:
    """``search.rungs``: increasing fractions in (0, 1] ending at 1 (their range is
    checked with every other number, elo/config_values.py), and ``search.warm_start``."""
    rungs = out["rungs"]
    if rungs is not None:
        ok = len(rungs) >= 1 and float(rungs[-1]) == 1.0
        ok = ok and all(float(a) < float(b) for a, b in zip(rungs, rungs[1:], strict=False))
        if not ok:
            raise ConfigError(
                "config key 'search.rungs' must be increasing fractions of the proxy steps "
                f"in (0, 1] ending at 1.0 (e.g. [0.25, 0.5, 1.0]) or null, got {rungs!r}"
            )
    for key in ("warm_start", "paired"):
        if not isinstance(out[key], bool):
            raise ConfigError(f"config key 'search.{key}' must be true or false, got {out[key]!r}")


def section_of(cfg: Mapping[str, Any], name: str, fields: Sequence[str]) -> dict[str, Any]:
    """A copy of ``cfg[name]`` holding exactly ``fields``: a missing key is an error (the
    YAML in configs/<name>/ declares every key with its default), an unknown one too."""
    from elo.config import _unknown_key_message

    section = cfg.get(name)
    if not isinstance(section, Mapping):
        raise ConfigError(f"missing config section {name!r} (configs/{name}/ has its keys)")
    for key in section:
        if key not in fields:
            known = dict.fromkeys(fields)
            raise ConfigError(_unknown_key_message(f"{name}.{key}", str(key), known))
    missing = [f for f in fields if f not in section]
    if missing:
        raise ConfigError(
            f"missing config key '{name}.{missing[0]}': a {name} section holds every key "
            f"of configs/{name}/ (where their defaults are)"
        )
    return copy.deepcopy(dict(section))


def _check_space(out: Mapping[str, Any]) -> None:
    """``search.space`` and ``search.sparse_threshold`` (search/space.py)."""
    from elo.search.space import check_space, check_sparse_threshold

    check_space(out["space"])
    check_sparse_threshold(out["sparse_threshold"])


@dataclass(frozen=True)
class SearchSettings:
    """The validated ``search`` section (configs/search/base.yaml says what each key
    does and holds its default)."""

    strategy: str
    population: int
    generations: int
    sigma: float
    mapping: str
    seed_points: bool
    ga: Mapping[str, Any]
    steps: int | None
    workers: int | None
    cpus_per_trial: int
    gpus_per_trial: float
    memory_per_trial_gb: float
    heldout_split: str
    heldout_fraction: float
    heldout_bn: str
    trial_timeout_s: float | None
    max_retries: int
    warm_start: bool
    warm_start_steps: int | None
    rungs: tuple[float, ...] | None
    reduction_factor: int
    collapse_std: float
    paired: bool
    space: str
    sparse_threshold: float
    pbt: PBTSettings

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SearchSettings:
        """Parse and validate ``cfg["search"]``: every key present, none unknown, each
        value in its range."""
        from elo.config_values import check_values

        names = [f.name for f in dataclasses.fields(cls)]
        out = section_of(cfg, "search", names)
        check_values(out, "search.")
        check_heldout_split(str(out["heldout_split"]))
        check_heldout_bn(str(out["heldout_bn"]))
        _check_fidelity(out)
        _check_space(out)
        timeout = out["trial_timeout_s"]
        return cls(
            strategy=str(out["strategy"]),
            population=out["population"],
            generations=out["generations"],
            sigma=float(out["sigma"]),
            mapping=str(out["mapping"]),
            seed_points=bool(out["seed_points"]),
            ga=MappingProxyType(dict(out["ga"])),
            steps=out["steps"],
            workers=out["workers"],
            cpus_per_trial=out["cpus_per_trial"],
            gpus_per_trial=float(out["gpus_per_trial"]),
            memory_per_trial_gb=float(out["memory_per_trial_gb"]),
            heldout_split=str(out["heldout_split"]),
            heldout_fraction=check_heldout_fraction(out["heldout_fraction"]),
            heldout_bn=str(out["heldout_bn"]),
            trial_timeout_s=None if timeout is None else float(timeout),
            max_retries=out["max_retries"],
            warm_start=out["warm_start"],
            warm_start_steps=out["warm_start_steps"],
            rungs=None if out["rungs"] is None else tuple(float(r) for r in out["rungs"]),
            reduction_factor=out["reduction_factor"],
            collapse_std=float(out["collapse_std"]),
            paired=out["paired"],
            space=str(out["space"]),
            sparse_threshold=float(out["sparse_threshold"]),
            pbt=PBTSettings.from_section(out["pbt"]),
        )

    @property
    def total(self) -> int:
        """Evaluations of the whole search: population × generations."""
        return self.population * self.generations


#: fitness kinds that compare the RGB embeddings with other modalities of the held-out
#: clips (``fitness.references``)
_WITH_REFERENCES = ("xmodal", "combined", "xpredict")


@dataclass(frozen=True)
class FitnessSettings:
    """The validated ``fitness`` section: its ``kind`` and every other key of it
    (configs/fitness/<kind>.yaml declares them with their defaults)."""

    kind: str
    options: Mapping[str, Any]

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> FitnessSettings:
        """Parse ``cfg["fitness"]``: every key of its kind present, each value in range."""
        from elo.config_values import check_fitness_complete, check_values

        section = cfg.get("fitness")
        if not isinstance(section, Mapping) or "kind" not in section:
            raise ConfigError("missing config key 'fitness.kind' (configs/fitness/ has them)")
        check_fitness_complete(section, "the fitness section")
        check_values(section, "fitness.")
        options = {str(k): copy.deepcopy(v) for k, v in section.items() if k != "kind"}
        kind = str(section["kind"])
        return cls(kind, MappingProxyType({**_plugin_defaults(kind), **options}))

    @property
    def trains(self) -> bool:
        """Whether candidates are trained and embedded (all but the kinds that score λ
        themselves, such as ``synthetic``: search/fitness/base.py)."""
        from elo.search.fitness.base import scores_weights

        return not scores_weights({"kind": self.kind})

    @property
    def references(self) -> list[str]:
        """Modalities besides RGB this fitness reads from the held-out clips."""
        if self.kind not in _WITH_REFERENCES:
            return []
        return [str(m) for m in self.options["references"]]

    def build(self, seed: int) -> Any:
        """The fitness object (search/fitness/base.py); a ``seed`` of null in the
        section is the experiment's ``seed``."""
        from elo.search.fitness import build_fitness

        return build_fitness({"kind": self.kind, **self.options}, seed=seed)


def _plugin_defaults(kind: str) -> dict[str, Any]:
    """The constructor defaults of a plug-in fitness kind (one without a file in
    configs/fitness/, whose keys its class declares); nothing for a shipped kind."""
    from elo.config_files import plugin_fitness
    from elo.search.fitness import FITNESSES

    if not plugin_fitness("fitness", {"kind": kind}):
        return {}
    fields = dataclasses.fields(FITNESSES.get(kind))
    return {f.name: f.default for f in fields if f.init and f.default is not dataclasses.MISSING}


def fitness_section(name: str) -> dict[str, Any]:
    """The fitness config for ``--fitness NAME``: ``configs/fitness/NAME.yaml`` (or a
    path) over its base."""
    from elo.config import load_part

    return load_part("fitness", name)
