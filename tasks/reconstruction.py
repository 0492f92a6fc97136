"""Reconstruction: decode a modality's input from its own encoder features; L2.

ELo (Piergiovanni, Angelova, Ryoo, CVPR 2020, arXiv 2002.12177) lists reconstruction
among its self-supervised tasks, after the video auto-encoders of Srivastava et al.
(ICML 2015, arXiv 1502.04681). Term keys: ``rgb/reconstruction``,
``flow/reconstruction``, ``audio/reconstruction``.

>>> from elo.model.terms import TermKey
>>> ReconstructionHead.supports(("audio",))
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from elo.model.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.model.terms import TermKey
from elo.tasks._common import decoded_mse, tap_decoder


@TASKS.register()
class ReconstructionHead(TaskHead):
    name = "reconstruction"
    arity = "one"
    views = ("base",)

    @dataclass
    class Config:
        level: int = -1  # pyramid level decoded from (-1 = the deepest)
        hidden: int = 16  # decoder channels

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Config) -> None:
        super().__init__(term, specs, config)
        (m,) = term.modalities
        self.level, self.decoder = tap_decoder(
            self.name, specs[m], specs[m], config.level, config.hidden
        )

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        (m,) = self.term.modalities
        target = inputs.views[(m, "base")].detach()  # B,C,T,H,W or B,1,F,Tm
        features = inputs.features[(m, "base")]
        loss = decoded_mse(self.decoder, features, self.level, target, inputs.mask.get(m))
        return {"loss": loss}
