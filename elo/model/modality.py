"""The modality contract: how a modality is derived from a decoded clip, augmented,
and encoded.

A modality lives in one file of ``modalities/`` and registers an instance-less class::

    @MODALITIES.register()
    class RGB(Modality):
        name = "rgb"
        ...

A modality is one file: it declares how its array is derived from a decoded clip
(:meth:`Modality.extract`), the shape of one sample (:meth:`Modality.output_shape`, the
model's declared input), its encoder (:meth:`Modality.build_encoder`) and what tasks may
ask of it (:attr:`Modality.video_like`, ...). The model, the datasets and the term space
ask the registry; nothing lists modalities by name.

Its encoder returns an :class:`~elo.model.heads.EncoderOutput`: a feature pyramid (the taps
distillation may use, level 1 = earliest) and a pooled embedding.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from elo.model.heads import EncoderOutput
from elo.registry import Registry

MODALITIES: Registry[type[Modality]] = Registry(
    "modality", packages=("elo.modalities",), entry_point_group="elo.modalities"
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


@dataclass
class EncoderBuild:
    """A modality's encoder and how to rebuild it: ``builder`` is the id an export writes
    in ``encoder.yaml`` (a stable file-format name, elo/train/export.py), ``kwargs`` its
    keyword arguments."""

    encoder: Encoder
    builder: str
    kwargs: dict[str, Any]


class Modality:
    """Base class of a modality. Subclasses are stateless; params come from config."""

    name: ClassVar[str] = ""
    #: default extraction parameters; the cache key includes the resolved params.
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: one sample is video ``C,T,H,W`` (frames in time): video encoders and views fit it
    video_like: ClassVar[bool] = False
    #: cross-modal transfer may predict this modality from another's features (RGB: no,
    #: appearance cannot be read from motion or sound; tasks/transfer.py)
    transfer_target: ClassVar[bool] = True
    #: played backwards, the values change sign (motion: flow; tasks/temporal_order.py)
    reverses_sign: ClassVar[bool] = False
    #: parameters used only when a cached array is loaded (``to_tensor``), not when it is
    #: extracted: they are left out of the cache key, so changing one re-extracts nothing
    load_only: ClassVar[tuple[str, ...]] = ()

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
    def output_shape(
        cls, frames: int, size: int, fps: float, sample_rate: int, params: Mapping[str, Any]
    ) -> tuple[int, ...]:
        """One sample's shape for clips of ``frames`` x ``size`` px at ``fps`` (audio at
        ``sample_rate``): what the cache holds and the model's input."""
        raise NotImplementedError

    @classmethod
    def build_encoder(cls, config: Mapping[str, Any] | None) -> EncoderBuild:
        """The encoder for this modality from its ``model.<name>`` section (keys checked)."""
        raise NotImplementedError


def input_shapes(cfg: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """One sample's input shape per registered modality, from the data config
    (``data.clip``, ``data.audio.sample_rate``, ``data.modalities.<name>``): each
    modality's :meth:`Modality.output_shape` at the clip the model sees."""
    from elo.config import require

    t, size, fps = (
        int(require(cfg, "data.clip.frames", int)),
        int(require(cfg, "data.clip.size", int)),
        float(require(cfg, "data.clip.fps", float)),
    )
    sr = int(require(cfg, "data.audio.sample_rate", int))
    over = require(cfg, "data.modalities", dict)
    out: dict[str, tuple[int, ...]] = {}
    for name in MODALITIES.list():
        cls = MODALITIES.get(name)
        out[name] = tuple(cls.output_shape(t, size, fps, sr, cls.params(over.get(name))))
    return out


@functools.cache
def default_modalities() -> tuple[str, ...]:
    """The modalities of a config that names none: those of the packaged default
    objective (``configs/objective/default.yaml``)."""
    from elo.config import compose, configs_dir

    doc = compose(configs_dir() / "objective" / "default.yaml")
    return tuple(str(m) for m in doc["modalities"])


def configured_modalities(cfg: Mapping[str, Any]) -> list[str]:
    """``objective.modalities`` of ``cfg``."""
    from elo.config import require

    return [str(m) for m in require(cfg, "objective.modalities", list)]


def ordered(names: Sequence[str]) -> list[str]:
    """``names`` in the default modalities' order, any others after them, sorted."""
    rank = {m: i for i, m in enumerate(default_modalities())}
    return sorted(names, key=lambda m: (rank.get(m, len(rank)), m))
