"""Temporal ordering: are the frames coherent (in order or reversed) or shuffled?
Cross-entropy. ``heads.temporal_order.form: 3way`` is the paper's form (in order /
shuffled / reversed).

The default binary form is learnable on mirror-symmetric motion: on the demo, a clip
of "right" played backwards *is* a clip of "left", so forward vs reversed cannot be
learned from motion there, while any shuffle breaks smooth motion in every class.

ELo (arXiv 2002.12177) uses temporal ordering (in order vs shuffled, forward vs
reversed), after Shuffle and Learn (Misra et al. ECCV 2016, arXiv 1603.08561) and the
arrow of time (Wei et al. CVPR 2018). The ``order`` view (``elo.model.views.order_view``)
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

from elo.errors import ConfigError
from elo.model.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.model.terms import TermKey
from elo.model.views import ORDER_CLASSES
from tasks._common import check_positive, masked_mean

FORMS = ("shuffle", "3way")


@TASKS.register()
class TemporalOrderHead(TaskHead):
    name = "temporal_order"
    arity = "one"
    views = ("order",)

    @dataclass
    class Config:
        hidden: int = 64  # classifier MLP width
        form: str = "shuffle"  # shuffle: coherent vs shuffled | 3way: the paper's

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Config) -> None:
        super().__init__(term, specs, config)
        check_positive(self.name, hidden=config.hidden)
        if config.form not in FORMS:
            raise ConfigError(
                f"heads.temporal_order.form {config.form!r}: use {' or '.join(FORMS)}"
            )
        d = specs[term.modalities[0]].embed_dim
        n_out = len(ORDER_CLASSES) if config.form == "3way" else 2
        self.classifier = nn.Sequential(
            nn.Linear(d, config.hidden), nn.ReLU(), nn.Linear(config.hidden, n_out)
        )

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        (m,) = self.term.modalities
        logits = self.classifier(inputs.features[(m, "order")].embedding)  # B,2 or B,3
        labels = inputs.view_info[(m, "order")]["order_label"]  # B: 0 in order, 1, 2
        weight = None
        if self.config.form == "shuffle":
            labels = (labels == 1).long()  # 1 = shuffled; in order and reversed: 0
            weight = torch.tensor([0.75, 1.5], device=logits.device)  # the view: 2/3 vs 1/3
        mask = inputs.mask.get(m)
        ce = F.cross_entropy(logits, labels, weight=weight, reduction="none")
        loss = masked_mean(ce, mask)
        acc = masked_mean((logits.argmax(1) == labels).float(), mask).detach()
        return {"loss": loss, "accuracy": acc}
