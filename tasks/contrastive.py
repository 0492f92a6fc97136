"""Multi-modal contrastive: the same clip seen by two modalities is close, other clips
of the batch are far. Max-margin (as in ELo) or InfoNCE.

ELo (arXiv 2002.12177) uses a max-margin multi-modal loss
``max(0, m + d(f(x_i), g(y_i)) - d(f(x_i), g(y_j)))`` (after Hadsell et al. CVPR 2006
and the ranking losses of cross-modal embedding, e.g. Frome et al. NeurIPS 2013
DeViSE). The InfoNCE option follows CPC (van den Oord et al. 2018, arXiv 1807.03748)
and CMC (Tian et al. ECCV 2020, arXiv 1906.05849). Embeddings are projected and
L2-normalized; ``d`` is the squared Euclidean distance. Clips that lack either
modality are left out of the batch. Term keys: ``rgb+flow/contrastive``,
``rgb+audio/contrastive``, ``flow+audio/contrastive``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from elo.errors import ConfigError
from elo.model.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.model.terms import TermKey
from elo.tasks._common import both_present, check_positive


def max_margin(za: torch.Tensor, zb: torch.Tensor, margin: float) -> torch.Tensor:
    """Symmetric max-margin ranking over all in-batch negatives; za, zb: N,D unit rows."""
    d = torch.cdist(za, zb).pow(2)  # N,N squared distances
    pos = d.diagonal()
    off = ~torch.eye(len(d), dtype=torch.bool, device=d.device)
    a2b = F.relu(margin + pos[:, None] - d)[off]  # anchor a_i, negatives b_j
    b2a = F.relu(margin + pos[None, :] - d)[off]  # anchor b_j, negatives a_i
    return 0.5 * (a2b.mean() + b2a.mean())


def info_nce(za: torch.Tensor, zb: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = za @ zb.t() / temperature  # N,N
    target = torch.arange(len(za), device=za.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


@TASKS.register()
class ContrastiveHead(TaskHead):
    name = "contrastive"
    arity = "pair"
    views = ("base",)

    @dataclass
    class Config:
        loss: str = "margin"  # margin | infonce
        margin: float = 0.5  # on squared distances of unit vectors (range 0..4)
        temperature: float = 0.1
        dim: int = 32  # shared embedding size

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Config) -> None:
        super().__init__(term, specs, config)
        if config.loss not in ("margin", "infonce"):
            raise ConfigError(
                f"heads.contrastive.loss must be margin or infonce, got {config.loss!r}"
            )
        check_positive(
            self.name, margin=config.margin, temperature=config.temperature, dim=config.dim
        )
        a, b = term.modalities
        self.proj = nn.ModuleDict(
            {m: nn.Sequential(nn.Linear(specs[m].embed_dim, config.dim)) for m in (a, b)}
        )

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        a, b = self.term.modalities
        za = F.normalize(self.proj[a](inputs.features[(a, "base")].embedding), dim=1)  # B,dim
        zb = F.normalize(self.proj[b](inputs.features[(b, "base")].embedding), dim=1)  # B,dim
        keep = both_present(inputs.mask, (a, b))
        if keep is not None:
            za, zb = za[keep], zb[keep]
        if len(za) < 2:  # no negatives: nothing to learn from this batch
            return {"loss": (za.sum() + zb.sum()) * 0.0}
        if self.config.loss == "margin":
            loss = max_margin(za, zb, self.config.margin)
        else:
            loss = info_nce(za, zb, self.config.temperature)
        with torch.no_grad():
            sim = za @ zb.t()
            acc = (sim.argmax(1) == torch.arange(len(sim), device=sim.device)).float().mean()
        return {"loss": loss, "retrieval_top1": acc}
