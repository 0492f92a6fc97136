"""CSV layouts: a manifest with a ``path`` column (:func:`read_manifest`) and the
Kinetics annotation CSVs (:func:`read_kinetics`); docs/datasets.md shows each on disk.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

from elo.data.index import VideoIndex, VideoRecord
from elo.errors import DataError

log = logging.getLogger("elo.data.layouts")

_RESERVED = {"path", "label", "class", "split"}
#: the header columns that make a CSV a Kinetics annotation file
KINETICS_COLUMNS = {"label", "youtube_id", "time_start", "time_end"}


def _code(values: Sequence[str]) -> tuple[list[int], list[str]]:
    """Integer codes for a column: ints stay ints, other values index their sorted set."""
    try:
        ints = [int(v) for v in values]
        names = [str(i) for i in range(max(ints) + 1)] if ints else []
        return ints, names
    except ValueError:
        names = sorted(set(values))
        pos = {n: i for i, n in enumerate(names)}
        return [pos[v] for v in values], names


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    try:
        with open(csv_path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{csv_path}: cannot read manifest ({exc})") from None


def read_manifest(csv_path: str | Path) -> VideoIndex:
    """A CSV manifest with a ``path`` column (see the module docstring)."""
    csv_path = Path(csv_path)
    rows = _read_rows(csv_path)
    if not rows or "path" not in rows[0]:
        raise DataError(f"{csv_path}: a manifest needs a header with a 'path' column")
    base = csv_path.parent
    cols = list(rows[0])
    classes: list[str] = []
    if "label" in cols:
        labels, _ = _code([r["label"] for r in rows])
        if "class" in cols:
            by_label = {lab: r["class"] for lab, r in zip(labels, rows, strict=True)}
            classes = [by_label.get(i, str(i)) for i in range(max(labels) + 1)]
        else:
            classes = [str(i) for i in range(max(labels) + 1)]
    elif "class" in cols:
        labels, classes = _code([r["class"] for r in rows])
    else:
        labels = [-1] * len(rows)
    extra = [c for c in cols if c not in _RESERVED]
    coded = {c: _code([r[c] for r in rows]) for c in extra}
    records = [
        VideoRecord(
            path=base / r["path"],
            rel=r["path"],
            label=labels[i],
            labels={c: coded[c][0][i] for c in extra},
            split=(r.get("split") or None),
        )
        for i, r in enumerate(rows)
    ]
    index = VideoIndex(base, records, classes, extra, {c: coded[c][1] for c in extra})
    index.layout = "manifest"
    return index


def csv_header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _videos_by_stem(root: Path) -> dict[str, Path]:
    from elo.data.extract import find_videos

    return {v.stem: v for v in find_videos(root)}


def read_kinetics(csvs: Sequence[Path], root: Path) -> VideoIndex:
    """Kinetics annotation CSVs (see the module docstring); videos found under ``root``."""
    rows: list[dict[str, str]] = []
    for p in csvs:
        rows += _read_rows(p)
    stems = _videos_by_stem(root)
    classes = sorted({r["label"] for r in rows if r.get("label")})
    pos = {c: i for i, c in enumerate(classes)}
    records, missing = [], 0
    for r in rows:
        yid, t0, t1 = r["youtube_id"], float(r["time_start"]), float(r["time_end"])
        trimmed = stems.get(f"{yid}_{int(t0):06d}_{int(t1):06d}")
        path = trimmed or stems.get(yid)
        if path is None:
            missing += 1
            continue
        split = (r.get("split") or "").strip().lower() or None
        records.append(
            VideoRecord(
                path=path,
                rel=path.relative_to(root).as_posix(),
                label=pos.get(r.get("label") or "", -1),
                split="val" if split in ("validate", "validation") else split,
                window=None if trimmed else (t0, t1),
            )
        )
    if missing:
        log.warning("%s: %d of %d Kinetics rows have no video file", root, missing, len(rows))
    if not records:
        raise DataError(f"{root}: none of the {len(rows)} Kinetics rows has a video under it")
    index = VideoIndex(root, records, classes, [], {}, layout="kinetics")
    return index
