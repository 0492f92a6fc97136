"""Distillation of a teacher modality (flow, audio) into the RGB student at one level.

ELo (Piergiovanni, Angelova, Ryoo, CVPR 2020, arXiv 2002.12177, sec. 3.2): the RGB
network is trained to match the intermediate representations of the other modalities'
networks, ``L_d = ||M_i - L_i||^2`` at layer ``i``, and the search picks which layers
(each ``distill/<teacher>->rgb@<level>`` is its own term). The student tap goes through
a learned 1x1 projection to the teacher's channels (FitNets hints, Romero et al. ICLR
2015) and is resized to the teacher tap's shape; the teacher side is stop-gradient by
default. A video teacher is matched over (T, H, W); an audio teacher (``B,C,F,Tm``) is
pooled over frequency and matched over time against the spatially pooled RGB tap.

A registered head like the others (task ``distill``, arity ``distill``); its terms are
not enumerated from the task list but from ``objective.distill`` (teachers, student,
levels: :func:`elo.model.objective.enumerate_terms`).

Config: ``heads.distill.{stop_gradient, normalize}``.
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
from elo.tasks._common import masked_mean


@TASKS.register()
class DistillHead(TaskHead):
    """``distill/<teacher>->rgb@<level>``: L2 between the projected student tap and the
    teacher tap."""

    name = "distill"
    arity = "distill"
    views = ("base",)

    @dataclass
    class Config:
        stop_gradient: bool = True  # no gradient into the teacher network
        normalize: bool = False  # L2-normalize both taps over channels first

    def __init__(self, term: TermKey, specs: Mapping[str, FeatureSpec], config: Config) -> None:
        super().__init__(term, specs, config)
        teacher, student = term.teacher, term.student
        level = int(term.level or 0)
        for m in (teacher, student):
            depth = len(specs[m].pyramid_channels)
            if not 1 <= level <= depth:
                raise ConfigError(
                    f"distillation level {level} of term '{term}' is outside 1..{depth} "
                    f"(the {m} encoder's depth); change objective.distill.levels"
                )
        self.level = level
        self.teacher_dims = len(specs[teacher].input_shape) - 1  # 3 video, 2 spectrogram
        if len(specs[student].input_shape) != 4:
            raise ConfigError(f"distillation student {student!r} must be a video modality")
        c_s = specs[student].pyramid_channels[level - 1]
        c_t = specs[teacher].pyramid_channels[level - 1]
        conv = nn.Conv3d if self.teacher_dims == 3 else nn.Conv1d
        self.proj = conv(c_s, c_t, 1)  # learned 1x1 projection student -> teacher channels

    def forward(self, inputs: HeadInputs) -> dict[str, torch.Tensor]:
        teacher, student = self.term.teacher, self.term.student
        t = inputs.features[(teacher, "base")].pyramid[self.level - 1]
        if self.config.stop_gradient:
            t = t.detach()
        s = inputs.features[(student, "base")].pyramid[self.level - 1]  # B,C,T,H,W
        if self.teacher_dims == 3:  # teacher B,C,T',H',W'
            s = F.interpolate(s, size=t.shape[2:], mode="trilinear", align_corners=False)
        else:  # teacher B,C,F',Tm' -> B,C,Tm'; student B,C,T,H,W -> B,C,T
            t = t.mean(dim=2)
            s = F.interpolate(
                s.mean(dim=(3, 4)), size=t.shape[2:], mode="linear", align_corners=False
            )
        s = self.proj(s)
        if self.config.normalize:
            s, t = F.normalize(s, dim=1), F.normalize(t, dim=1)
        per_sample = ((s - t) ** 2).flatten(1).mean(dim=1)  # B
        mask = inputs.mask.get(teacher)
        if mask is not None and student in inputs.mask:
            mask = mask.bool() & inputs.mask[student].bool()
        return {"loss": masked_mean(per_sample, mask)}
