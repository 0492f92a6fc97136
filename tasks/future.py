"""Future prediction: from the first half of a clip, predict the rest; L2.

ELo (arXiv 2002.12177) uses future-frame prediction (after Srivastava et al. ICML
2015, arXiv 1502.04681; Vondrick et al. CVPR 2016 anticipate future features). The
context and target come from the ``past`` view (``elo.views.past_view``): context =
first half of the time axis, target = the remaining frames. On ``flow`` it predicts
future motion, on ``audio`` future log-mel frames. Term keys: ``<m>/future``.
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
class FutureHead(TaskHead):
    name = "future"
    arity = "one"
    views = ("past",)

    @dataclass
    class Config:
        level: int = -1  # pyramid level of the context features
        hidden: int = 16

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
        target = inputs.view_info[(m, "past")]["future"].detach()  # B,C,T_future,...
        pred = self.decoder(tap(inputs.features[(m, "past")], self.level), tuple(target.shape[2:]))
        loss = masked_mean(per_sample_mse(pred, target), inputs.mask.get(m))
        return {"loss": loss}
