"""Parameter-free reference encoders: hand-made pixel statistics, what any learned
encoder should beat and a known-answer encoder for tests (elo/evaluation/evaluate.py),
and the shortcut probes' features of the demo table (docs/demo.md).

>>> enc = build_pixel_stats_encoder(grid=2)
>>> enc(torch.zeros(2, 3, 8, 32, 32)).embedding.shape   # B,D with D = 6 * grid**2
torch.Size([2, 24])
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from elo.model.heads import EncoderOutput
from elo.model.modality import Encoder

#: its builder id in an exported ``encoder.yaml`` (elo/train/export.py)
PIXEL_STATS_BUILDER = "elo.evaluate:build_pixel_stats_encoder"
#: the builder id of :func:`build_probe_encoder` (the demo driver wrote it first)
PROBE_FEATURES_BUILDER = "elo.demo:build_probe_encoder"


class PixelStatsEncoder(Encoder):
    """Hand-made features of a clip ``B,C,T,H,W``, per cell of a ``grid × grid`` split:

    * mean of each channel (colour / appearance), ``C·g²``;
    * mean |frame difference| (motion energy), ``g²``;
    * the global Lucas–Kanade flow of the cell (Lucas & Kanade, IJCAI 1981): the
      least-squares ``(u, v)`` solving ``I_x u + I_y v + I_t = 0`` over the cell, ``2·g²``.

    It has no weights, so it is a reference that cannot drift: what any learned
    encoder should beat, and a known-answer encoder for tests.
    """

    def __init__(self, in_channels: int = 3, grid: int = 2) -> None:
        super().__init__()
        self.in_channels, self.grid = int(in_channels), int(grid)
        self.embed_dim = (self.in_channels + 3) * self.grid**2
        self.pyramid_channels = (self.embed_dim,)

    def forward(self, x: torch.Tensor) -> EncoderOutput:  # x: B,C,T,H,W
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected B,{self.in_channels},T,H,W, got {tuple(x.shape)}")
        g = self.grid
        colour = F.adaptive_avg_pool3d(x, (1, g, g)).flatten(1)  # B,C*g*g
        gray = x.mean(dim=1)  # B,T,H,W
        if gray.shape[1] < 2:
            motion = torch.zeros(x.shape[0], 3 * g * g, dtype=x.dtype, device=x.device)
        else:
            it = gray[:, 1:] - gray[:, :-1]  # B,T-1,H,W
            mid = 0.5 * (gray[:, 1:] + gray[:, :-1])
            ix = torch.gradient(mid, dim=3)[0]  # B,T-1,H,W
            iy = torch.gradient(mid, dim=2)[0]

            def cell(z: torch.Tensor) -> torch.Tensor:  # B,T-1,H,W -> B,g*g
                return F.adaptive_avg_pool2d(z.mean(dim=1), (g, g)).flatten(1)

            sxx, syy, sxy = cell(ix * ix), cell(iy * iy), cell(ix * iy)
            sxt, syt = cell(ix * it), cell(iy * it)
            det = sxx * syy - sxy * sxy + 1e-6
            u = -(syy * sxt - sxy * syt) / det  # B,g*g
            v = -(sxx * syt - sxy * sxt) / det
            motion = torch.cat([cell(it.abs()), u, v], dim=1)  # B,3*g*g
        emb = torch.cat([colour, motion], dim=1)  # B,D
        return EncoderOutput(pyramid=[emb[:, :, None, None, None]], embedding=emb)


def build_pixel_stats_encoder(*, in_channels: int = 3, grid: int = 2) -> PixelStatsEncoder:
    """Builder of :class:`PixelStatsEncoder` (builder id :data:`PIXEL_STATS_BUILDER`)."""
    return PixelStatsEncoder(in_channels=in_channels, grid=grid)


class ProbeFeatureEncoder(torch.nn.Module):
    """Parameter-free features of a clip ``B,3,T,H,W`` for the shortcut probes:

    * ``frame``: the middle frame's pixels, pooled to 8x8 (appearance at one instant);
    * ``timemean``: the time-mean image pooled to 8x8 (the static scene and the
      object's smear): with both near chance the action is not in appearance;
    * ``motion``: hand-made motion statistics, per cell of a 4x4 grid: mean |frame
      difference| and the Lucas-Kanade flow (u, v) (:class:`PixelStatsEncoder` without
      its colour means).
    """

    def __init__(self, kind: str = "frame") -> None:
        super().__init__()
        if kind not in ("frame", "timemean", "motion"):
            raise ValueError(f"unknown probe features {kind!r}")
        self.kind = kind
        self.embed_dim = 3 * 16 if kind == "motion" else 3 * 64
        self.pyramid_channels = (self.embed_dim,)

    def forward(self, x: torch.Tensor) -> EncoderOutput:
        if self.kind == "frame":
            emb = F.adaptive_avg_pool2d(x[:, :, x.shape[2] // 2], 8).flatten(1)
        elif self.kind == "timemean":
            emb = F.adaptive_avg_pool2d(x.mean(dim=2), 8).flatten(1)
        else:
            emb = PixelStatsEncoder(in_channels=x.shape[1], grid=4)(x).embedding[:, -48:]
        return EncoderOutput(pyramid=[emb[:, :, None, None, None]], embedding=emb)


def build_probe_encoder(*, kind: str = "frame") -> ProbeFeatureEncoder:
    """Builder of :class:`ProbeFeatureEncoder` (builder id :data:`PROBE_FEATURES_BUILDER`)."""
    return ProbeFeatureEncoder(kind)
