"""Multi-modal alignment: are two modalities' windows from the same moment? Binary.

ELo (arXiv 2002.12177) uses temporal alignment between modalities, after audio-visual
temporal synchronisation (Owens & Efros ECCV 2018, arXiv 1804.03641; Korbar et al.
NeurIPS 2018 AVTS, arXiv 1807.00230). The first modality's ``sync`` view and the
second's ``async`` view (below) are half-clip windows that start at the same
time (aligned, label 1) or at least a quarter clip apart (label 0); both window starts
are drawn exchangeably so a start alone reveals nothing. The head classifies the pair
of pooled embeddings. Term keys: ``rgb+flow/alignment``, ``rgb+audio/alignment``,
``flow+audio/alignment``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from elo.model.heads import TASKS, VIEWS, FeatureSpec, HeadInputs, TaskHead
from elo.model.terms import TermKey
from elo.model.views import balanced_labels, crop_time
from elo.tasks._common import both_present, check_positive, masked_mean

ALIGN_WINDOW = 0.5  # fraction of the clip each alignment window covers
ALIGN_MIN_SHIFT = 0.25  # a shifted window starts at least this fraction away


def _alignment_offsets(
    b: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Balanced ``aligned`` labels and an exchangeable pair of window starts per clip
    (both in [0, 1 - window], at least ``ALIGN_MIN_SHIFT`` apart), so the start of a
    window alone says nothing about the label (no codec arrow-of-time shortcut)."""
    aligned = balanced_labels(b, 2, g).float()  # B, 1 = aligned
    span = 1.0 - ALIGN_WINDOW - ALIGN_MIN_SHIFT
    lo = torch.rand(b, generator=g) * span
    hi = lo + ALIGN_MIN_SHIFT + torch.rand(b, generator=g) * (span - lo)
    swap = torch.rand(b, generator=g) < 0.5
    o1 = torch.where(swap, hi, lo)
    o2 = torch.where(swap, lo, hi)
    return aligned, o1, o2


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


@TASKS.register()
class AlignmentHead(TaskHead):
    name = "alignment"
    arity = "pair"
    views = ("sync", "async")

    @dataclass
    class Config:
        hidden: int = 64

    @classmethod
    def input_views(cls, term: TermKey) -> list[tuple[str, str]]:
        a, b = term.modalities
        return [(a, "sync"), (b, "async")]

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Config) -> None:
        super().__init__(term, specs, config)
        check_positive(self.name, hidden=config.hidden)
        a, b = term.modalities
        d = specs[a].embed_dim + specs[b].embed_dim
        self.classifier = nn.Sequential(
            nn.Linear(d, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 1)
        )

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        a, b = self.term.modalities
        ea = inputs.features[(a, "sync")].embedding  # B,Da
        eb = inputs.features[(b, "async")].embedding  # B,Db
        target = inputs.view_info[(b, "async")]["aligned"]  # B, 1 = aligned
        logits = self.classifier(torch.cat([ea, eb], dim=1)).squeeze(1)  # B
        mask = both_present(inputs.mask, (a, b))
        loss = masked_mean(
            F.binary_cross_entropy_with_logits(logits, target, reduction="none"), mask
        )
        acc = masked_mean(((logits > 0).float() == target).float(), mask).detach()
        return {"loss": loss, "accuracy": acc}
