"""Cross-modal transfer: predict one modality's input from another's features; L2.

ELo (arXiv 2002.12177) trains each network to predict other modalities (e.g. RGB ->
optical flow, RGB -> audio), after cross-modal prediction in Owens et al. (ECCV 2016,
"Ambient Sound Provides Supervision", predicting sound statistics from frames) and
Zhang et al. (CVPR 2017, split-brain auto-encoders). Only the *source* is encoded; the
target is its raw input. Meaningful directions (``supports``): from a video-like
source (``Modality.video_like``: rgb, flow) to a different modality that may be a
transfer target (``Modality.transfer_target``: not rgb, appearance cannot be read from
motion or sound). Term keys: ``rgb->flow/transfer``, ``rgb->audio/transfer``,
``flow->audio/transfer``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from elo.model.heads import TASKS, FeatureSpec, HeadInputs, TaskHead
from elo.model.modality import MODALITIES
from elo.model.terms import TermKey
from elo.tasks._common import both_present, decoded_mse, tap_decoder


@TASKS.register()
class TransferHead(TaskHead):
    name = "transfer"
    arity = "ordered"
    views = ("base",)

    @dataclass
    class Config:
        level: int = -1  # source pyramid level
        hidden: int = 16

    @classmethod
    def supports(cls, modalities: tuple[str, ...]) -> bool:
        src, dst = modalities
        if src == dst or src not in MODALITIES or dst not in MODALITIES:
            return False
        return MODALITIES.get(src).video_like and MODALITIES.get(dst).transfer_target

    @classmethod
    def encoded_views(cls, term: TermKey) -> list[tuple[str, str]]:
        """Only the source goes through an encoder; the target is a raw input."""
        return [(term.modalities[0], "base")]

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Config) -> None:
        super().__init__(term, specs, config)
        src, dst = term.modalities
        self.level, self.decoder = tap_decoder(
            self.name, specs[src], specs[dst], config.level, config.hidden
        )

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        src, dst = self.term.modalities
        target = inputs.views[(dst, "base")].detach()  # the raw input of the target modality
        mask = both_present(inputs.mask, (src, dst))
        features = inputs.features[(src, "base")]
        return {"loss": decoded_mse(self.decoder, features, self.level, target, mask)}
