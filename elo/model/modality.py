"""The modality contract: how a modality is derived from a decoded clip, augmented,
and encoded.

A modality lives in one file of ``modalities/`` and registers an instance-less class::

    @MODALITIES.register()
    class RGB(Modality):
        name = "rgb"
        ...

Its encoder returns an :class:`~elo.model.heads.EncoderOutput`: a feature pyramid (the taps
distillation may use, level 1 = earliest) and a pooled embedding.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from elo.model.heads import EncoderOutput
from elo.registry import Registry

MODALITIES: Registry[type[Modality]] = Registry(
    "modality", packages=("modalities",), entry_point_group="elo.modalities"
)


@dataclass
class DecodedClip:
    """One decoded clip, before any modality is derived from it."""

    frames: np.ndarray  # T,H,W,3 uint8 RGB, already resized/cropped
    fps: float  # frame rate of ``frames`` (after resampling)
    audio: np.ndarray | None  # N float32 mono in [-1, 1] at ``sample_rate``; None = no track
    sample_rate: int
    start: float  # seconds from the start of the file
    source: Path


class Encoder(nn.Module):
    """Base class for modality encoders: ``forward(x) -> EncoderOutput``."""

    embed_dim: int
    pyramid_channels: tuple[int, ...]

    def forward(self, x: torch.Tensor) -> EncoderOutput:  # pragma: no cover
        raise NotImplementedError


class Modality:
    """Base class of a modality. Subclasses are stateless; params come from config."""

    name: ClassVar[str] = ""
    #: default extraction parameters; the cache key includes the resolved params.
    defaults: ClassVar[Mapping[str, Any]] = {}

    @classmethod
    def params(cls, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        from elo.config import merge_checked

        return merge_checked(dict(cls.defaults), dict(overrides or {}), f"modalities.{cls.name}")

    @classmethod
    def extract(cls, clip: DecodedClip, params: Mapping[str, Any]) -> np.ndarray | None:
        """The modality's array for one clip, or ``None`` when the clip lacks it."""
        raise NotImplementedError

    @classmethod
    def to_tensor(cls, arr: np.ndarray, params: Mapping[str, Any]) -> torch.Tensor:
        """A cached array (one clip, or a batch) as the model's float32 input; the values
        as they are by default (a modality that normalizes, e.g. RGB, overrides it)."""
        return torch.from_numpy(np.asarray(arr, dtype=np.float32))

    @classmethod
    def augment(cls, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training-time augmentation of a batch ``B,...``; identity by default."""
        return x

    @classmethod
    def build_encoder(cls, config: Mapping[str, Any]) -> Encoder:
        raise NotImplementedError
