"""Temporal ordering: is the clip in order, shuffled, or reversed? Cross-entropy.

ELo (arXiv 2002.12177) uses temporal ordering (in order vs shuffled, forward vs
reversed), after Shuffle and Learn (Misra et al. ECCV 2016, arXiv 1603.08561) and the
arrow of time (Wei et al. CVPR 2018). The ``order`` view (``elo.views.order_view``)
makes balanced labels 0 in order / 1 shuffled / 2 reversed; the head classifies the
pooled embedding. Term keys: ``rgb/temporal_order``, ``flow/temporal_order``,
``audio/temporal_order``.

Beware the codec arrow of time (ENVIRONMENT.md): with one keyframe per clip, sharpness
falls along the clip and reveals the direction; windows must start at random offsets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from elo.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.terms import TermKey
from elo.views import ORDER_CLASSES
from tasks._common import check_positive, masked_mean


@TASKS.register()
class TemporalOrderHead(TaskHead):
    name = "temporal_order"
    arity = "one"
    views = ("order",)

    @dataclass
    class Config:
        hidden: int = 64  # classifier MLP width

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Config) -> None:
        super().__init__(term, specs, config)
        check_positive(self.name, hidden=config.hidden)
        d = specs[term.modalities[0]].embed_dim
        self.classifier = nn.Sequential(
            nn.Linear(d, config.hidden), nn.ReLU(), nn.Linear(config.hidden, len(ORDER_CLASSES))
        )

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        (m,) = self.term.modalities
        logits = self.classifier(inputs.features[(m, "order")].embedding)  # B,3
        labels = inputs.view_info[(m, "order")]["order_label"]  # B
        mask = inputs.mask.get(m)
        loss = masked_mean(F.cross_entropy(logits, labels, reduction="none"), mask)
        acc = masked_mean((logits.argmax(1) == labels).float(), mask).detach()
        return {"loss": loss, "accuracy": acc}
