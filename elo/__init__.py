"""ELo: learn video representations without labels by evolving the loss.

The public API is imported lazily so ``import elo`` (and every ``--help``) stays fast:

>>> import elo
>>> sorted(elo.__all__)[:3]
['ConfigError', 'DataError', 'EloError']
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "EloError": "elo.errors",
    "ConfigError": "elo.errors",
    "DataError": "elo.errors",
    "Registry": "elo.registry",
    "TermKey": "elo.terms",
    "TASKS": "elo.heads",
    "TaskHead": "elo.heads",
    "FeatureSpec": "elo.heads",
    "EncoderOutput": "elo.heads",
    "HeadInputs": "elo.heads",
    "MODALITIES": "elo.modality",
    "Modality": "elo.modality",
    "Encoder": "elo.modality",
    "DecodedClip": "elo.modality",
    "Weights": "elo.objective",
    "enumerate_terms": "elo.objective",
    "terms_from_config": "elo.objective",
    "load_config": "elo.config",
    "seed_everything": "elo.rundir",
    "load_encoder": "elo.export",
    "save_encoder": "elo.export",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'elo' has no attribute {name!r}")
