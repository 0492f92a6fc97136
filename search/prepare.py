"""What a search does with its data before the first trial: drop the modalities no
clip has, make the data paths absolute (Ray Tune runs each trial in its own working
folder) and extract and cache the training and held-out clips once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any


def drop_absent_modalities(cfg: dict[str, Any], echo: Callable[[str], None]) -> None:
    """Remove from ``cfg`` the modalities no clip of ``data.root`` has (and their terms),
    saying so (elo/data/datasets.py); a fitness that scores λ itself (``synthetic``)
    reads no data."""
    from elo.data.datasets import drop_absent_modalities as drop
    from elo.model.objective import terms_from_config
    from elo.search.fitness.base import scores_weights

    if scores_weights(cfg["fitness"]):
        return  # the stand-in fitness trains nothing and reads no data
    before = len(terms_from_config(cfg))
    root = cfg["data"]["root"]
    absent = drop(cfg, root)
    if absent:
        n = before - len(terms_from_config(cfg))
        echo(
            f"elo-search: no clip in {root} has {' or '.join(absent)}; searching without "
            f"{', '.join(absent)} ({n} of {before} terms excluded)"
        )


def absolute_data_paths(cfg: dict[str, Any]) -> str:
    """Make ``data.root`` and ``data.cache`` absolute in ``cfg``:
    Ray Tune runs each trial in its own working folder, where relative paths break.
    Returns the root."""
    data = cfg["data"]
    root = str(Path(str(data["root"])).resolve())
    data["root"] = root
    if data["cache"]:
        data["cache"] = str(Path(str(data["cache"])).resolve())
    return root


def prepare_data(cfg: Mapping[str, Any], root: str, split: str, references: Sequence[str]) -> None:
    """Extract and cache the training and held-out clips once, before the trials."""
    from elo.data.datasets import open_dataset
    from elo.model.modality import configured_modalities

    mods = configured_modalities(cfg)
    refs = list(references)  # the fitness's reference modalities (FitnessSettings)
    open_dataset(cfg, root, split="train", modalities=mods, extract_workers=None)
    held = sorted({"rgb", *refs})
    open_dataset(cfg, root, split=split, modalities=held, extract_workers=None)
