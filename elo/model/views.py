"""View machinery shared by the tasks' views (``elo.model.heads.VIEWS``): the time axis
of an input, per-sample time windows, balanced labels, and the clip crops the model and
the datasets use.

A view belongs to the task that needs it and lives in its file (``tasks/temporal_order.py``
``order``, ``tasks/alignment.py`` ``sync`` / ``async``, ``tasks/future.py`` ``past``).
The model builds the union of the views its active heads request, once per step, and
runs each encoder once per (modality, view). Every view call of one step gets a fresh
generator seeded identically, so *paired* views of different modalities (``sync`` /
``async`` for alignment) draw the same labels and offsets.

Time runs along dim 2 of video-like inputs (``B,C,T,H,W``) and along the last dim of
spectrograms (``B,1,F,Tm``). Windows are placed by *fraction of the clip*, so RGB
frames, flow frames and mel frames of one clip stay in correspondence.

>>> crop_time(torch.arange(8.0).view(1, 1, 8, 1, 1), torch.tensor([0.5]), 0.5).flatten()
tensor([4., 5., 6., 7.])
"""

from __future__ import annotations

import torch


def time_dim(x: torch.Tensor) -> int:
    """The time axis: 2 for ``B,C,T,H,W``, the last one for ``B,C,F,Tm``."""
    return 2 if x.dim() == 5 else x.dim() - 1


def balanced_labels(batch: int, classes: int, g: torch.Generator) -> torch.Tensor:
    """``batch`` labels in ``0..classes-1``, each class ~``batch/classes`` times."""
    return torch.randperm(batch, generator=g) % classes  # B


def crop_time(x: torch.Tensor, starts: torch.Tensor, fraction: float) -> torch.Tensor:
    """Per-sample windows covering ``fraction`` of the time axis from ``starts`` (B, in
    clip fractions)."""
    td = time_dim(x)
    length = x.shape[td]
    win = max(1, round(fraction * length))
    first = (starts * length).round().long().clamp(0, length - win)  # B
    idx = first[:, None] + torch.arange(win)  # B,win
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[td] = win
    out_shape = list(x.shape)
    out_shape[td] = win
    return torch.gather(x, td, idx.to(x.device).view(shape).expand(out_shape))


def crop_clips(
    x: torch.Tensor,
    shape: tuple[int, ...],
    time_frac: torch.Tensor,
    space_frac: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cut each clip of ``x`` (``B,C,T,H,W`` or ``B,C,F,Tm``) to ``shape`` (one sample's
    target shape, e.g. ``3,8,32,32``): a window starting at ``time_frac`` (B, in [0, 1]
    of the free range) along time and, for video, a square at ``space_frac`` (B,2:
    y, x fractions of the free range). Fractions, not indices, so RGB, flow and audio
    of one clip get corresponding windows. A dimension already at its target size is
    left alone; 0.5 everywhere is the centre crop.
    """
    td = time_dim(x)
    b = x.shape[0]
    length, want = x.shape[td], shape[td - 1]
    if want > length:
        raise ValueError(f"cannot crop {length} time steps to {want}")
    t0 = (time_frac * (length - want)).round().long().clamp(0, length - want)  # B
    out = []
    for i in range(b):
        clip = x[i].narrow(td - 1, int(t0[i]), want)
        if x.dim() == 5:
            s = shape[-1]
            h, w = x.shape[-2], x.shape[-1]
            frac = space_frac[i] if space_frac is not None else torch.tensor([0.5, 0.5])
            y0 = int(round(float(frac[0]) * (h - s)))
            x0 = int(round(float(frac[1]) * (w - s)))
            clip = clip[..., y0 : y0 + s, x0 : x0 + s]
        out.append(clip)
    return torch.stack(out)  # B,*shape


def valid_time_fraction(
    frac: torch.Tensor, valid: torch.Tensor | int, cached: int, frames: int
) -> torch.Tensor:
    """Time-window fractions ``frac`` (B, each of the free range of a ``cached``-frame
    clip cut to ``frames``) narrowed to the clips' ``valid`` real frames (B or one
    number), so a window never reaches into a padded tail unless the video is shorter
    than the window itself (then it starts at 0). Fractions, so every modality of a clip
    (flow: one frame fewer, audio: its own rate) gets the corresponding window."""
    if cached <= frames:
        return frac
    room = (torch.as_tensor(valid, dtype=torch.float32) - frames).clamp(min=0)
    return frac * torch.minimum(room / (cached - frames), torch.ones(()))


def centre_crop(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """:func:`crop_clips` at the centre, for one clip (``C,...``) or a batch."""
    if x.dim() == len(shape):
        return centre_crop(x[None], shape)[0]
    if tuple(x.shape[1:]) == tuple(shape):
        return x
    return crop_clips(x, shape, torch.full((x.shape[0],), 0.5))
