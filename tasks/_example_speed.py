"""Playback-speed prediction: the worked example of adding a task (README, docs/extending.md).

Is the clip playing at normal speed or twice as fast? Speed is a motion cue no single
frame reveals (Benaim et al., "SpeedNet", CVPR 2020, arXiv 2004.06130). This file
starts with an underscore so the registry skips it; to add the task, copy it:

    cp tasks/_example_speed.py tasks/speed.py
    elo-train --list-terms | grep speed     # rgb/speed, flow/speed
    elo-search --data DIR --population 16   # the search now weighs it too

A task is three things: an optional view (how to derive the input), a head
(``TaskHead`` subclass) and its config dataclass, validated from ``heads.speed``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from elo.model.heads import TASKS, VIEWS, FeatureSpec, HeadInputs, TaskHead
from elo.model.modality import MODALITIES
from elo.model.terms import TermKey
from elo.model.views import time_dim
from elo.tasks._common import masked_mean


@VIEWS.register("speed")
def speed_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Half the clip's length, taken at stride 1 (label 0) or stride 2 (label 1) from
    a random offset; ``info["speed_label"]``: int64 B. Output: ``B,C,T//2,H,W``."""
    b, td = x.shape[0], time_dim(x)
    length = x.shape[td]
    half = length // 2
    labels = torch.randperm(b, generator=generator) % 2  # B, balanced
    stride = labels + 1  # B
    span = (half - 1) * stride + 1  # B, frames covered
    start = (torch.rand(b, generator=generator) * (length - span + 1)).long()  # B
    idx = start[:, None] + torch.arange(half)[None, :] * stride[:, None]  # B,half
    shape = [b] + [1] * (x.dim() - 1)
    shape[td] = half
    out_shape = list(x.shape)
    out_shape[td] = half
    return torch.gather(x, td, idx.view(shape).expand(out_shape)), {"speed_label": labels}


@TASKS.register()
class SpeedHead(TaskHead):
    """Classify the ``speed`` view's playback speed from the pooled embedding."""

    name = "speed"
    arity = "one"
    views = ("speed",)

    @dataclass
    class Config:
        hidden: int = 32  # classifier width

    @classmethod
    def supports(cls, modalities: tuple[str, ...]) -> bool:
        m = modalities[0]  # video-like modalities only (rgb, flow)
        return m in MODALITIES and MODALITIES.get(m).video_like

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Config) -> None:
        super().__init__(term, specs, config)
        d = specs[term.modalities[0]].embed_dim
        self.classifier = nn.Sequential(
            nn.Linear(d, config.hidden), nn.ReLU(), nn.Linear(config.hidden, 2)
        )

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        (m,) = self.term.modalities
        logits = self.classifier(inputs.features[(m, "speed")].embedding)  # B,2
        labels = inputs.view_info[(m, "speed")]["speed_label"]  # B
        mask = inputs.mask.get(m)
        loss = masked_mean(F.cross_entropy(logits, labels, reduction="none"), mask)
        acc = masked_mean((logits.argmax(1) == labels).float(), mask).detach()
        return {"loss": loss, "accuracy": acc}
