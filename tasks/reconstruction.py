"""Reconstruction: decode a modality's input from its own encoder features; L2.

ELo (Piergiovanni, Angelova, Ryoo, CVPR 2020, arXiv 2002.12177) lists reconstruction
among its self-supervised tasks, after the video auto-encoders of Srivastava et al.
(ICML 2015, arXiv 1502.04681). Term keys: ``rgb/reconstruction``,
``flow/reconstruction``, ``audio/reconstruction``.

>>> from elo.terms import TermKey
>>> ReconstructionHead.supports(("audio",))
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from elo.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.terms import TermKey
from tasks._common import (
    TapDecoder,
    check_positive,
    dims_of,
    masked_mean,
    per_sample_mse,
    pick_level,
    tap,
)


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
        check_positive(self.name, hidden=config.hidden)
        (m,) = term.modalities
        spec = specs[m]
        self.level = pick_level(spec, config.level, f"heads.{self.name}.level")
        d = dims_of(spec)
        self.decoder = TapDecoder(
            spec.pyramid_channels[self.level - 1],
            spec.input_shape[0],
            src_dims=d,
            dst_dims=d,
            hidden=config.hidden,
        )

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        (m,) = self.term.modalities
        target = inputs.views[(m, "base")].detach()  # B,C,T,H,W or B,1,F,Tm
        pred = self.decoder(tap(inputs.features[(m, "base")], self.level), tuple(target.shape[2:]))
        loss = masked_mean(per_sample_mse(pred, target), inputs.mask.get(m))
        return {"loss": loss}
