"""Supervised control: classify the clip's label from the pooled embedding;
cross-entropy. **Not self-supervised**: it reads the labels, so the default objective
excludes it (``objective.exclude`` in ``configs/objective/default.yaml``) and the
search never sees it. It exists as the upper reference of the comparison table (same
encoder, data, views and step budget as every other row; ``docs/learning.md``).

Unlabeled clips (label ``-1``) are ignored; a batch without any labeled clip gives a
zero loss that still flows through the graph. Term key: ``rgb/supervised``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from elo.errors import DataError
from elo.model.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.model.terms import TermKey
from elo.tasks._common import check_positive


@TASKS.register()
class SupervisedHead(TaskHead):
    name = "supervised"
    arity = "one"
    views = ("base",)
    #: reads ``meta["label"]`` (tests give it labeled batches)
    needs_labels = True

    @dataclass
    class Config:
        classes: int = 8  # number of classes of the dataset's label

    @classmethod
    def supports(cls, modalities: tuple[str, ...]) -> bool:
        return modalities == ("rgb",)  # the student only

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Config) -> None:
        super().__init__(term, specs, config)
        check_positive(self.name, classes=config.classes)
        self.classifier = nn.Linear(specs[term.modalities[0]].embed_dim, config.classes)

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        (m,) = self.term.modalities
        logits = self.classifier(inputs.features[(m, "base")].embedding)  # B,K
        labels = torch.as_tensor(inputs.meta.get("label", torch.full((len(logits),), -1)))
        labels = labels.to(logits.device).long()  # B, -1 = unlabeled
        if int(labels.max()) >= logits.shape[1]:
            raise DataError(
                f"label {int(labels.max())} >= heads.supervised.classes={logits.shape[1]}; "
                "set heads.supervised.classes to the number of classes"
            )
        ok = labels >= 0
        mask = inputs.mask.get(m)
        if mask is not None:
            ok = ok & mask.bool()
        if not bool(ok.any()):
            return {"loss": logits.sum() * 0.0, "accuracy": torch.zeros(())}
        loss = F.cross_entropy(logits[ok], labels[ok])
        acc = (logits[ok].argmax(1) == labels[ok]).float().mean().detach()
        return {"loss": loss, "accuracy": acc}
