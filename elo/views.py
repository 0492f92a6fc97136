"""Views: derived encoder inputs that tasks request by name (see ``elo.heads.VIEWS``).

The model builds the union of the views its active heads request, once per step, and
runs each encoder once per (modality, view).
"""

from __future__ import annotations

import torch

from elo.heads import VIEWS


@VIEWS.register("base")
def base_view(
    x: torch.Tensor, *, modality: str, generator: torch.Generator
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The modality as extracted (after the modality's own augmentation)."""
    return x, {}
