"""Future prediction: from the first half of a clip, predict the rest; L2.

ELo (arXiv 2002.12177) uses future-frame prediction (after Srivastava et al. ICML
2015, arXiv 1502.04681; Vondrick et al. CVPR 2016 anticipate future features). The
context and target come from the ``past`` view (:func:`past_view`, below): context =
first half of the time axis, target = the remaining frames. On ``flow`` it predicts
future motion, on ``audio`` future log-mel frames. Term keys: ``<m>/future``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from elo.model.heads import TASKS, VIEWS, FeatureSpec, HeadInputs, TaskHead
from elo.model.terms import TermKey
from elo.model.views import time_dim
from elo.tasks._common import decoded_mse, tap_decoder

PAST_FRACTION = 0.5  # context = this first part of the clip, target = the rest


@VIEWS.register("past")
def past_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Future prediction: the first half of the clip; ``info["future"]`` is the rest
    (Srivastava et al. ICML 2015; Vondrick et al. CVPR 2016)."""
    td = time_dim(x)
    length = x.shape[td]
    cut = max(1, int(length * PAST_FRACTION))
    if cut >= length:
        raise ValueError(f"past view needs >= 2 time steps along dim {td}, got {length}")
    return x.narrow(td, 0, cut), {"future": x.narrow(td, cut, length - cut)}


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
        (m,) = term.modalities
        self.level, self.decoder = tap_decoder(
            self.name, specs[m], specs[m], config.level, config.hidden
        )

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        (m,) = self.term.modalities
        target = inputs.view_info[(m, "past")]["future"].detach()  # B,C,T_future,...
        features = inputs.features[(m, "past")]  # of the context: the first half
        loss = decoded_mse(self.decoder, features, self.level, target, inputs.mask.get(m))
        return {"loss": loss}
