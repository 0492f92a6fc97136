"""Views: derived encoder inputs that tasks request by name (see ``elo.model.heads.VIEWS``).

The model builds the union of the views its active heads request, once per step, and
runs each encoder once per (modality, view). Every view call of one step gets a fresh
generator seeded identically, so *paired* views of different modalities (``sync`` /
``async`` for alignment) draw the same labels and offsets.

Time runs along dim 2 of video-like inputs (``B,C,T,H,W``) and along the last dim of
spectrograms (``B,1,F,Tm``). Windows are placed by *fraction of the clip*, so RGB
frames, flow frames and mel frames of one clip stay in correspondence.

>>> g = torch.Generator().manual_seed(0)
>>> x, info = order_view(torch.randn(6, 3, 8, 4, 4), modality="rgb", generator=g)
>>> sorted(info["order_label"].tolist())
[0, 0, 1, 1, 2, 2]
"""

from __future__ import annotations

import torch

from elo.model.heads import VIEWS

ORDER_CLASSES = ("in_order", "shuffled", "reversed")
ALIGN_WINDOW = 0.5  # fraction of the clip each alignment window covers
ALIGN_MIN_SHIFT = 0.25  # a shifted window starts at least this fraction away
PAST_FRACTION = 0.5
ORDER_WINDOW = 0.75  # temporal order: fraction of the clip kept, at a random offset  # future prediction: context = first half, target = the rest


def time_dim(x: torch.Tensor) -> int:
    """The time axis: 2 for ``B,C,T,H,W``, the last one for ``B,C,F,Tm``."""
    return 2 if x.dim() == 5 else x.dim() - 1


def _balanced_labels(batch: int, classes: int, g: torch.Generator) -> torch.Tensor:
    return torch.randperm(batch, generator=g) % classes  # B, each class ~B/classes times


@VIEWS.register("base")
def base_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The modality as extracted (after the modality's own augmentation)."""
    return x, {}


@VIEWS.register("order")
def order_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each clip in order (0), shuffled (1) or reversed (2), balanced over the batch
    (Misra et al. ECCV 2016 Shuffle&Learn; Wei et al. CVPR 2018 arrow of time).

    Each clip is first cut to a window of 3/4 of its length at a random offset (so a
    codec's keyframe is not always first). Video is then permuted frame by frame; flow,
    when reversed, is also negated (backward motion). Spectrograms are permuted in 4
    chunks (reversed = time-flipped). ``info["order_label"]``: int64 B.
    """
    frac = ORDER_WINDOW
    x = crop_time(x, torch.rand(x.shape[0], generator=generator) * (1 - frac), frac)
    b, td = x.shape[0], time_dim(x)
    length = x.shape[td]
    labels = _balanced_labels(b, len(ORDER_CLASSES), generator)
    units = 4 if x.dim() == 4 else length  # spectrogram: chunks; video: frames
    if units < 3 or length < units:
        raise ValueError(f"order view needs >= 3 time steps along dim {td}, got {length}")
    chunk = length // units
    ident = torch.arange(units)
    perms = []
    for lab in labels.tolist():
        if lab == 0:
            perms.append(ident)
        elif lab == 2:
            perms.append(ident.flip(0))
        else:
            while True:  # a permutation that is neither in order nor reversed
                p = torch.randperm(units, generator=generator)
                if not torch.equal(p, ident) and not torch.equal(p, ident.flip(0)):
                    break
            perms.append(p)
    unit_idx = torch.stack(perms)  # B,units
    # frame index for each output position: chunk-wise permutation, remainder kept in place
    idx = (unit_idx[:, :, None] * chunk + torch.arange(chunk)).reshape(b, -1)  # B,units*chunk
    rev = labels == 2
    if x.dim() == 4:  # spectrogram: a reversed clip is the time-flipped one
        idx[rev] = torch.arange(units * chunk - 1, -1, -1).expand(int(rev.sum()), -1)
    tail = torch.arange(units * chunk, length).expand(b, -1)
    idx = torch.cat([idx, tail], dim=1).to(x.device)  # B,L
    shape = [b] + [1] * (x.dim() - 1)
    shape[td] = length
    gather_idx = idx.view(shape).expand_as(x)
    out = torch.gather(x, td, gather_idx)
    if modality == "flow":  # reversed motion runs backwards
        sign = torch.where(rev, -1.0, 1.0).to(x.dtype).to(x.device)
        out = out * sign.view([b] + [1] * (x.dim() - 1))
    return out, {"order_label": labels.to(x.device)}


def _alignment_offsets(
    b: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Balanced ``aligned`` labels and an exchangeable pair of window starts per clip
    (both in [0, 1 - window], at least ``ALIGN_MIN_SHIFT`` apart), so the start of a
    window alone says nothing about the label (no codec arrow-of-time shortcut)."""
    aligned = _balanced_labels(b, 2, g).float()  # B, 1 = aligned
    span = 1.0 - ALIGN_WINDOW - ALIGN_MIN_SHIFT
    lo = torch.rand(b, generator=g) * span
    hi = lo + ALIGN_MIN_SHIFT + torch.rand(b, generator=g) * (span - lo)
    swap = torch.rand(b, generator=g) < 0.5
    o1 = torch.where(swap, hi, lo)
    o2 = torch.where(swap, lo, hi)
    return aligned, o1, o2


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


@VIEWS.register("sync")
def sync_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Alignment, first modality: a half-clip window at offset ``o1``
    (Korbar et al. NeurIPS 2018 AVTS; Owens & Efros ECCV 2018)."""
    aligned, o1, _ = _alignment_offsets(x.shape[0], generator)
    return crop_time(x, o1, ALIGN_WINDOW), {"aligned": aligned.to(x.device)}


@VIEWS.register("async")
def async_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Alignment, second modality: the same window as ``sync`` when aligned, a window
    shifted by at least a quarter clip otherwise. ``info["aligned"]``: float B."""
    aligned, o1, o2 = _alignment_offsets(x.shape[0], generator)
    starts = torch.where(aligned > 0.5, o1, o2)
    return crop_time(x, starts, ALIGN_WINDOW), {"aligned": aligned.to(x.device)}


@VIEWS.register("past")
def past_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Future prediction: the first half of the clip; ``info["future"]`` is the rest
    (Srivastava et al. ICML 2015; Vondrick et al. CVPR 2016)."""
    td = time_dim(x)
    length = x.shape[td]
    cut = max(1, int(length * PAST_FRACTION))
    if cut >= length:
        raise ValueError(f"past view needs >= 2 time steps along dim {td}, got {length}")
    return x.narrow(td, 0, cut), {"future": x.narrow(td, cut, length - cut)}


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


def centre_crop(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """:func:`crop_clips` at the centre, for one clip (``C,...``) or a batch."""
    if x.dim() == len(shape):
        return centre_crop(x[None], shape)[0]
    if tuple(x.shape[1:]) == tuple(shape):
        return x
    return crop_clips(x, shape, torch.full((x.shape[0],), 0.5))
