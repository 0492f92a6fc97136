"""Machinery shared by the task heads (not a task: the underscore keeps it out of the
registry's discovery): masked reductions, tap selection, a small decoder that maps
an encoder tap to a target tensor of another shape (video ``B,C,T,H,W`` or
spectrogram ``B,C,F,Tm``), and the set-up and L2 loss of the heads that decode
(reconstruction, future, transfer: :func:`tap_decoder`, :func:`decoded_mse`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from elo.errors import ConfigError
from elo.model.heads import EncoderOutput, FeatureSpec


def masked_mean(per_sample: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of a ``B`` vector over rows where ``mask`` is True; 0 (with a graph) when none."""
    if mask is None:
        return per_sample.mean()
    m = mask.to(per_sample.dtype)
    return (per_sample * m).sum() / m.sum().clamp_min(1.0)


def both_present(mask: Mapping[str, torch.Tensor], mods: tuple[str, ...]) -> torch.Tensor | None:
    """Rows where every modality of ``mods`` is present (None = no mask given)."""
    out: torch.Tensor | None = None
    for m in mods:
        if m in mask:
            out = mask[m].bool() if out is None else out & mask[m].bool()
    return out


def pick_level(spec: FeatureSpec, level: int, where: str) -> int:
    """A 1-based pyramid level (``-1`` = the last) checked against the encoder's depth."""
    depth = len(spec.pyramid_channels)
    lvl = depth if level == -1 else level
    if not 1 <= lvl <= depth:
        raise ConfigError(f"{where}: level must be in 1..{depth} or -1, got {level}")
    return lvl


def tap(out: EncoderOutput, level: int) -> torch.Tensor:
    return out.pyramid[level - 1]


def to_spectro(h: torch.Tensor) -> torch.Tensor:
    """A video tap ``B,C,T,H,W`` as a 1-row spectrogram-like map ``B,C,1,T`` (space pooled)."""
    return h.mean(dim=(3, 4)).unsqueeze(2)


class TapDecoder(nn.Module):
    """Decode a tap (``B,C,...``) into ``out_channels`` at a target size given at call time.

    ``src_dims``/``dst_dims`` are 3 (video) or 2 (spectrogram). Video -> spectrogram
    pools space and treats time as the spectrogram's time axis; spectrogram -> video
    pools frequency and broadcasts over space. The tap is resized to a working grid
    (the target's time axis at full length, the other axes at 1/``shrink``), decoded
    there by three convolutions, and the ``out_channels`` result is resized to the
    target: cheap enough that many decoding terms cost little next to the encoders.
    The last layer starts small, so the first prediction is near 0 (the mean of
    standardized inputs).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        src_dims: int,
        dst_dims: int,
        hidden: int,
        shrink: int = 4,
    ) -> None:
        super().__init__()
        conv = nn.Conv3d if dst_dims == 3 else nn.Conv2d
        self.src_dims, self.dst_dims, self.shrink = src_dims, dst_dims, shrink
        self.inp = conv(in_channels, hidden, 1)
        self.body = nn.Sequential(nn.ReLU(), conv(hidden, hidden, 3, padding=1), nn.ReLU())
        self.out = conv(hidden, out_channels, 3, padding=1)
        with torch.no_grad():  # start near 0 (the mean of standardized inputs)
            self.out.weight.mul_(0.1)
            if self.out.bias is not None:
                self.out.bias.zero_()

    def working_size(self, size: tuple[int, ...]) -> tuple[int, ...]:
        k = self.shrink
        if self.dst_dims == 3:  # T,H,W: keep T
            return (size[0], -(-size[1] // k), -(-size[2] // k))
        return (-(-size[0] // k), size[1])  # F,Tm: keep Tm

    def forward(self, h: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
        if self.src_dims == 3 and self.dst_dims == 2:
            h = to_spectro(h)  # B,C,1,T
        elif self.src_dims == 2 and self.dst_dims == 3:
            h = h.mean(dim=2)[:, :, :, None, None]  # B,C,Tm,1,1
        mode = "trilinear" if self.dst_dims == 3 else "bilinear"
        h = F.interpolate(self.inp(h), size=self.working_size(size), mode=mode, align_corners=False)
        y = self.out(self.body(h))  # B,out_channels,*working
        return F.interpolate(y, size=size, mode=mode, align_corners=False)  # B,out_channels,*size


def dims_of(spec: FeatureSpec) -> int:
    """Spatio-temporal dims of a modality's input: 3 for ``C,T,H,W``, 2 for ``C,F,Tm``."""
    return len(spec.input_shape) - 1


def per_sample_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred - target) ** 2).flatten(1).mean(dim=1)  # B


def check_positive(name: str, **values: Any) -> None:
    for key, v in values.items():
        if not v > 0:
            raise ConfigError(f"heads.{name}.{key} must be > 0, got {v!r}")


def tap_decoder(
    name: str, src: FeatureSpec, dst: FeatureSpec, level: int, hidden: int
) -> tuple[int, TapDecoder]:
    """The checked pyramid level of ``src`` and a :class:`TapDecoder` from that tap to
    ``dst``'s input channels; config errors name ``heads.<name>.level`` / ``.hidden``."""
    check_positive(name, hidden=hidden)
    lvl = pick_level(src, level, f"heads.{name}.level")
    decoder = TapDecoder(
        src.pyramid_channels[lvl - 1],
        dst.input_shape[0],
        src_dims=dims_of(src),
        dst_dims=dims_of(dst),
        hidden=hidden,
    )
    return lvl, decoder


def decoded_mse(
    decoder: TapDecoder,
    out: EncoderOutput,
    level: int,
    target: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """L2 between ``out``'s tap at ``level`` decoded to ``target``'s size and ``target``
    (``B,C,...``), averaged per clip, then over the clips where ``mask`` is True."""
    pred = decoder(tap(out, level), tuple(target.shape[2:]))  # B,C,*target
    return masked_mean(per_sample_mse(pred, target), mask)
