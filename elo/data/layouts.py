"""Dataset layouts the field uses, read into one :class:`VideoIndex` with official folds.

:func:`scan` recognises, in this order (docs/datasets.md shows each on disk):

* a CSV manifest with a header and a ``path`` column (``labels.csv`` in the folder, or
  the ``.csv`` itself): optional ``label`` / ``class`` / ``split``; other columns become
  named labels;
* **Kinetics** (Kay et al., 2017): CSVs with a header ``label,youtube_id,time_start,
  time_end,split`` (the official ``train.csv`` / ``validate.csv`` / ``test.csv``, in the
  folder or its ``annotations/``). A row's video is ``<youtube_id>_<start:06d>_<end:06d>``
  (as the official downloader trims it) or ``<youtube_id>`` with any video suffix,
  anywhere under the root: an untrimmed video gives only the row's
  ``time_start``-``time_end`` window to extraction and sampling (its own cache entry).
  Rows whose video is absent are dropped and counted. The ``validate`` split is
  named ``val``;
* **UCF101** (Soomro et al., 2012): ``root/<class>/<clip>`` with
  ``ucfTrainTestlist/{classInd,trainlist0N,testlist0N}.txt`` (or those files in the
  root): fold ``N`` is ``trainlist0N`` / ``testlist0N``;
* **HMDB51** (Kuehne et al., 2011): ``root/<class>/<clip>`` with
  ``<class>_test_split{1,2,3}.txt`` (in the root or one sub-folder, e.g.
  ``testTrainMulti_7030_splits/``); a line ``<clip> 1`` is train, ``2`` test, ``0`` unused;
* **path-label lists** (mmaction2 / VideoMAE): headerless ``path label`` lines (space or
  comma separated, label an integer from 0) in ``.txt`` / ``.csv`` files whose names
  contain ``train``, ``val`` or ``test`` and optionally a fold (``split_2``, ``split2``,
  ``02``), in the root or its ``annotations/``; paths relative to the root. A
  ``classInd.txt`` (``1 Name`` per line) names the classes;
* any other folder: ``root/<class>/<clip>`` is labeled, another tree unlabeled.

:func:`select_split` picks ``train`` / ``test`` (or ``val``) of fold ``N``. A layout
without a ``test`` split but with ``val`` (Kinetics, most mmaction2 lists) tests on
``val``. Without folds, ``split`` is a deterministic stratified hash split (fold 1 only).

The readers are in :mod:`elo.data.layout_csv` (CSV manifest, Kinetics) and
:mod:`elo.data.layout_lists` (UCF101, HMDB51, path-label lists, class folders); the
index and :func:`select_split` in :mod:`elo.data.index`. All are importable from here.
"""

from __future__ import annotations

from pathlib import Path

from elo.data.index import VideoIndex, VideoRecord, select_split
from elo.data.layout_csv import KINETICS_COLUMNS, csv_header, read_kinetics, read_manifest
from elo.data.layout_lists import (
    hmdb_lists,
    is_path_label_list,
    path_label_lists,
    read_hmdb51,
    read_labeled_folder,
    read_path_label_lists,
    read_ucf101,
    ucf_lists,
)
from elo.errors import DataError

__all__ = [
    "VideoIndex",
    "VideoRecord",
    "read_hmdb51",
    "read_kinetics",
    "read_manifest",
    "read_path_label_lists",
    "read_ucf101",
    "scan",
    "select_split",
]


def scan(root: str | Path, *, labeled: bool | None = None) -> VideoIndex:
    """Index a dataset root in the first layout that matches (module docstring)."""
    root = Path(root)
    if root.is_file() and root.suffix.lower() in (".csv", ".txt"):
        return _scan_list_file(root)
    if root.suffix.lower() == ".csv":
        return read_manifest(root)  # raises the missing-file error
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset folder or .csv manifest")
    if labeled is False:
        return _unlabeled(root, _videos(root))
    if (root / "labels.csv").exists():
        return read_manifest(root / "labels.csv")
    listed = _scan_annotations(root)
    if listed is not None:
        return listed
    videos = _videos(root)
    rels = [v.relative_to(root).as_posix() for v in videos]
    by_folder = all(r.count("/") == 1 for r in rels)
    if labeled or (labeled is None and by_folder):
        return read_labeled_folder(root)
    return _unlabeled(root, videos)


def _scan_list_file(root: Path) -> VideoIndex:
    """A ``.csv`` / ``.txt`` file given as the root: a Kinetics CSV, a ``path label``
    list or a CSV manifest."""
    head = set(csv_header(root))
    if head >= KINETICS_COLUMNS:
        base = root.parent.parent if root.parent.name == "annotations" else root.parent
        return read_kinetics([root], base)
    if is_path_label_list(root):
        return read_path_label_lists(root.parent, [root])
    if root.suffix.lower() == ".txt":
        raise DataError(f"{root}: a list file needs 'path label' lines (label an integer)")
    return read_manifest(root)


def _scan_annotations(root: Path) -> VideoIndex | None:
    """The folder's annotation files, in order: Kinetics CSVs, UCF101 split lists,
    HMDB51 split lists, ``path label`` lists, UCF101's classInd.txt alone; None when
    it has none of them."""
    kinetics = [
        p
        for d in (root, root / "annotations")
        for p in (sorted(d.glob("*.csv")) if d.is_dir() else [])
        if set(csv_header(p)) >= KINETICS_COLUMNS
    ]
    if kinetics:
        return read_kinetics(kinetics, root)
    ucf = ucf_lists(root)
    if ucf is not None and ucf[1]:
        return read_ucf101(root, *ucf)
    hmdb = hmdb_lists(root)
    if hmdb:
        return read_hmdb51(root, hmdb)
    lists = path_label_lists(root)
    if lists:
        return read_path_label_lists(root, lists)
    if ucf is not None:  # classInd.txt without split lists: class order, hash split
        return read_ucf101(root, *ucf)
    return None


def _videos(root: Path) -> list[Path]:
    """The videos under a folder; none is an error naming what the walk saw (folders,
    symlinks and where they lead, loops skipped; elo/data/discover.py)."""
    from elo.data.extract import video_scan

    found = video_scan(root)
    if not found.files:
        raise DataError(f"{root}: no videos found ({found.summary()})")
    return found.files


def _unlabeled(root: Path, videos: list[Path]) -> VideoIndex:
    rels = [v.relative_to(root).as_posix() for v in videos]
    recs = [VideoRecord(v, r, -1) for v, r in zip(videos, rels, strict=True)]
    return VideoIndex(root, recs, [], [], {})
