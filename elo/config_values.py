"""Checks a loaded config before any work starts: every key the code reads is present
(:func:`check_complete`) and every numeric value is in its range (:func:`check_values`).
Each failure is one :class:`~elo.errors.ConfigError` line naming the file or the key,
the value and what is allowed.

Which keys are numeric comes from the YAML in ``configs/``: a key whose shipped
values are integers must be an integer >= 1, one with a float value a finite number
> 0, a list of them likewise per element. :data:`RULES` lists the keys whose range
differs (0 allowed, fractions, probabilities) and the numeric keys whose default is
``null``; a new key gets the strict rule of its type without an edit here.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elo.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """A numeric key's type and range: ``lo``/``hi`` bounds (open or closed), ``null``
    allowed or not, one value or a list of them."""

    integer: bool
    lo: float | None = None
    lo_open: bool = False
    hi: float | None = None
    hi_open: bool = False
    nullable: bool = False
    many: bool = False

    def allows(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.many:
            items = value if isinstance(value, list | tuple) else None
            return items is not None and all(self._one(v) for v in items)
        return self._one(value)

    def _one(self, v: Any) -> bool:
        if isinstance(v, bool) or not isinstance(v, int | float):
            return False
        if self.integer and not isinstance(v, int):
            return False
        if not math.isfinite(v):
            return False
        if self.lo is not None and (v <= self.lo if self.lo_open else v < self.lo):
            return False
        return self.hi is None or (v < self.hi if self.hi_open else v <= self.hi)

    def describe(self) -> str:
        kind = "integer" if self.integer else "number"
        if self.lo is not None and self.hi is not None:
            left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
            where = f" in {left}{self.lo:g}, {self.hi:g}{right}"
        elif self.lo is not None:
            where = f" {'>' if self.lo_open else '>='} {self.lo:g}"
        else:
            where = ""
        text = f"a list of {kind}s{where}" if self.many else f"{_article(kind)} {kind}{where}"
        return f"{text} or null" if self.nullable else text


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


#: the strict rules a key gets from the type of its shipped values
COUNT = Rule(True, 1)
POSITIVE = Rule(False, 0, lo_open=True)
#: shorthands for :data:`RULES`
ZERO_OK = Rule(True, 0)
NON_NEGATIVE = Rule(False, 0)
OPEN_FRACTION = Rule(False, 0, True, 1, True)
PROBABILITY = Rule(False, 0, False, 1, False)

#: Keys whose range is not the strict one of their type, and numeric keys whose
#: default is null (the YAML cannot tell their type). Each says why.
RULES: dict[str, Rule] = {
    # seeds: any non-negative integer, 0 included; null = the experiment's seed
    "seed": ZERO_OK,
    "data.clip.seed": ZERO_OK,
    "fitness.seed": Rule(True, 0, nullable=True),
    # data: 0 = nothing extra cached / the default stride; flow needs two frames
    "data.clip.frames": Rule(True, 2),
    "data.clip.extra_frames": ZERO_OK,
    "data.clip.extra_pixels": ZERO_OK,
    "data.clip.stride": ZERO_OK,
    "data.clip.per_video": ZERO_OK,  # sliding: 0 = every window (elo/data/video.py)
    "data.max_seconds": Rule(False, 0, lo_open=True, nullable=True),  # null: whole file
    "data.demo.classes": Rule(True, 2, hi=8),  # elo.data.demo_spec.ACTIONS has 8
    "data.demo.zipf": NON_NEGATIVE,  # 0: classes of equal size
    "data.demo.test_fraction": OPEN_FRACTION,
    "data.max_files": ZERO_OK,  # baselines: 0 = every file found
    # objective
    "objective.norm_momentum": Rule(False, 0, False, 1, True),
    # train: 0 turns the feature off (no warm-up, no decay, no clipping, no loader
    # processes, checkpoints and log lines only at the end)
    "train.momentum": Rule(False, 0, False, 1, True),
    "train.weight_decay": NON_NEGATIVE,
    "train.grad_clip": NON_NEGATIVE,
    "train.min_lr_ratio": PROBABILITY,
    "train.warmup_steps": ZERO_OK,
    "train.checkpoint_every": ZERO_OK,
    "train.num_workers": ZERO_OK,
    "train.log_every": ZERO_OK,
    # search: counts, fractions, and null = "derive it" (docs in configs/search/base.yaml)
    "search.population": Rule(True, 2),  # a strategy needs two candidates to rank
    "search.reduction_factor": Rule(True, 2),  # ASHA keeps 1/reduction_factor
    "search.steps": Rule(True, 1, nullable=True),
    "search.workers": Rule(True, 1, nullable=True),
    "search.warm_start_steps": Rule(True, 1, nullable=True),
    "search.trial_timeout_s": Rule(False, 0, lo_open=True, nullable=True),
    "search.gpus_per_trial": NON_NEGATIVE,  # 0: CPU trials
    "search.memory_per_trial_gb": NON_NEGATIVE,  # 0: no memory request to Ray
    "search.max_retries": ZERO_OK,
    "search.collapse_std": NON_NEGATIVE,  # 0: no collapse rejection
    "search.sparse_threshold": NON_NEGATIVE,  # 0: off (search/space.py bounds it above)
    "search.heldout_fraction": OPEN_FRACTION,
    "search.rungs": Rule(False, 0, True, 1, False, nullable=True, many=True),
    "search.ga.crossover": PROBABILITY,
    "search.ga.mutation_indpb": Rule(False, 0, True, 1, False, nullable=True),
    # search.pbt (search/pbt_settings.py): a member needs another to copy; Tune's
    # quantile_fraction is at most one half; 0: a copied λ is never redrawn
    "search.pbt.population": Rule(True, 2),
    "search.pbt.quantile": Rule(False, 0, True, 0.5, False),
    "search.pbt.resample_probability": PROBABILITY,
    # fitness: exponents and weights of 0 switch a part off; fractions of the spectrum
    "fitness.exponent": NON_NEGATIVE,
    "fitness.zipf_exponent": NON_NEGATIVE,
    "fitness.zipf_weight": NON_NEGATIVE,
    "fitness.agreement_weight": NON_NEGATIVE,
    "fitness.fit_range": Rule(False, 0, False, 1, False, many=True),
    "fitness.smoothing": OPEN_FRACTION,
    "fitness.folds": Rule(True, 2),  # cross-validation needs two folds
    "fitness.rung_noise": Rule(False, 0, nullable=True),  # null: one rung
    # baselines (configs/baseline): probabilities, jitter strengths, EMA
    "augment.crop_scale": Rule(False, 0, True, 1, False, many=True),
    "augment.flip_p": PROBABILITY,
    "augment.jitter_p": PROBABILITY,
    "augment.gray_p": PROBABILITY,
    "augment.blur_p": PROBABILITY,
    "augment.brightness": NON_NEGATIVE,  # 0: that jitter off
    "augment.contrast": NON_NEGATIVE,
    "augment.saturation": NON_NEGATIVE,
    "augment.hue": Rule(False, 0, False, 0.5, False),  # torchvision's ColorJitter range
    "byol.tau_base": PROBABILITY,
    "simsiam.proj_hidden": Rule(True, 1, nullable=True),  # null: the encoder's width
    "eval.holdout": OPEN_FRACTION,
}

#: sections whose every key the code reads: their files in configs/<group>/ declare
#: each with its default, so a config that lacks one is refused, never filled in
COMPLETE_GROUPS = ("data", "objective", "train", "search")
#: keys of those groups that a config may leave out, and why
OPTIONAL = {
    "data.modalities": "per-modality options, defaults in modalities/<name>.py",
    "data.demo": "elo-data demo's options, read from configs/data/demo.yaml only",
}


def _leaves(doc: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in doc.items():
        path = f"{prefix}{k}"
        if isinstance(v, Mapping):
            yield from _leaves(v, f"{path}.")
        else:
            yield path, v


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list | tuple):
        kinds = {_kind(v) for v in value}
        if not kinds <= {"int", "float"}:
            return "other"
        return "list:float" if "float" in kinds else "list:int"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "other"
    return "int" if isinstance(value, int) else "float"


def shipped_leaves(root: Path | None = None) -> Iterator[tuple[Path, str, Any]]:
    """Every (file, dotted key, value) of the YAML in ``configs/``: a component file's
    keys under its group (``train.lr``), an experiment's and a baseline's as written."""
    from elo.config_files import _load_yaml, configs_dir

    base = root or configs_dir()
    for f in sorted(base.rglob("*.yaml")):
        doc = _load_yaml(f)
        doc.pop("defaults", None)
        group = f.parent.name
        prefix = "" if group in ("experiment", "baseline") else f"{group}."
        for key, value in _leaves(doc, prefix):
            yield f, key, value


@functools.cache
def _shipped_kinds() -> dict[str, frozenset[str]]:
    kinds: dict[str, set[str]] = {}
    for _, key, value in shipped_leaves():
        kinds.setdefault(key, set()).add(_kind(value))
    return {k: frozenset(v) for k, v in kinds.items()}


def rule_for(key: str) -> Rule | None:
    """The rule of dotted ``key``: :data:`RULES`, else the strict rule of the type of its
    shipped values; ``None`` for a key that is not numeric (or not shipped)."""
    if key in RULES:
        return RULES[key]
    kinds = _shipped_kinds().get(key, frozenset()) - {"null"}
    if not kinds or "other" in kinds:
        return None
    if kinds <= {"int"}:
        return COUNT
    if kinds <= {"int", "float"}:
        return POSITIVE
    if kinds <= {"list:int"}:
        return Rule(True, 1, many=True)
    if kinds <= {"list:int", "list:float"}:
        return Rule(False, 0, lo_open=True, many=True)
    return None


def check_values(cfg: Mapping[str, Any], prefix: str = "") -> None:
    """Every numeric value of ``cfg`` (whose keys start at ``prefix``, e.g. ``"search."``
    for a bare search section) in its range, else one line naming the key."""
    for key, value in _leaves(cfg, prefix):
        rule = rule_for(key)
        if rule is not None and not rule.allows(value):
            raise ConfigError(f"config key {key!r} must be {rule.describe()}, got {value!r}")


def _example(group: str) -> Path:
    from elo.config_files import configs_dir

    return sorted((configs_dir() / group).glob("*.yaml"))[0]


def check_complete(cfg: Mapping[str, Any], sources: Mapping[str, Path | str] | Path | str) -> None:
    """Every key of each :data:`COMPLETE_GROUPS` section the config has present (unless
    :data:`OPTIONAL`), else one line naming the file the section came from
    (``sources``: per top-level key, or one file for all) and a shipped file that
    declares the key."""
    from elo.config_files import config_schema

    schema = config_schema()
    for group in COMPLETE_GROUPS:
        where = sources if isinstance(sources, Path | str) else sources.get(group, "the config")
        if group not in cfg:
            continue  # a section no file named: its readers refuse it when they need it
        if not isinstance(cfg[group], Mapping):
            raise ConfigError(f"{where}: config key {group!r} must be a mapping of its keys")
        for key, _ in _leaves(schema[group], f"{group}."):
            if any(key == o or key.startswith(f"{o}.") for o in OPTIONAL):
                continue
            node: Any = cfg
            for part in key.split("."):
                node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
            if node is _MISSING:
                raise ConfigError(
                    f"{where}: missing config key {key!r}; every {group} file declares every "
                    f"key with its default, e.g. {_example(group)}"
                )


_MISSING = object()


def first_missing(cfg: Mapping[str, Any], reference: Mapping[str, Any]) -> str | None:
    """The first dotted key of ``reference`` (a shipped file) that ``cfg`` lacks."""
    for key, _ in _leaves(reference):
        node: Any = cfg
        for part in key.split("."):
            node = node.get(part, _MISSING) if isinstance(node, Mapping) else _MISSING
        if node is _MISSING:
            return key
    return None


def check_fitness_complete(section: Mapping[str, Any], where: Path | str) -> None:
    """Every key of ``configs/fitness/<kind>.yaml`` (over its base) in a fitness
    ``section`` of that kind, else one line naming ``where``; a kind without a shipped
    file (a plug-in) is checked by its own class."""
    from elo.config_files import configs_dir, load_part

    if "kind" not in section:
        raise ConfigError(f"{where}: missing config key 'fitness.kind' (a configs/fitness/ name)")
    shipped = configs_dir() / "fitness" / f"{section['kind']}.yaml"
    if not shipped.is_file():
        return
    for key in load_part("fitness", shipped):
        if key not in section:
            raise ConfigError(
                f"{where}: missing config key 'fitness.{key}'; a {section.get('kind')} fitness "
                f"declares every key of {shipped} (where their defaults are)"
            )


def check_config(cfg: Mapping[str, Any], sources: Mapping[str, Path | str] | Path | str) -> None:
    """:func:`check_complete` (and :func:`check_fitness_complete`) then
    :func:`check_values`: what loading a config checks before any work starts."""
    check_complete(cfg, sources)
    fitness = cfg.get("fitness")
    if isinstance(fitness, Mapping):
        where = sources if isinstance(sources, Path | str) else sources.get("fitness", "config")
        check_fitness_complete(fitness, where)
    check_values(cfg)
