"""RGB frames: the clip itself, stored as uint8 ``3,T,H,W`` and normalized on load.

The video layout is pytorchvideo's ``C,T,H,W`` (Fan et al., "PyTorchVideo", ACM MM 2021).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch

from elo.model.modality import MODALITIES, DecodedClip, EncoderBuild, Modality


@MODALITIES.register()
class RGB(Modality):
    """``rgb``: ``3,T,H,W`` frames, normalized with a fixed mean / std."""

    name: ClassVar[str] = "rgb"
    defaults: ClassVar[Mapping[str, Any]] = {
        "mean": [0.45, 0.45, 0.45],
        "std": [0.225, 0.225, 0.225],
        # subtract each clip's time-mean image (after normalizing): the encoder sees
        # what changes, not the static scene (docs/learning.md); off by default
        "center_time": False,
    }
    video_like: ClassVar[bool] = True
    load_only: ClassVar[tuple[str, ...]] = ("mean", "std", "center_time")
    transfer_target: ClassVar[bool] = False  # appearance: not predicted from motion / sound
    #: training-time jitter in normalized units (no flips: they would swap motion labels)
    brightness: ClassVar[float] = 0.2
    contrast: ClassVar[float] = 0.2

    @classmethod
    def extract(cls, clip: DecodedClip, params: Mapping[str, Any]) -> np.ndarray | None:
        return np.ascontiguousarray(clip.frames.transpose(3, 0, 1, 2))  # 3,T,H,W uint8

    @classmethod
    def output_shape(
        cls, frames: int, size: int, fps: float, sample_rate: int, params: Mapping[str, Any]
    ) -> tuple[int, ...]:
        return (3, frames, size, size)

    @classmethod
    def to_tensor(cls, arr: np.ndarray, params: Mapping[str, Any]) -> torch.Tensor:
        """uint8 ``3,T,H,W`` (or ``B,3,T,H,W``) -> normalized float32; with
        ``center_time`` minus the clip's time-mean image (the static scene; its measured
        effect is in docs/learning.md)."""
        x = torch.from_numpy(np.asarray(arr, dtype=np.float32)) / 255.0
        shape = (3, 1, 1, 1)
        mean = torch.tensor(params["mean"], dtype=torch.float32).view(shape)
        std = torch.tensor(params["std"], dtype=torch.float32).view(shape)
        x = (x - mean) / std
        if params.get("center_time"):  # time is dim -3 of (B,)3,T,H,W
            real = int(params.get("valid_frames") or x.shape[-3])  # a padded tail left out
            x = x - x[..., :real, :, :].mean(dim=-3, keepdim=True)
        return x

    @classmethod
    def augment(cls, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Per-clip brightness (additive) and contrast (multiplicative) jitter."""
        b = x.shape[0]
        shift = (torch.rand(b, generator=generator) * 2 - 1) * cls.brightness
        scale = 1 + (torch.rand(b, generator=generator) * 2 - 1) * cls.contrast
        view = (b,) + (1,) * (x.dim() - 1)
        return x * scale.view(view).to(x) + shift.view(view).to(x)  # B,3,T,H,W

    @classmethod
    def build_encoder(cls, config: Mapping[str, Any] | None) -> EncoderBuild:
        """A video ResNet over 3 channels (or torchvision's with ``arch``)."""
        from elo.model.encoders_tv import build_video

        return build_video(cls.name, 3, config)
