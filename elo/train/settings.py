"""The ``train`` section of a config, parsed and validated once into a frozen
:class:`TrainSettings` (configs/train/proxy.yaml and final.yaml declare every key with
its default; a section that lacks one is refused, never filled in)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from elo.errors import ConfigError

OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class TrainSettings:
    """What configs/train/*.yaml say each key does."""

    steps: int
    batch_size: int
    optimizer: str
    momentum: float
    lr: float
    weight_decay: float
    grad_clip: float
    min_lr_ratio: float
    warmup_steps: int
    checkpoint_every: int
    num_workers: int

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any]) -> TrainSettings:
        """Parse ``cfg["train"]``: every key present, none unknown, each number in range
        (elo/config_values.py), a known optimizer."""
        from elo.config import _unknown_key_message
        from elo.config_values import check_values

        section = cfg.get("train")
        if not isinstance(section, Mapping):
            raise ConfigError("missing config section 'train' (configs/train/ has its keys)")
        names = [f.name for f in dataclasses.fields(cls)]
        for key in section:
            if key not in names:
                raise ConfigError(
                    _unknown_key_message(f"train.{key}", str(key), dict.fromkeys(names))
                )
        for name in names:
            if name not in section:
                raise ConfigError(
                    f"missing config key 'train.{name}': a train section holds every key of "
                    "configs/train/ (where their defaults are)"
                )
        check_values(section, "train.")
        if section["optimizer"] not in OPTIMIZERS:
            raise ConfigError(
                f"config key 'train.optimizer' must be adamw or sgd, got {section['optimizer']!r}"
            )
        floats = {f.name for f in dataclasses.fields(cls) if f.type == "float"}
        values: dict[str, Any] = {n: section[n] for n in names}
        values.update({n: float(section[n]) for n in floats})
        return cls(**values)

    def replace(self, **changes: Any) -> TrainSettings:
        return dataclasses.replace(self, **changes)
