"""How the normalised loss terms are combined (``objective.weighting``,
``elo-train --weighting``): the alternatives to searched λ that the demo compares
against (docs/learning.md, "Loss weighting baselines").

Every mode works on the model's normalised terms ``L̃_k = λ_k L_k / s_k``
(``objective.normalize``, elo/model/network.py); the modes other than ``fixed`` set
``λ_k = 1`` on every active term first (:func:`effective_weights`), so ``L̃_k`` is the
term divided by its own scale:

* ``fixed`` (default): ``L = Σ_k λ_k L_k / s_k`` with the λ given (``--weights``, else
  1 everywhere): the plain weighted sum, the search's candidates;
* ``uniform``: the same with every λ_k = 1 (an equal-weight sum of the normalised terms);
* ``rlw``: Random Loss Weighting (Lin et al., "Reasonable Effectiveness of Random
  Weighting", TMLR 2022): each step ``w = n · softmax(z)``, ``z ~ N(0, I_n)`` over the
  n active terms, ``L = Σ_k w_k L̃_k``; the weights are positive and sum to n (the loss
  scale of ``uniform``); ``z`` comes from a generator seeded by (seed, step) alone, so
  two runs with one seed, and a resumed run, draw the same weights;
* ``uncertainty``: homoscedastic uncertainty weighting (Kendall, Gal & Cipolla, CVPR
  2018): one learnable log-variance ``s_k`` per active term (start 0),
  ``L = Σ_k (exp(-s_k) L̃_k + s_k)``, i.e. the paper's form without its ½ factors
  (they rescale the loss by ½ and leave the optimum ``s_k = log L̃_k`` unchanged; without
  them step 0 equals ``uniform``). The ``s_k`` are trained by the run's optimizer
  (their own group: no weight decay, outside ``train.grad_clip``, which clips the
  network) and saved in the checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from elo.errors import ConfigError
from elo.model.network import StepOutput
from elo.model.objective import Weights

#: ``objective.weighting``
WEIGHTINGS = ("fixed", "uniform", "rlw", "uncertainty")
RLW_SALT = 5_318_008  # keeps the RLW draws apart from the views' generators (network.py)


def weighting_mode(cfg: Mapping[str, Any]) -> str:
    """``objective.weighting`` of a composed config, checked."""
    from elo.config import require

    mode = str(require(cfg, "objective.weighting", str))
    if mode not in WEIGHTINGS:
        raise ConfigError(f"objective.weighting {mode!r}: use {' | '.join(WEIGHTINGS)}")
    return mode


def effective_weights(mode: str, weights: Weights) -> Weights:
    """The λ a run trains with: ``weights`` for ``fixed``, else 1 on every term that
    ``weights`` turns on (0 elsewhere: a weights file still picks the terms)."""
    if mode == "fixed":
        return weights
    on = {str(t) for t in weights.active}
    return Weights(weights.terms, {str(t): float(str(t) in on) for t in weights.terms})


def rlw_weights(n: int, seed: int, step: int) -> torch.Tensor:
    """RLW's weights of step ``step``: ``n · softmax(z)``, ``z ~ N(0, I_n)`` drawn from a
    generator seeded by (``seed``, ``step``); float64, positive, summing to ``n``."""
    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(step) + RLW_SALT)
    z = torch.randn(n, generator=g, dtype=torch.float64)
    return n * torch.softmax(z, dim=0)


class LossWeighting(nn.Module):
    """The combination of the normalised terms for one run (module docstring). Holds
    the log-variances ``log_var`` (one per active term, in ``terms`` order) for
    ``uncertainty``; no state otherwise."""

    def __init__(self, mode: str, terms: Sequence[str], seed: int = 0) -> None:
        super().__init__()
        if mode not in WEIGHTINGS:
            raise ConfigError(f"objective.weighting {mode!r}: use {' | '.join(WEIGHTINGS)}")
        self.mode, self.terms, self.seed = mode, list(terms), int(seed)
        if mode == "uncertainty":
            self.log_var = nn.Parameter(torch.zeros(len(self.terms)))

    @property
    def dynamic(self) -> bool:
        """Whether the weights change during the run (``rlw``, ``uncertainty``)."""
        return self.mode in ("rlw", "uncertainty")

    def term_weights(self, step: int) -> torch.Tensor:
        """The weight on each normalised term at ``step`` (detached; float64 for RLW)."""
        if self.mode == "rlw":
            return rlw_weights(len(self.terms), self.seed, step)
        if self.mode == "uncertainty":
            return torch.exp(-self.log_var.detach())
        return torch.ones(len(self.terms))

    def forward(self, out: StepOutput, step: int) -> StepOutput:
        """``out`` with its ``total`` and ``weighted`` terms reweighted (unchanged
        unless :attr:`dynamic`)."""
        if not self.dynamic:
            return out
        terms = [out.weighted[k] for k in self.terms]
        if self.mode == "rlw":
            w = rlw_weights(len(terms), self.seed, step)
            weighted = [float(w[i]) * x for i, x in enumerate(terms)]
            total = torch.stack(weighted).sum()
        else:
            s = self.log_var.to(terms[0].device)
            weighted = [torch.exp(-s[i]).to(x.dtype) * x for i, x in enumerate(terms)]
            total = torch.stack(weighted).sum() + s.sum().to(terms[0].dtype)
        return StepOutput(total, out.raw, dict(zip(self.terms, weighted, strict=True)), out.logs)

    def record(self, step: int) -> dict[str, float]:
        """The log scalars of ``step``: ``weight/<term>`` (the weight on the normalised
        term) and, for ``uncertainty``, ``logvar/<term>`` (``s_k``). Empty unless
        :attr:`dynamic`, so a ``fixed`` / ``uniform`` log has neither."""
        if not self.dynamic:
            return {}
        w = self.term_weights(step)
        rec = {f"weight/{k}": float(w[i]) for i, k in enumerate(self.terms)}
        if self.mode == "uncertainty":
            rec.update(
                {
                    f"logvar/{k}": float(v)
                    for k, v in zip(self.terms, self.log_var.detach(), strict=True)
                }
            )
        return rec

    def parameter_group(self) -> dict[str, Any] | None:
        """The optimizer group of the log-variances (no weight decay), or None."""
        if self.mode != "uncertainty":
            return None
        return {"params": [self.log_var], "weight_decay": 0.0, "fix_lr": False}
