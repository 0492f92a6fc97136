"""Temporal ordering: are the frames coherent (in order or reversed) or shuffled?
Cross-entropy. ``heads.temporal_order.form: 3way`` is the paper's form (in order /
shuffled / reversed).

The default binary form is learnable on mirror-symmetric motion: on the demo, a clip
of "right" played backwards *is* a clip of "left", so forward vs reversed cannot be
learned from motion there, while any shuffle breaks smooth motion in every class.

ELo (arXiv 2002.12177) uses temporal ordering (in order vs shuffled, forward vs
reversed), after Shuffle and Learn (Misra et al. ECCV 2016, arXiv 1603.08561) and the
arrow of time (Wei et al. CVPR 2018). The ``order`` view (:func:`order_view`, below)
makes balanced labels 0 in order / 1 shuffled / 2 reversed; the head classifies the
pooled embedding. Term keys: ``rgb/temporal_order``, ``flow/temporal_order``,
``audio/temporal_order``.

Beware the codec arrow of time (docs/datasets.md, "Decoding notes"): with one keyframe
per clip, sharpness falls along the clip and reveals the direction; windows must start
at random offsets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from elo.errors import ConfigError
from elo.model.heads import TASKS, VIEWS, FeatureSpec, HeadInputs, TaskHead
from elo.model.modality import MODALITIES
from elo.model.terms import TermKey
from elo.model.views import balanced_labels, crop_time, time_dim
from elo.tasks._common import check_positive, masked_mean

FORMS = ("shuffle", "3way")
ORDER_CLASSES = ("in_order", "shuffled", "reversed")
ORDER_WINDOW = 0.75  # fraction of the clip kept, at a random offset


def _reverses_sign(modality: str) -> bool:
    """Whether the modality's values change sign when time runs backwards (its
    ``Modality.reverses_sign``; False for a name no modality registers)."""
    return modality in MODALITIES and bool(MODALITIES.get(modality).reverses_sign)


@VIEWS.register("order")
def order_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Each clip in order (0), shuffled (1) or reversed (2), balanced over the batch
    (Misra et al. ECCV 2016 Shuffle&Learn; Wei et al. CVPR 2018 arrow of time).

    Each clip is first cut to a window of 3/4 of its length at a random offset (so a
    codec's keyframe is not always first). Video is then permuted frame by frame; flow,
    when reversed, is also negated (backward motion). Spectrograms are permuted in 4
    chunks (reversed = time-flipped). ``info["order_label"]``: int64 B.
    """
    frac = ORDER_WINDOW
    x = crop_time(x, torch.rand(x.shape[0], generator=generator) * (1 - frac), frac)
    b, td = x.shape[0], time_dim(x)
    length = x.shape[td]
    labels = balanced_labels(b, len(ORDER_CLASSES), generator)
    units = 4 if x.dim() == 4 else length  # spectrogram: chunks; video: frames
    if units < 3 or length < units:
        raise ValueError(f"order view needs >= 3 time steps along dim {td}, got {length}")
    chunk = length // units
    ident = torch.arange(units)
    perms = []
    for lab in labels.tolist():
        if lab == 0:
            perms.append(ident)
        elif lab == 2:
            perms.append(ident.flip(0))
        else:
            while True:  # a permutation that is neither in order nor reversed
                p = torch.randperm(units, generator=generator)
                if not torch.equal(p, ident) and not torch.equal(p, ident.flip(0)):
                    break
            perms.append(p)
    unit_idx = torch.stack(perms)  # B,units
    # frame index for each output position: chunk-wise permutation, remainder kept in place
    idx = (unit_idx[:, :, None] * chunk + torch.arange(chunk)).reshape(b, -1)  # B,units*chunk
    rev = labels == 2
    if x.dim() == 4:  # spectrogram: a reversed clip is the time-flipped one
        idx[rev] = torch.arange(units * chunk - 1, -1, -1).expand(int(rev.sum()), -1)
    tail = torch.arange(units * chunk, length).expand(b, -1)
    idx = torch.cat([idx, tail], dim=1).to(x.device)  # B,L
    shape = [b] + [1] * (x.dim() - 1)
    shape[td] = length
    gather_idx = idx.view(shape).expand_as(x)
    out = torch.gather(x, td, gather_idx)
    if _reverses_sign(modality):  # reversed motion runs backwards (flow)
        sign = torch.where(rev, -1.0, 1.0).to(x.dtype).to(x.device)
        out = out * sign.view([b] + [1] * (x.dim() - 1))
    return out, {"order_label": labels.to(x.device)}


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
