"""BYOL: Bootstrap Your Own Latent (Grill et al., arXiv 2006.07733; deepmind-research/byol).

An *online* network (encoder -> projector -> predictor) regresses the projection of
a *target* network (encoder -> projector, no predictor) on another view of the same
image. The target gets no gradient; after each step it moves towards the online
weights, ``ξ <- τ ξ + (1 - τ) θ``, with ``τ`` raised from ``τ_base`` to 1 on a
cosine schedule. The loss is symmetrised by swapping the views and the two terms are
**summed** (range [0, 8]).

Readable alone: the pure loss, the MLP, the schedule, the EMA, a standalone
:class:`BYOL` module, and :class:`BYOLHead` (term ``rgb/byol``) for ELo's objective.

The paper's design claims are switches (Sec. 5, Table 5; see docs/ablations.md):
``predictor`` on/off (off: the online projection regresses the target directly);
``tau_schedule`` ``cosine`` (from ``tau_base`` to 1) or ``constant`` (``τ = tau_base``
every step: 1 keeps the target at its random init, 0 makes it a copy of the online
network after each step). Batch size is the trainer's ``train.batch_size``.

>>> import torch
>>> p, z = torch.tensor([[1.0, 2, 3]]), torch.tensor([[4.0, 5, 6]])
>>> round(regression_loss(p, z).item(), 6)
0.050736
>>> round(cosine_tau(50, 100, 0.996), 6)
0.998
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import elo.baselines.augment  # noqa: F401  (registers the heads' views: byol1, byol2)
from elo.baselines.monitor import CollapseMonitor
from elo.errors import ConfigError
from elo.model.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.model.terms import TermKey

# -- pure functions ----------------------------------------------------------------


def regression_loss(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """Per-sample ``||p/|p| - sg(z)/|z|||² = 2 - 2 cos(p, sg(z))``; p, z: B,D -> B."""
    pn = F.normalize(p, dim=-1)
    zn = F.normalize(z.detach(), dim=-1)  # stop-gradient on the target side
    return 2 - 2 * (pn * zn).sum(dim=-1)


def byol_loss(
    p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor
) -> torch.Tensor:
    """Symmetric BYOL loss, the two view orders **summed**, mean over the batch.

    ``p1, p2``: online predictions of views 1, 2 (B,D); ``z1, z2``: target
    projections of views 1, 2 (B,D). Each pair is in [0, 4]; the sum in [0, 8].
    """
    return (regression_loss(p1, z2) + regression_loss(p2, z1)).mean()


def cosine_tau(step: int, total_steps: int, tau_base: float = 0.996) -> float:
    """``τ = 1 - (1 - τ_base)(cos(π k / K) + 1) / 2``; k clipped to [0, K]."""
    if total_steps <= 0:
        return 1.0
    k = min(max(step, 0), total_steps)
    return 1 - (1 - tau_base) * (math.cos(math.pi * k / total_steps) + 1) / 2


TAU_SCHEDULES = ("cosine", "constant")


def tau_at(step: int, total_steps: int, tau_base: float, schedule: str = "cosine") -> float:
    """``τ`` of EMA update ``step``: :func:`cosine_tau`, or ``tau_base`` when constant.

    >>> tau_at(50, 100, 0.0, "constant"), tau_at(50, 100, 0.0)
    (0.0, 0.5)
    """
    return tau_base if schedule == "constant" else cosine_tau(step, total_steps, tau_base)


def check_options(
    where: str, *, tau_base: float, tau_schedule: str, error: type = ConfigError
) -> None:
    """Raise ``error`` naming ``<where>.<key>`` for a value outside its range."""
    if tau_schedule not in TAU_SCHEDULES:
        raise error(
            f"{where}.tau_schedule={tau_schedule!r}: choose one of {', '.join(TAU_SCHEDULES)}"
        )
    if not 0.0 <= float(tau_base) <= 1.0:
        raise error(f"{where}.tau_base={tau_base!r}: τ must lie in [0, 1]")


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """``ξ <- τ ξ + (1 - τ) θ`` over the parameters (as the official code; buffers
    such as BN running statistics are the target's own, from its forward passes)."""
    t_params: list[torch.Tensor] = list(target.parameters())
    o_params = [p.detach() for p in online.parameters()]
    if len(t_params) != len(o_params):
        raise ValueError("ema_update: target and online networks differ in structure")
    torch._foreach_lerp_(t_params, o_params, 1.0 - tau)


class MLP(nn.Sequential):
    """BYOL projector / predictor: Linear -> BN -> ReLU -> Linear (output not
    batch-normalised); paper sizes hidden 4096, output 256."""

    def __init__(self, in_dim: int, hidden_dim: int = 4096, out_dim: int = 256) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim),  # B,in -> B,hidden
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),  # B,hidden -> B,out
        )


def embed(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The pooled embedding of an encoder returning a tensor or an ``EncoderOutput``."""
    out = encoder(x)
    emb: torch.Tensor = out.embedding if hasattr(out, "embedding") else out  # B,D
    return emb


def freeze(module: nn.Module) -> nn.Module:
    """Turn off ``requires_grad`` of every parameter; returns the module."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


# -- standalone model ----------------------------------------------------------------


class BYOL(nn.Module):
    """Online + target networks. ``forward(x1, x2)`` returns the loss and logging
    scalars; call :meth:`update_target` after each optimizer step.

    >>> enc = nn.Sequential(nn.Flatten(), nn.Linear(12, 8))
    >>> model = BYOL(enc, embed_dim=8, hidden_dim=16, proj_dim=4)
    >>> out = model(torch.randn(5, 3, 2, 2), torch.randn(5, 3, 2, 2))
    >>> sorted(out)
    ['cos', 'loss', 'z']
    """

    def __init__(
        self,
        encoder: nn.Module,
        embed_dim: int,
        *,
        hidden_dim: int = 4096,
        proj_dim: int = 256,
        tau_base: float = 0.996,
        tau_schedule: str = "cosine",
        predictor: bool = True,
    ) -> None:
        super().__init__()
        check_options("byol", tau_base=tau_base, tau_schedule=tau_schedule)
        self.tau_base, self.tau_schedule = float(tau_base), tau_schedule
        self.online_encoder = encoder
        self.online_projector = MLP(embed_dim, hidden_dim, proj_dim)
        self.predictor: nn.Module = (
            MLP(proj_dim, hidden_dim, proj_dim) if predictor else nn.Identity()
        )
        self.target_encoder = freeze(copy.deepcopy(encoder))
        self.target_projector = freeze(copy.deepcopy(self.online_projector))
        self.step: torch.Tensor
        self.register_buffer("step", torch.zeros((), dtype=torch.long))  # EMA updates done

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1 = self.online_projector(embed(self.online_encoder, x1))  # B,proj
        z2 = self.online_projector(embed(self.online_encoder, x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)  # B,proj
        with torch.no_grad():
            t1 = self.target_projector(embed(self.target_encoder, x1))  # B,proj
            t2 = self.target_projector(embed(self.target_encoder, x2))
        loss = byol_loss(p1, p2, t1, t2)
        cos = 1 - loss.detach() / 4  # mean cosine of the two pairs
        return {"loss": loss, "cos": cos, "z": z1.detach()}

    @torch.no_grad()
    def update_target(self, total_steps: int) -> float:
        """One EMA step with ``τ(k)``, k = updates done so far; returns ``τ``."""
        tau = tau_at(int(self.step), total_steps, self.tau_base, self.tau_schedule)
        ema_update(self.target_encoder, self.online_encoder, tau)
        ema_update(self.target_projector, self.online_projector, tau)
        self.step.add_(1)
        return tau


# -- task head -------------------------------------------------------------------------


@dataclass
class BYOLConfig:
    hidden_dim: int = 4096
    proj_dim: int = 256
    tau_base: float = 0.996
    tau_schedule: str = "cosine"  # cosine (tau_base -> 1) | constant (τ = tau_base)
    predictor: bool = True  # False: the online projection regresses the target
    collapse_threshold: float = 0.1  # warn when std(z/|z|)·sqrt(d) falls below

    def __post_init__(self) -> None:
        check_options(
            "heads.byol", tau_base=self.tau_base, tau_schedule=self.tau_schedule, error=ValueError
        )


@TASKS.register()
class BYOLHead(TaskHead):
    """BYOL as an ELo task on one modality (``rgb/byol``): two augmented views
    (``byol1``, ``byol2``, see :mod:`baselines.augment`) of each clip. Takes the
    switches of :class:`BYOL` from ``heads.byol``.

    The online encoder is the model's; the target copy is made in
    :meth:`bind_encoders` (call it before loading a checkpoint: the target is part of
    the head's ``state_dict``) and moved by EMA in :meth:`after_step`.
    """

    name = "byol"
    arity = "one"
    views = ("byol1", "byol2")
    Config = BYOLConfig

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Any) -> None:
        super().__init__(term, specs, config)
        cfg: BYOLConfig = config
        self.modality = term.modalities[0]
        dim = self.specs[self.modality].embed_dim
        self.projector = MLP(dim, cfg.hidden_dim, cfg.proj_dim)
        self.predictor: nn.Module = (
            MLP(cfg.proj_dim, cfg.hidden_dim, cfg.proj_dim) if cfg.predictor else nn.Identity()
        )
        self.target_projector = freeze(copy.deepcopy(self.projector))
        self.target_encoder: nn.Module | None = None
        self.step: torch.Tensor
        self.register_buffer("step", torch.zeros((), dtype=torch.long))
        self._online: dict[str, nn.Module] = {}  # plain dict: not a submodule, not saved
        self.monitor = CollapseMonitor(cfg.proj_dim, cfg.collapse_threshold, f"{term} z")

    @classmethod
    def supports(cls, modalities: tuple[str, ...]) -> bool:
        return modalities == ("rgb",)  # the colour/crop views are defined for RGB

    def bind_encoders(self, encoders: Mapping[str, nn.Module]) -> None:
        online = encoders[self.modality]
        self._online = {"encoder": online}
        self.target_encoder = freeze(copy.deepcopy(online))

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        if self.target_encoder is None:
            raise RuntimeError("BYOLHead: the model must call bind_encoders() before training")
        m = self.modality
        e1 = inputs.features[(m, "byol1")].embedding  # B,D
        e2 = inputs.features[(m, "byol2")].embedding
        x1, x2 = inputs.views[(m, "byol1")], inputs.views[(m, "byol2")]  # B,C,T,H,W
        mask = inputs.mask.get(m)
        if mask is not None and not bool(mask.all()):
            e1, e2, x1, x2 = e1[mask], e2[mask], x1[mask], x2[mask]
        if e1.shape[0] < 2:  # BN needs two samples; keep the graph, add nothing
            zero = (e1.sum() + e2.sum()) * 0.0
            return {"loss": zero, "cos": zero.detach()}
        z1, z2 = self.projector(e1), self.projector(e2)  # B,proj
        p1, p2 = self.predictor(z1), self.predictor(z2)
        with torch.no_grad():
            t1 = self.target_projector(embed(self.target_encoder, x1))  # B,proj
            t2 = self.target_projector(embed(self.target_encoder, x2))
        loss = byol_loss(p1, p2, t1, t2)
        std = self.monitor.update(z1, int(self.step))
        return {
            "loss": loss,
            "cos": 1 - loss.detach() / 4,
            "collapse_std": torch.tensor(std),
        }

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """EMA of the online encoder and projector with ``τ(step)`` (step 0-based)."""
        if self.target_encoder is None:
            return
        cfg: BYOLConfig = self.config
        tau = tau_at(step, total_steps, cfg.tau_base, cfg.tau_schedule)
        ema_update(self.target_encoder, self._online["encoder"], tau)
        ema_update(self.target_projector, self.projector, tau)
        self.step.fill_(step + 1)
