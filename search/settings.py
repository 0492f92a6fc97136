"""The ``search`` section of a config, parsed and validated once into a frozen
:class:`SearchSettings` that every part of a search takes (the driver, the strategy
factory, the trials' :class:`search.trainable.TrialContext`).

Unknown keys and bad values are one-line :class:`~elo.errors.ConfigError` naming the
config key (``search.<key>``). :func:`fitness_section` is the ``fitness`` section that
``--fitness NAME`` selects.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from elo.errors import ConfigError

SEARCH_DEFAULTS: dict[str, Any] = {
    "strategy": "cma",
    "population": 64,
    "generations": 4,
    "sigma": 0.3,
    "mapping": "clip",
    "seed_points": False,
    "ga": {},
    "steps": None,
    "workers": None,
    "cpus_per_trial": 1,
    "gpus_per_trial": 0,
    "memory_per_trial_gb": 2.0,
    "heldout_split": "train",  # fitness clips: a held-out slice of train (fitness/data.py)
    "heldout_fraction": 0.2,  # of the train videos, never trained on by a candidate
    "heldout_bn": "recalibrate",  # BatchNorm statistics of the fitness embeddings
    "trial_timeout_s": None,  # seconds; a trial running longer gets the worst fitness
    "max_retries": 2,  # Ray Tune restarts of a trial whose worker or node failed
    "warm_start": False,  # train one shared trunk (uniform λ) before generation 0
    "warm_start_steps": None,  # its steps (null: the proxy steps)
    "rungs": None,  # fractions of the proxy steps scored, e.g. [0.25, 0.5, 1.0] (null: one)
    "reduction_factor": 2,  # ASHA keeps the top 1/reduction_factor at each rung
    "collapse_std": 1e-4,  # mean embedding std below this at a rung: rejected (collapsed)
    "pbt": {},  # strategy pbt | pb2: checked by search/pbt_settings.py (docs/search.md)
}

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


def with_defaults(section: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``search`` section over :data:`SEARCH_DEFAULTS` (what ``config.yaml`` of a run
    holds); unknown keys are kept for :meth:`SearchSettings.from_config` to refuse."""
    return {**copy.deepcopy(SEARCH_DEFAULTS), **copy.deepcopy(dict(section or {}))}


def _check_counts(out: Mapping[str, Any]) -> None:
    for key in ("population", "generations", "cpus_per_trial"):
        if not isinstance(out[key], int) or isinstance(out[key], bool) or out[key] < 1:
            raise ConfigError(
                f"config key 'search.{key}' must be an integer >= 1, got {out[key]!r}"
            )
    timeout = out["trial_timeout_s"]
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0
    ):
        raise ConfigError(
            f"config key 'search.trial_timeout_s' must be > 0 or null, got {timeout!r}"
        )
    retries = out["max_retries"]
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(
            f"config key 'search.max_retries' must be an integer >= 0, got {retries!r}"
        )
    _check_fidelity(out)
    if out["workers"] is not None and (not isinstance(out["workers"], int) or out["workers"] < 1):
        raise ConfigError(f"config key 'search.workers' must be >= 1, got {out['workers']!r}")


def _check_fidelity(out: Mapping[str, Any]) -> None:
    """``search.rungs`` (increasing fractions in (0, 1] ending at 1), the reduction
    factor, the warm-start steps and the collapse threshold (docs/search.md)."""
    rungs = out["rungs"]
    if rungs is not None:
        ok = isinstance(rungs, list | tuple) and len(rungs) >= 1
        ok = ok and all(isinstance(r, int | float) and not isinstance(r, bool) for r in rungs)
        ok = ok and all(0.0 < float(r) <= 1.0 for r in rungs)
        ok = ok and all(float(a) < float(b) for a, b in zip(rungs, rungs[1:], strict=False))
        if not ok or float(rungs[-1]) != 1.0:
            raise ConfigError(
                "config key 'search.rungs' must be increasing fractions of the proxy steps "
                f"in (0, 1] ending at 1.0 (e.g. [0.25, 0.5, 1.0]) or null, got {rungs!r}"
            )
    rf = out["reduction_factor"]
    if isinstance(rf, bool) or not isinstance(rf, int) or rf < 2:
        raise ConfigError(
            f"config key 'search.reduction_factor' must be an integer >= 2, got {rf!r}"
        )
    ws = out["warm_start_steps"]
    if ws is not None and (isinstance(ws, bool) or not isinstance(ws, int) or ws < 1):
        raise ConfigError(
            f"config key 'search.warm_start_steps' must be an integer >= 1 or null, got {ws!r}"
        )
    if not isinstance(out["warm_start"], bool):
        raise ConfigError(
            f"config key 'search.warm_start' must be true or false, got {out['warm_start']!r}"
        )
    cs = out["collapse_std"]
    if isinstance(cs, bool) or not isinstance(cs, int | float) or cs < 0:
        raise ConfigError(f"config key 'search.collapse_std' must be a number >= 0, got {cs!r}")


@dataclass(frozen=True)
class SearchSettings:
    """The validated ``search`` section (see :data:`SEARCH_DEFAULTS` and
    configs/search/cma.yaml for what each key does)."""

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
    warm_start: bool = False
    warm_start_steps: int | None = None
    rungs: tuple[float, ...] | None = None
    reduction_factor: int = 2
    collapse_std: float = 1e-4
    pbt: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> SearchSettings:
        """Parse and validate ``cfg["search"]`` over its defaults; unknown keys are errors."""
        from elo.config import merge_checked

        out = merge_checked(dict(SEARCH_DEFAULTS), cfg.get("search", {}) or {}, "search")
        _check_counts(out)
        check_heldout_split(str(out["heldout_split"]))
        check_heldout_bn(str(out["heldout_bn"]))
        timeout = out["trial_timeout_s"]
        return cls(
            strategy=out["strategy"],
            population=out["population"],
            generations=out["generations"],
            sigma=float(out["sigma"]),
            mapping=str(out["mapping"]),
            seed_points=bool(out["seed_points"]),
            ga=MappingProxyType(dict(out["ga"] or {})),
            steps=None if out["steps"] is None else int(out["steps"]),
            workers=out["workers"],
            cpus_per_trial=out["cpus_per_trial"],
            gpus_per_trial=float(out["gpus_per_trial"]),
            memory_per_trial_gb=float(out["memory_per_trial_gb"] or 0.0),
            heldout_split=out["heldout_split"],
            heldout_fraction=check_heldout_fraction(out["heldout_fraction"]),
            heldout_bn=str(out["heldout_bn"]),
            trial_timeout_s=None if timeout is None else float(timeout),
            max_retries=out["max_retries"],
            warm_start=out["warm_start"],
            warm_start_steps=out["warm_start_steps"],
            rungs=None if out["rungs"] is None else tuple(float(r) for r in out["rungs"]),
            reduction_factor=out["reduction_factor"],
            collapse_std=float(out["collapse_std"]),
            pbt=MappingProxyType(dict(out["pbt"] or {})),
        )

    @property
    def total(self) -> int:
        """Evaluations of the whole search: population × generations."""
        return self.population * self.generations


def fitness_section(name: str) -> dict[str, Any]:
    """The fitness config for ``--fitness NAME``: ``configs/fitness/NAME.yaml``; the
    built-in ``synthetic`` stand-in needs no file."""
    if name == "synthetic":
        # search/fitness/synthetic.py; rung_noise (search/fidelity.py): null = one rung
        return {"kind": "synthetic", "seconds": 0.0, "rung_noise": None}
    from elo.config import _load_yaml, resolve_config_path

    return _load_yaml(resolve_config_path(name, "fitness"))
