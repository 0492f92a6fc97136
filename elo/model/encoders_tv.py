"""torchvision's R(2+1)D-18 (Tran et al., "A Closer Look at Spatiotemporal Convolutions
for Action Recognition", CVPR 2018) as an ELo video encoder: the backbone of XDC
(Alwassel et al., NeurIPS 2020) and AVID (Morgado et al., CVPR 2021), so results can be
compared with theirs. Select it per modality with ``model.<m>.arch: r2plus1d_18``
(``configs/model/r2plus1d_18.yaml``); it fits the video modalities (``video_like``:
``rgb``, 3 channels, and ``flow``, 2: the stem's first convolution takes the modality's
channels), not the 2D log-mel ``audio``. :func:`build_video` and :func:`build_audio`
are the modalities' encoder builders: the project's own encoders, or this one.

Module names match torchvision's ``VideoResNet`` (``stem``, ``layer1`` .. ``layer4``),
so a torchvision state dict (without ``fc``) loads as is. The pyramid is the output of
the four residual stages (64, 128, 256, 512 channels); the embedding is their global
average (512), linearly projected when ``embed_dim`` differs.

>>> enc = build_r2plus1d_18(in_channels=2, embed_dim=128)
>>> out = enc(torch.zeros(1, 2, 4, 32, 32))
>>> out.embedding.shape, [p.shape[1] for p in out.pyramid]
(torch.Size([1, 128]), [64, 128, 256, 512])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from elo.errors import ConfigError
from elo.model.encoders import (
    AUDIO_BUILDER,
    VIDEO_BUILDER,
    build_audio_encoder,
    build_checked,
    build_encoder,
    build_video_encoder,
)
from elo.model.heads import EncoderOutput
from elo.model.modality import MODALITIES, Encoder, EncoderBuild, ordered

ARCH = "r2plus1d_18"
BUILDER = "elo.encoders_tv:build_r2plus1d_18"
__all__ = [
    "R2Plus1D18Encoder",
    "build_r2plus1d_18",
    "build_video",
    "build_audio",
    "build_encoder",
    "export_builder",
]


class R2Plus1D18Encoder(Encoder):
    """torchvision's ``r2plus1d_18`` without its classifier (module docstring)."""

    def __init__(self, in_channels: int = 3, embed_dim: int = 512) -> None:
        from torchvision.models.video import r2plus1d_18

        super().__init__()
        net = r2plus1d_18(weights=None)
        if in_channels != 3:  # the (1,7,7) spatial stem convolution, for other inputs
            net.stem[0] = nn.Conv3d(
                in_channels,
                45,
                kernel_size=(1, 7, 7),
                stride=(1, 2, 2),
                padding=(0, 3, 3),
                bias=False,
            )
            nn.init.kaiming_normal_(net.stem[0].weight, mode="fan_out", nonlinearity="relu")
        self.stem = net.stem
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.proj: nn.Module = nn.Identity() if embed_dim == 512 else nn.Linear(512, embed_dim)
        self.in_channels, self.embed_dim = int(in_channels), int(embed_dim)
        self.pyramid_channels = (64, 128, 256, 512)

    def forward(self, x: torch.Tensor) -> EncoderOutput:  # x: B,C,T,H,W
        h = self.stem(x)
        pyramid = []
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            h = stage(h)
            pyramid.append(h)  # B,C_l,T_l,H_l,W_l
        emb = self.proj(h.mean(dim=(2, 3, 4)))  # B,D
        return EncoderOutput(pyramid=pyramid, embedding=emb)


def build_r2plus1d_18(
    config: Mapping[str, Any] | None = None,
    /,
    *,
    arch: str = ARCH,
    in_channels: int = 3,
    embed_dim: int = 512,
) -> R2Plus1D18Encoder:
    """Builder of :class:`R2Plus1D18Encoder`; ``config`` (a ``model.<m>`` section)
    overrides the keywords (exportable: :data:`BUILDER`)."""
    kw: dict[str, Any] = {"arch": arch, "in_channels": in_channels, "embed_dim": embed_dim}
    for key, value in (config or {}).items():
        if key not in kw:
            raise ConfigError(f"unknown key {key!r} for the {ARCH} encoder; known: {', '.join(kw)}")
        kw[key] = value
    if kw.pop("arch") != ARCH:
        raise ConfigError(f"build_r2plus1d_18 builds arch {ARCH!r} only")
    return R2Plus1D18Encoder(in_channels=int(kw["in_channels"]), embed_dim=int(kw["embed_dim"]))


def build_video(modality: str, in_channels: int, section: Mapping[str, Any] | None) -> EncoderBuild:
    """A video modality's encoder: torchvision's R(2+1)D-18 when ``model.<modality>.arch``
    is ``r2plus1d_18``, else the project's video ResNet
    (:func:`elo.model.encoders.build_video_encoder`); ``in_channels`` is the modality's."""
    if (section or {}).get("arch") != ARCH:
        return build_checked(
            modality, VIDEO_BUILDER, build_video_encoder, {"in_channels": in_channels}, section
        )
    kwargs = {"in_channels": in_channels, **dict(section or {})}
    allowed = {"arch", "in_channels", "embed_dim"}
    for key in kwargs:
        if key not in allowed:
            raise ConfigError(
                f"unknown config key 'model.{modality}.{key}' for arch {ARCH}; "
                f"known: {', '.join(sorted(allowed))}"
            )
    return EncoderBuild(build_r2plus1d_18(kwargs), BUILDER, kwargs)


def build_audio(modality: str, in_channels: int, section: Mapping[str, Any] | None) -> EncoderBuild:
    """A spectrogram modality's encoder: the project's 2D ResNet
    (:func:`elo.model.encoders.build_audio_encoder`); ``arch: r2plus1d_18`` is refused."""
    if (section or {}).get("arch") == ARCH:
        video = ordered([m for m in MODALITIES.list() if MODALITIES.get(m).video_like])
        raise ConfigError(
            f"model.{modality}.arch {ARCH}: a video backbone fits {' and '.join(video)}, "
            f"not {modality}"
        )
    return build_checked(
        modality, AUDIO_BUILDER, build_audio_encoder, {"in_channels": in_channels}, section
    )


def export_builder(kwargs: Mapping[str, Any]) -> str:
    """The ``encoder.yaml`` builder of a video encoder built from ``kwargs``."""
    return BUILDER if kwargs.get("arch") == ARCH else VIDEO_BUILDER
