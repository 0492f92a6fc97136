"""Collapse monitor: the standard deviation of the l2-normalised output.

SimSiam (Chen & He, arXiv 2011.10566, Sec. 4.1 and Fig. 2) tracks, per channel, the
std over the batch of ``z / ||z||`` and averages over channels. For outputs spread
over the unit sphere it is about ``1 / sqrt(d)`` (d=256: 0.0625); a collapsed
representation (every sample mapped to the same point) drives it to 0.

>>> import torch
>>> z = torch.randn(4096, 256, generator=torch.Generator().manual_seed(0))
>>> round(normalized_std(z).item() * 256**0.5, 1)
1.0
>>> m = CollapseMonitor(dim=256, threshold_ratio=0.1)
>>> m.update(torch.ones(8, 256)) < m.threshold, m.fired
(True, 1)
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)


def normalized_std(z: torch.Tensor) -> torch.Tensor:
    """Mean over channels of the std over the batch of ``z / ||z||``; ``z`` is B,D."""
    zn = F.normalize(z.detach().float(), dim=1)  # B,D on the unit sphere
    return zn.std(dim=0).mean()


class CollapseMonitor:
    """Tracks :func:`normalized_std` and warns when it falls below a threshold.

    ``threshold = threshold_ratio / sqrt(dim)``: a healthy output sits near ratio 1.
    A warning is logged when the value first drops below the threshold and again
    each time it drops after recovering; ``fired`` counts those events.
    """

    def __init__(self, dim: int, threshold_ratio: float = 0.1, name: str = "output") -> None:
        if dim < 1 or threshold_ratio <= 0:
            raise ValueError("CollapseMonitor needs dim >= 1 and threshold_ratio > 0")
        self.dim = dim
        self.threshold = threshold_ratio / math.sqrt(dim)
        self.name = name
        self.last = float("nan")
        self.fired = 0
        self._below = False

    @property
    def collapsed(self) -> bool:
        return self._below

    def update(self, z: torch.Tensor, step: int | None = None) -> float:
        """Record the std of this batch's output ``z`` (B,D); returns it as a float."""
        if z.shape[0] < 2:
            return self.last
        value = float(normalized_std(z))
        self.last = value
        below = value < self.threshold
        if below and not self._below:
            self.fired += 1
            where = f" at step {step}" if step is not None else ""
            log.warning(
                "collapse warning%s: std of l2-normalised %s is %.5f < %.5f (healthy ~%.4f)",
                where,
                self.name,
                value,
                self.threshold,
                1 / math.sqrt(self.dim),
            )
        self._below = below
        return value
