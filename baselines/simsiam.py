"""SimSiam: Exploring Simple Siamese Representation Learning (Chen & He,
arXiv 2011.10566; facebookresearch/simsiam).

One network, two views: encoder -> projector (3 x Linear-BN, ReLU between, last BN
without affine) gives ``z``; a bottleneck predictor (d -> d/4 -> d) gives ``p``.
``D(p, z) = -cos(p, sg(z))`` and ``L = ½ D(p1, z2) + ½ D(p2, z1)`` (range [-1, 1]).
The stop-gradient ``sg`` is what prevents collapse; without it the output collapses
to a constant (loss -> -1). The predictor's learning rate is kept fixed (not decayed).

>>> import torch
>>> p, z = torch.tensor([[1.0, 2, 3]]), torch.tensor([[4.0, 5, 6]])
>>> round(negative_cosine(p, z).item(), 6)
-0.974632
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from baselines.byol import embed
from baselines.monitor import CollapseMonitor
from elo.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.terms import TermKey

# -- pure functions ----------------------------------------------------------------


def negative_cosine(p: torch.Tensor, z: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    """``D(p, z) = -cos(p, sg(z))`` per sample; p, z: B,D -> B."""
    if stop_gradient:
        z = z.detach()
    return -(F.normalize(p, dim=-1) * F.normalize(z, dim=-1)).sum(dim=-1)


def simsiam_loss(
    p1: torch.Tensor,
    p2: torch.Tensor,
    z1: torch.Tensor,
    z2: torch.Tensor,
    stop_gradient: bool = True,
) -> torch.Tensor:
    """``½ D(p1, z2) + ½ D(p2, z1)``, mean over the batch; all B,D."""
    d = negative_cosine(p1, z2, stop_gradient) + negative_cosine(p2, z1, stop_gradient)
    return 0.5 * d.mean()


class Projector(nn.Sequential):
    """``layers`` x (Linear no-bias -> BN), ReLU between; the last BN has no affine.

    The official code uses ``hidden = out = 2048`` on ResNet-50 (hidden is the
    encoder's width there) and 2 layers on CIFAR.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int = 2048, layers: int = 3):
        if layers < 1:
            raise ValueError("Projector needs at least one layer")
        mods: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (layers - 1) + [out_dim]
        for i in range(layers):
            last = i == layers - 1
            mods.append(nn.Linear(dims[i], dims[i + 1], bias=False))  # B,d_i -> B,d_i+1
            mods.append(nn.BatchNorm1d(dims[i + 1], affine=not last))
            if not last:
                mods.append(nn.ReLU(inplace=True))
        super().__init__(*mods)


class Predictor(nn.Sequential):
    """Bottleneck: Linear(d -> d/4, no bias) -> BN -> ReLU -> Linear(d/4 -> d)."""

    def __init__(self, dim: int = 2048, hidden_dim: int = 512) -> None:
        super().__init__(
            nn.Linear(dim, hidden_dim, bias=False),  # B,d -> B,d/4
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, dim),  # B,d/4 -> B,d
        )


# -- standalone model ----------------------------------------------------------------


class SimSiam(nn.Module):
    """Encoder + projector + predictor; ``forward(x1, x2)`` returns the loss.

    ``param_groups(lr)`` gives the optimizer groups with the predictor's lr fixed
    (``fix_lr`` flag) as in the official ``--fix-pred-lr``.

    >>> enc = nn.Sequential(nn.Flatten(), nn.Linear(12, 8))
    >>> model = SimSiam(enc, embed_dim=8, proj_dim=16, pred_dim=4)
    >>> out = model(torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2))
    >>> -1 <= out["loss"].item() <= 1
    True
    """

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int,
        *,
        proj_dim: int = 2048,
        proj_hidden: int | None = None,
        proj_layers: int = 3,
        pred_dim: int | None = None,
        stop_gradient: bool = True,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.projector = Projector(embed_dim, proj_hidden or embed_dim, proj_dim, proj_layers)
        self.predictor = Predictor(proj_dim, pred_dim or proj_dim // 4)
        self.stop_gradient = stop_gradient

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1 = self.projector(embed(self.encoder, x1))  # B,proj
        z2 = self.projector(embed(self.encoder, x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)  # B,proj
        loss = simsiam_loss(p1, p2, z1, z2, self.stop_gradient)
        return {"loss": loss, "z": z1.detach()}

    def param_groups(self, fix_predictor_lr: bool = True) -> list[dict[str, Any]]:
        rest = [*self.encoder.parameters(), *self.projector.parameters()]
        pred = list(self.predictor.parameters())
        return [{"params": rest, "fix_lr": False}, {"params": pred, "fix_lr": fix_predictor_lr}]


# -- task head -------------------------------------------------------------------------


@dataclass
class SimSiamConfig:
    proj_dim: int = 2048
    proj_hidden: int | None = None  # None: the encoder's embedding size (official code)
    proj_layers: int = 3
    pred_dim: int | None = None  # None: proj_dim // 4
    stop_gradient: bool = True
    fix_predictor_lr: bool = True
    collapse_threshold: float = 0.1  # warn when std(z/|z|)·sqrt(d) falls below


@TASKS.register()
class SimSiamHead(TaskHead):
    """SimSiam as an ELo task on one modality (``rgb/simsiam``): two augmented views
    (``simsiam1``, ``simsiam2``, see :mod:`baselines.augment`) of each clip.

    :meth:`fixed_lr_parameters` lists the predictor's parameters when its learning
    rate should not follow the schedule (the trainer may honour it).
    """

    name = "simsiam"
    arity = "one"
    views = ("simsiam1", "simsiam2")
    Config = SimSiamConfig

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Any) -> None:
        super().__init__(term, specs, config)
        cfg: SimSiamConfig = config
        self.modality = term.modalities[0]
        dim = self.specs[self.modality].embed_dim
        self.projector = Projector(dim, cfg.proj_hidden or dim, cfg.proj_dim, cfg.proj_layers)
        self.predictor = Predictor(cfg.proj_dim, cfg.pred_dim or cfg.proj_dim // 4)
        self.monitor = CollapseMonitor(cfg.proj_dim, cfg.collapse_threshold, f"{term} z")

    @classmethod
    def supports(cls, modalities: tuple[str, ...]) -> bool:
        return modalities == ("rgb",)

    def fixed_lr_parameters(self) -> list[nn.Parameter]:
        return list(self.predictor.parameters()) if self.config.fix_predictor_lr else []

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        m = self.modality
        e1 = inputs.features[(m, "simsiam1")].embedding  # B,D
        e2 = inputs.features[(m, "simsiam2")].embedding
        mask = inputs.mask.get(m)
        if mask is not None and not bool(mask.all()):
            e1, e2 = e1[mask], e2[mask]
        if e1.shape[0] < 2:  # BN needs two samples; keep the graph, add nothing
            zero = (e1.sum() + e2.sum()) * 0.0
            return {"loss": zero}
        z1, z2 = self.projector(e1), self.projector(e2)  # B,proj
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = simsiam_loss(p1, p2, z1, z2, self.config.stop_gradient)
        std = self.monitor.update(z1)
        return {"loss": loss, "collapse_std": torch.tensor(std)}
