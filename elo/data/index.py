"""The index of a dataset's videos (:class:`VideoIndex` of :class:`VideoRecord`) and
split selection (:func:`select_split`): official folds when the layout has them, a
``split`` column, else a deterministic stratified hash split. The layouts that build
an index are read by :func:`elo.data.layouts.scan` (docs/datasets.md).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from elo.errors import DataError


@dataclass(frozen=True)
class VideoRecord:
    path: Path
    rel: str  # path relative to the dataset root, "/"-separated
    label: int  # -1 when unlabeled
    labels: Mapping[str, int] = field(default_factory=dict)
    split: str | None = None
    window: tuple[float, float] | None = None  # seconds of an untrimmed video (Kinetics)


@dataclass
class VideoIndex:
    """The videos of a dataset with their labels and official folds."""

    root: Path
    records: list[VideoRecord]
    class_names: list[str]
    label_names: list[str]
    label_values: dict[str, list[str]]  # label name -> value names by index
    #: fold -> split name -> relative paths (lower case); empty without official folds
    folds: dict[int, dict[str, frozenset[str]]] = field(default_factory=dict)
    layout: str = "folder"

    @property
    def fold_numbers(self) -> list[int]:
        """The official folds (``[1]`` when the layout has none)."""
        return sorted(self.folds) or [1]


def select_split(
    index: VideoIndex,
    split: str | None,
    *,
    fold: int = 1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> list[VideoRecord]:
    """Records of ``split`` in fold ``fold``: from the layout's lists or split column,
    else a deterministic stratified hash split (``test_fraction`` of each class is
    "test"; fold 1 only). ``test`` falls back to ``val`` when the layout has no test."""
    recs = index.records
    if split is None:
        return list(recs)
    folds = index.fold_numbers
    if fold not in folds:
        have = ", ".join(map(str, folds))
        raise DataError(
            f"{index.root}: no fold {fold} in this {index.layout} layout (folds: {have})"
        )
    if index.folds:
        sets = index.folds[fold]
        name = "val" if split == "test" and "test" not in sets and "val" in sets else split
        if name not in sets:
            raise DataError(
                f"{index.root}: no split {split!r} in fold {fold} (has {', '.join(sorted(sets))})"
            )
        return [r for r in recs if r.rel.lower() in sets[name]]
    if any(r.split for r in recs):
        names = {r.split for r in recs}
        name = "val" if split == "test" and "test" not in names and "val" in names else split
        return [r for r in recs if r.split == name]
    if split not in ("train", "test"):
        raise DataError(f"{index.root}: no split {split!r} (no split column or split lists)")
    out = []
    groups: dict[int, list[VideoRecord]] = {}
    for r in recs:
        groups.setdefault(r.label, []).append(r)
    for group in groups.values():
        ranked = sorted(group, key=lambda r: zlib.crc32(f"{seed}:{r.rel}".encode()))
        n_test = int(round(test_fraction * len(ranked)))
        out += ranked[:n_test] if split == "test" else ranked[n_test:]
    return sorted(out, key=lambda r: r.rel)
