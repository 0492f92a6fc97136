"""ELo: learn video representations without labels by evolving the loss.

The public API is imported lazily so ``import elo`` (and every ``--help``) stays fast:

>>> import elo
>>> sorted(elo.__all__)[:3]
['ConfigError', 'DataError', 'DecodedClip']
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"  # the only place it is written: pyproject.toml reads it

_LAZY = {
    "EloError": "elo.errors",
    "ConfigError": "elo.errors",
    "DataError": "elo.errors",
    "Registry": "elo.registry",
    "TermKey": "elo.model.terms",
    "TASKS": "elo.model.heads",
    "TaskHead": "elo.model.heads",
    "FeatureSpec": "elo.model.heads",
    "EncoderOutput": "elo.model.heads",
    "HeadInputs": "elo.model.heads",
    "MODALITIES": "elo.model.modality",
    "Modality": "elo.model.modality",
    "Encoder": "elo.model.modality",
    "DecodedClip": "elo.model.modality",
    "EncoderBuild": "elo.model.modality",
    "Weights": "elo.model.objective",
    "enumerate_terms": "elo.model.objective",
    "terms_from_config": "elo.model.objective",
    "load_config": "elo.config",
    "seed_everything": "elo.rundir",
    "load_encoder": "elo.train.export",
    "save_encoder": "elo.train.export",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'elo' has no attribute {name!r}")
