"""SimSiam: Exploring Simple Siamese Representation Learning (Chen & He,
arXiv 2011.10566; facebookresearch/simsiam).

One network, two views: encoder -> projector (3 x Linear-BN, ReLU between, last BN
without affine) gives ``z``; a bottleneck predictor (d -> d/4 -> d) gives ``p``.
``D(p, z) = -cos(p, sg(z))`` and ``L = ½ D(p1, z2) + ½ D(p2, z1)`` (range [-1, 1]).
The stop-gradient ``sg`` is what prevents collapse; without it the output collapses
to a constant (loss -> -1). The predictor's learning rate is kept fixed (not decayed).

The paper's ablations are switches (Sec. 4, Tables 1-5; see docs/ablations.md):
``stop_gradient``; ``predictor`` ``learned`` / ``fixed`` (frozen at its random
init) / ``none`` (``p = z``) and ``fix_predictor_lr``; ``batch_norm`` in the MLP
heads ``none`` / ``hidden`` / ``hidden_output`` (default) / ``all``; ``similarity``
``cosine`` or ``cross_entropy`` (``-softmax(sg(z)) · log softmax(p)``); ``symmetric``
(``½ D(p1, z2) + ½ D(p2, z1)``) or one-sided (``D(p1, z2)``). Batch size is the
trainer's ``train.batch_size``.

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

import elo.baselines.augment  # noqa: F401  (registers the heads' views: simsiam1, simsiam2)
from elo.baselines.byol import embed, freeze
from elo.baselines.monitor import CollapseMonitor
from elo.errors import ConfigError
from elo.model.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.model.terms import TermKey

PREDICTORS = ("learned", "fixed", "none")
SIMILARITIES = ("cosine", "cross_entropy")
#: Table 3 of the paper: BN after (projector hidden, projector output, predictor
#: hidden, predictor output) layers.
BATCH_NORMS: dict[str, tuple[bool, bool, bool, bool]] = {
    "none": (False, False, False, False),
    "hidden": (True, False, True, False),
    "hidden_output": (True, True, True, False),  # the paper's default
    "all": (True, True, True, True),
}

# -- pure functions ----------------------------------------------------------------


def negative_cosine(p: torch.Tensor, z: torch.Tensor, stop_gradient: bool = True) -> torch.Tensor:
    """``D(p, z) = -cos(p, sg(z))`` per sample; p, z: B,D -> B."""
    if stop_gradient:
        z = z.detach()
    return -(F.normalize(p, dim=-1) * F.normalize(z, dim=-1)).sum(dim=-1)


def softmax_cross_entropy(
    p: torch.Tensor, z: torch.Tensor, stop_gradient: bool = True
) -> torch.Tensor:
    """The paper's cross-entropy similarity (Table 4):
    ``D(p, z) = -softmax(sg(z)) · log softmax(p)`` over channels; p, z: B,D -> B.

    >>> d = softmax_cross_entropy(torch.zeros(1, 4), torch.zeros(1, 4))
    >>> round(d.item(), 6)  # log 4: uniform against uniform
    1.386294
    """
    if stop_gradient:
        z = z.detach()
    return -(F.softmax(z, dim=-1) * F.log_softmax(p, dim=-1)).sum(dim=-1)


def simsiam_loss(
    p1: torch.Tensor,
    p2: torch.Tensor,
    z1: torch.Tensor,
    z2: torch.Tensor,
    stop_gradient: bool = True,
    *,
    similarity: str = "cosine",
    symmetric: bool = True,
) -> torch.Tensor:
    """``½ D(p1, z2) + ½ D(p2, z1)`` (or ``D(p1, z2)`` when not ``symmetric``),
    mean over the batch; all B,D."""
    d_fn = negative_cosine if similarity == "cosine" else softmax_cross_entropy
    if not symmetric:
        return d_fn(p1, z2, stop_gradient).mean()
    d = d_fn(p1, z2, stop_gradient) + d_fn(p2, z1, stop_gradient)
    return 0.5 * d.mean()


def check_options(
    where: str, *, predictor: str, batch_norm: str, similarity: str, error: type = ConfigError
) -> None:
    """Raise ``error`` naming ``<where>.<key>`` for a value outside its choices."""
    for key, value, choices in (
        ("predictor", predictor, PREDICTORS),
        ("batch_norm", batch_norm, tuple(BATCH_NORMS)),
        ("similarity", similarity, SIMILARITIES),
    ):
        if value not in choices:
            raise error(f"{where}.{key}={value!r}: choose one of {', '.join(choices)}")


class Projector(nn.Sequential):
    """``layers`` x (Linear -> BN), ReLU between; the last BN has no affine.

    The official code uses ``hidden = out = 2048`` on ResNet-50 (hidden is the
    encoder's width there) and 2 layers on CIFAR. ``hidden_bn`` / ``out_bn`` drop the
    BN layers (Table 3); a Linear not followed by BN gets a bias.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dim: int,
        out_dim: int = 2048,
        layers: int = 3,
        *,
        hidden_bn: bool = True,
        out_bn: bool = True,
    ):
        if layers < 1:
            raise ValueError("Projector needs at least one layer")
        mods: list[nn.Module] = []
        dims = [in_dim] + [hidden_dim] * (layers - 1) + [out_dim]
        for i in range(layers):
            last = i == layers - 1
            bn = out_bn if last else hidden_bn
            mods.append(nn.Linear(dims[i], dims[i + 1], bias=not bn))  # B,d_i -> B,d_i+1
            if bn:
                mods.append(nn.BatchNorm1d(dims[i + 1], affine=not last))
            if not last:
                mods.append(nn.ReLU(inplace=True))
        super().__init__(*mods)


class Predictor(nn.Sequential):
    """Bottleneck: Linear(d -> d/4, no bias) -> BN -> ReLU -> Linear(d/4 -> d);
    ``hidden_bn=False`` drops the BN, ``out_bn=True`` adds one on the output (the
    "all" variant of Table 3)."""

    def __init__(
        self,
        dim: int = 2048,
        hidden_dim: int = 512,
        *,
        hidden_bn: bool = True,
        out_bn: bool = False,
    ) -> None:
        mods: list[nn.Module] = [nn.Linear(dim, hidden_dim, bias=not hidden_bn)]  # B,d -> B,d/4
        if hidden_bn:
            mods.append(nn.BatchNorm1d(hidden_dim))
        mods += [nn.ReLU(inplace=True), nn.Linear(hidden_dim, dim, bias=not out_bn)]  # B,d/4 -> B,d
        if out_bn:
            mods.append(nn.BatchNorm1d(dim))
        super().__init__(*mods)


def build_mlps(
    embed_dim: int,
    *,
    proj_dim: int,
    proj_hidden: int | None,
    proj_layers: int,
    pred_dim: int | None,
    predictor: str,
    batch_norm: str,
) -> tuple[nn.Module, nn.Module]:
    """Projector and predictor for the switches; ``predictor="none"`` is the
    identity, ``"fixed"`` a frozen random predictor."""
    ph, po, qh, qo = BATCH_NORMS[batch_norm]
    projector = Projector(
        embed_dim, proj_hidden or embed_dim, proj_dim, proj_layers, hidden_bn=ph, out_bn=po
    )
    if predictor == "none":
        return projector, nn.Identity()
    pred = Predictor(proj_dim, pred_dim or proj_dim // 4, hidden_bn=qh, out_bn=qo)
    return projector, freeze(pred) if predictor == "fixed" else pred


# -- standalone model ----------------------------------------------------------------


class SimSiam(nn.Module):
    """Encoder + projector + predictor; ``forward(x1, x2)`` returns the loss.

    ``param_groups(fix_predictor_lr)`` gives the optimizer groups (trainable
    parameters only) with the predictor's flagged ``fix_lr`` as in the official
    ``--fix-pred-lr``.

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
        predictor: str = "learned",
        batch_norm: str = "hidden_output",
        similarity: str = "cosine",
        symmetric: bool = True,
    ) -> None:
        super().__init__()
        check_options("simsiam", predictor=predictor, batch_norm=batch_norm, similarity=similarity)
        self.encoder = encoder
        self.projector, self.predictor = build_mlps(
            embed_dim,
            proj_dim=proj_dim,
            proj_hidden=proj_hidden,
            proj_layers=proj_layers,
            pred_dim=pred_dim,
            predictor=predictor,
            batch_norm=batch_norm,
        )
        self.stop_gradient = stop_gradient
        self.similarity = similarity
        self.symmetric = symmetric

    def forward(self, x1: torch.Tensor, x2: torch.Tensor) -> dict[str, torch.Tensor]:
        z1 = self.projector(embed(self.encoder, x1))  # B,proj
        z2 = self.projector(embed(self.encoder, x2))
        p1, p2 = self.predictor(z1), self.predictor(z2)  # B,proj
        loss = simsiam_loss(
            p1,
            p2,
            z1,
            z2,
            self.stop_gradient,
            similarity=self.similarity,
            symmetric=self.symmetric,
        )
        return {"loss": loss, "z": z1.detach()}

    def param_groups(self, fix_predictor_lr: bool = True) -> list[dict[str, Any]]:
        rest = [*self.encoder.parameters(), *self.projector.parameters()]
        pred = [p for p in self.predictor.parameters() if p.requires_grad]
        groups = [{"params": [p for p in rest if p.requires_grad], "fix_lr": False}]
        if pred:  # none when the predictor is the identity or frozen
            groups.append({"params": pred, "fix_lr": fix_predictor_lr})
        return groups


# -- task head -------------------------------------------------------------------------


@dataclass
class SimSiamConfig:
    proj_dim: int = 2048
    proj_hidden: int | None = None  # None: the encoder's embedding size (official code)
    proj_layers: int = 3
    pred_dim: int | None = None  # None: proj_dim // 4
    stop_gradient: bool = True
    fix_predictor_lr: bool = True
    predictor: str = "learned"  # learned | fixed (frozen random init) | none (p = z)
    batch_norm: str = "hidden_output"  # none | hidden | hidden_output | all (Table 3)
    similarity: str = "cosine"  # cosine | cross_entropy (Table 4)
    symmetric: bool = True  # False: D(p1, z2) only (Table 5)
    collapse_threshold: float = 0.1  # warn when std(z/|z|)·sqrt(d) falls below

    def __post_init__(self) -> None:
        check_options(
            "heads.simsiam",
            predictor=self.predictor,
            batch_norm=self.batch_norm,
            similarity=self.similarity,
            error=ValueError,
        )


@TASKS.register()
class SimSiamHead(TaskHead):
    """SimSiam as an ELo task on one modality (``rgb/simsiam``): two augmented views
    (``simsiam1``, ``simsiam2``, see :mod:`baselines.augment`) of each clip. Takes
    the switches of :class:`SimSiam` from ``heads.simsiam``.

    :meth:`fixed_lr_parameters` lists the predictor's parameters when its learning
    rate should not follow the schedule (``elo.train.trainer.make_optimizer`` puts them in
    a group that the scheduler leaves at the base lr).
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
        self.projector, self.predictor = build_mlps(
            dim,
            proj_dim=cfg.proj_dim,
            proj_hidden=cfg.proj_hidden,
            proj_layers=cfg.proj_layers,
            pred_dim=cfg.pred_dim,
            predictor=cfg.predictor,
            batch_norm=cfg.batch_norm,
        )
        self.monitor = CollapseMonitor(cfg.proj_dim, cfg.collapse_threshold, f"{term} z")

    @classmethod
    def supports(cls, modalities: tuple[str, ...]) -> bool:
        return modalities == ("rgb",)

    def fixed_lr_parameters(self) -> list[nn.Parameter]:
        if not self.config.fix_predictor_lr:
            return []
        return [p for p in self.predictor.parameters() if p.requires_grad]

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        m, cfg = self.modality, self.config
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
        loss = simsiam_loss(
            p1,
            p2,
            z1,
            z2,
            cfg.stop_gradient,
            similarity=cfg.similarity,
            symmetric=cfg.symmetric,
        )
        std = self.monitor.update(z1)
        return {"loss": loss, "collapse_std": torch.tensor(std)}
