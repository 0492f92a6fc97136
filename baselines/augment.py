"""Two-view augmentation pipelines of BYOL and SimSiam (torchvision.transforms.v2),
scaled to small images, and the views ``byol1``, ``byol2``, ``simsiam1``, ``simsiam2``
that the heads request.

* BYOL (arXiv 2006.07733, Table 6): random resized crop (scale 0.08-1), flip,
  colour jitter p=0.8 (0.4, 0.4, 0.2, 0.1), grayscale p=0.2; view 1 blur p=1.0,
  solarize p=0; view 2 blur p=0.1, solarize p=0.2.
* SimSiam (arXiv 2011.10566, Sec. A, the MoCo v2 pipeline): crop (0.2-1), colour
  jitter p=0.8 (0.4, 0.4, 0.4, 0.1), grayscale p=0.2, blur p=0.5, flip; both views
  alike.

Blur kernels are 10 % of the image side (23 px at 224 in the papers), odd, >= 3.
A video clip (C,T,H,W) gets one set of random parameters for all its frames.
Randomness comes only from the ``generator`` passed in: each sample gets a seed
drawn from it, and the v2 transforms run under a forked, re-seeded global RNG.

>>> import torch
>>> pipe = build_pipeline(byol_specs(16)[0])
>>> x = torch.rand(4, 3, 16, 16)
>>> y = augment_batch(x, pipe, torch.Generator().manual_seed(0))
>>> y.shape, bool(torch.equal(y, augment_batch(x, pipe, torch.Generator().manual_seed(0))))
(torch.Size([4, 3, 16, 16]), True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from elo.errors import ConfigError
from elo.model.heads import VIEWS

#: The normalisation that the views undo and redo (ImageNet statistics).
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ViewSpec:
    """One view's augmentation parameters (probabilities and ranges)."""

    size: int
    crop_scale: tuple[float, float] = (0.08, 1.0)
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    gray_p: float = 0.2
    blur_p: float = 1.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.0

    def replace(self, **changes: Any) -> ViewSpec:
        return dataclasses.replace(self, **changes)


def byol_specs(size: int, **changes: Any) -> tuple[ViewSpec, ViewSpec]:
    """BYOL's asymmetric pair (view 1: blur always; view 2: rare blur, solarize)."""
    base = ViewSpec(size=size).replace(**changes)
    return base.replace(blur_p=1.0, solarize_p=0.0), base.replace(blur_p=0.1, solarize_p=0.2)


def simsiam_specs(size: int, **changes: Any) -> tuple[ViewSpec, ViewSpec]:
    """SimSiam's symmetric pair (MoCo v2 augmentations)."""
    spec = ViewSpec(size=size, crop_scale=(0.2, 1.0), saturation=0.4, blur_p=0.5)
    spec = spec.replace(**changes)
    return spec, spec


def blur_kernel(size: int) -> int:
    k = max(3, int(0.1 * size))
    return k if k % 2 else k + 1


def build_pipeline(spec: ViewSpec) -> Callable[[torch.Tensor], torch.Tensor]:
    """A v2 pipeline on float images in [0, 1] (…,3,H,W), output (…,3,size,size)."""
    from torchvision.transforms import v2

    steps: list[Any] = [
        v2.RandomResizedCrop(spec.size, scale=spec.crop_scale, antialias=True),
        v2.RandomHorizontalFlip(spec.flip_p),
    ]
    jitter = (spec.brightness, spec.contrast, spec.saturation, spec.hue)
    if spec.jitter_p > 0 and any(jitter):
        steps.append(v2.RandomApply([v2.ColorJitter(*jitter)], p=spec.jitter_p))
    if spec.gray_p > 0:
        steps.append(v2.RandomGrayscale(spec.gray_p))
    if spec.blur_p > 0:
        blur = v2.GaussianBlur(blur_kernel(spec.size), sigma=spec.blur_sigma)
        steps.append(v2.RandomApply([blur], p=spec.blur_p))
    if spec.solarize_p > 0:
        steps.append(v2.RandomSolarize(threshold=0.5, p=spec.solarize_p))
    pipeline: Callable[[torch.Tensor], torch.Tensor] = v2.Compose(steps)
    return pipeline


def augment_batch(
    x: torch.Tensor, pipeline: Callable[[torch.Tensor], torch.Tensor], generator: torch.Generator
) -> torch.Tensor:
    """Apply ``pipeline`` to each sample of ``x`` in [0, 1]: B,3,H,W or B,3,T,H,W
    (one parameter draw per clip). Deterministic given the generator's state."""
    n = x.shape[0]
    seeds = torch.randint(0, 2**62, (n,), generator=generator, device=generator.device).tolist()
    video = x.dim() == 5
    out = []
    with torch.random.fork_rng(devices=[]):
        for i, seed in enumerate(seeds):
            torch.manual_seed(seed)
            xi = x[i].transpose(0, 1) if video else x[i]  # T,3,H,W (one draw per clip) or 3,H,W
            yi = pipeline(xi)
            out.append(yi.transpose(0, 1) if video else yi)
    return torch.stack(out)  # B,3,(T,)size,size


# -- views for the heads (normalised RGB clips in, normalised RGB clips out) -----------


def _stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (1, 3) + (1,) * (x.dim() - 2)
    mean = torch.tensor(RGB_MEAN, dtype=x.dtype, device=x.device).view(shape)
    std = torch.tensor(RGB_STD, dtype=x.dtype, device=x.device).view(shape)
    return mean, std


def normalize(x01: torch.Tensor) -> torch.Tensor:
    mean, std = _stats(x01)
    return (x01 - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    mean, std = _stats(x)
    return (x * std + mean).clamp(0, 1)


_PIPELINES: dict[tuple[str, int], Callable[[torch.Tensor], torch.Tensor]] = {}


def _view(name: str, spec_of: Callable[[int], ViewSpec]) -> Callable[..., Any]:
    def fn(
        x: torch.Tensor, *, modality: str, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if x.dim() not in (4, 5) or x.shape[1] != 3:
            raise ConfigError(
                f"view {name!r} needs RGB input B,3,(T,)H,W, got {modality} {tuple(x.shape)}; "
                "use it only on the rgb modality"
            )
        size = min(x.shape[-2:])  # output is square, the short side
        key = (name, size)
        if key not in _PIPELINES:
            _PIPELINES[key] = build_pipeline(spec_of(size))
        device = x.device
        y = augment_batch(denormalize(x.detach()).cpu(), _PIPELINES[key], generator)
        return normalize(y).to(device), {}

    fn.__name__ = fn.__qualname__ = f"{name}_view"
    fn.__doc__ = f"The {name!r} augmentation of a normalised RGB batch (one draw per clip)."
    return fn


VIEWS.register("byol1")(_view("byol1", lambda s: byol_specs(s)[0]))
VIEWS.register("byol2")(_view("byol2", lambda s: byol_specs(s)[1]))
VIEWS.register("simsiam1")(_view("simsiam1", lambda s: simsiam_specs(s)[0]))
VIEWS.register("simsiam2")(_view("simsiam2", lambda s: simsiam_specs(s)[1]))
