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
"""

from __future__ import annotations

import csv
import logging
import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from elo.errors import DataError

log = logging.getLogger(__name__)

_RESERVED = {"path", "label", "class", "split"}
_KINETICS_COLUMNS = {"label", "youtube_id", "time_start", "time_end"}
_LIST_NAME = re.compile(
    r"(?P<split>train|val|validate|validation|test)(?:ing)?"
    r"(?:[^a-z0-9]*(?:split|fold|list)?[_-]?(?P<fold>\d+))?",
    re.IGNORECASE,
)


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


# -- CSV manifest --------------------------------------------------------------------------
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


def _header(path: Path) -> list[str]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            return [c.strip() for c in next(csv.reader(fh), [])]
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


# -- Kinetics ------------------------------------------------------------------------------
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


# -- list files ----------------------------------------------------------------------------
def _lines(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read split list ({exc})") from None
    return [re.split(r"[,\s]+", ln.strip()) for ln in text.splitlines() if ln.strip()]


def _class_index(path: Path) -> list[str]:
    """``classInd.txt``: ``1 ApplyEyeMakeup`` per line, in index order."""
    pairs = sorted((int(p[0]), p[-1]) for p in _lines(path))
    return [name for _, name in pairs]


def _fold_of(name: str) -> tuple[str, int] | None:
    m = _LIST_NAME.search(name)
    if m is None:
        return None
    split = m["split"].lower()
    split = "val" if split.startswith("val") else split
    return split, int(m["fold"]) if m["fold"] else 1


def _add(folds: dict[int, dict[str, set[str]]], fold: int, split: str, rels: Iterable[str]) -> None:
    folds.setdefault(fold, {}).setdefault(split, set()).update(r.lower() for r in rels)


def _frozen(folds: dict[int, dict[str, set[str]]]) -> dict[int, dict[str, frozenset[str]]]:
    return {f: {s: frozenset(v) for s, v in d.items()} for f, d in folds.items()}


def _ucf_lists(root: Path) -> tuple[Path, list[Path]] | None:
    for d in (root / "ucfTrainTestlist", root):
        lists = sorted(d.glob("*list*.txt")) if d.is_dir() else []
        lists = [p for p in lists if re.fullmatch(r"(train|test)list\d*\.txt", p.name, re.I)]
        if lists or (d / "classInd.txt").exists():
            return d, lists
    return None


def _hmdb_lists(root: Path) -> list[Path]:
    for d in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        found = sorted(d.glob("*_test_split[0-9]*.txt"))
        if found:
            return found
    return []


def _path_label_lists(root: Path) -> list[Path]:
    out = []
    for d in (root, root / "annotations"):
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in (".txt", ".csv") or _fold_of(p.stem) is None:
                continue
            first = _lines(p)[:1]
            if first and len(first[0]) == 2 and first[0][1].lstrip("-").isdigit():
                out.append(p)
    return out


def _labeled_folder(root: Path, classes: list[str] | None = None) -> VideoIndex:
    from elo.data.extract import find_videos

    videos = find_videos(root)
    rels = [v.relative_to(root).as_posix() for v in videos]
    if not rels or not all(r.count("/") == 1 for r in rels):
        raise DataError(f"{root}: a labeled folder must look like root/<class>/<clip>")
    classes = classes or sorted({r.split("/")[0] for r in rels})
    pos = {c.lower(): i for i, c in enumerate(classes)}
    recs = []
    for v, r in zip(videos, rels, strict=True):
        cls = r.split("/")[0]
        if cls.lower() not in pos:
            raise DataError(f"{root}: class folder {cls!r} is not in the class list (classInd.txt)")
        recs.append(VideoRecord(v, r, pos[cls.lower()]))
    return VideoIndex(root, recs, list(classes), [], {})


def read_ucf101(root: Path, lists_dir: Path, lists: Sequence[Path]) -> VideoIndex:
    ind = lists_dir / "classInd.txt"
    index = _labeled_folder(root, _class_index(ind) if ind.exists() else None)
    folds: dict[int, dict[str, set[str]]] = {}
    for p in lists:
        m = re.fullmatch(r"(train|test)list(\d*)\.txt", p.name, re.I)
        assert m is not None
        _add(folds, int(m[2] or 1), m[1].lower(), (ln[0] for ln in _lines(p)))
    index.folds, index.layout = _frozen(folds), "ucf101"
    return index


def read_hmdb51(root: Path, lists: Sequence[Path]) -> VideoIndex:
    classes = sorted({re.sub(r"_test_split\d+$", "", p.stem) for p in lists})
    index = _labeled_folder(root, classes)
    folds: dict[int, dict[str, set[str]]] = {}
    for p in lists:
        m = re.fullmatch(r"(.+)_test_split(\d+)", p.stem)
        assert m is not None
        for ln in _lines(p):
            if len(ln) >= 2 and ln[1] in ("1", "2"):
                _add(folds, int(m[2]), "train" if ln[1] == "1" else "test", [f"{m[1]}/{ln[0]}"])
    index.folds, index.layout = _frozen(folds), "hmdb51"
    return index


def read_path_label_lists(root: Path, lists: Sequence[Path]) -> VideoIndex:
    entries: dict[str, tuple[Path, int]] = {}
    folds: dict[int, dict[str, set[str]]] = {}
    for p in lists:
        named = _fold_of(p.stem)  # None: a list without a split name (hash split)
        rels = []
        for ln in _lines(p):
            if len(ln) != 2 or not ln[1].lstrip("-").isdigit():
                raise DataError(f"{p}: expected 'path label' lines, got {' '.join(ln)!r}")
            path = Path(ln[0]) if Path(ln[0]).is_absolute() else root / ln[0]
            entries[ln[0]] = (path, int(ln[1]))
            rels.append(ln[0])
        if named is not None:
            _add(folds, named[1], named[0], rels)
    n = max((lab for _, lab in entries.values()), default=-1) + 1
    ind = root / "classInd.txt"
    classes = _class_index(ind) if ind.exists() else [str(i) for i in range(n)]
    records = [VideoRecord(path, rel, lab) for rel, (path, lab) in sorted(entries.items())]
    return VideoIndex(root, records, classes, [], {}, _frozen(folds), "lists")


# -- scan / select -------------------------------------------------------------------------
def scan(root: str | Path, *, labeled: bool | None = None) -> VideoIndex:
    """Index a dataset root in the first layout that matches (module docstring)."""
    from elo.data.extract import find_videos

    root = Path(root)
    if root.is_file() and root.suffix.lower() in (".csv", ".txt"):
        head = set(_header(root))
        if head >= _KINETICS_COLUMNS:
            base = root.parent.parent if root.parent.name == "annotations" else root.parent
            return read_kinetics([root], base)
        first = _lines(root)[:1]
        if first and len(first[0]) == 2 and first[0][1].lstrip("-").isdigit():
            return read_path_label_lists(root.parent, [root])
        if root.suffix.lower() == ".txt":
            raise DataError(f"{root}: a list file needs 'path label' lines (label an integer)")
        return read_manifest(root)
    if root.suffix.lower() == ".csv":
        return read_manifest(root)  # raises the missing-file error
    if not root.is_dir():
        raise DataError(f"{root}: no such dataset folder or .csv manifest")
    if labeled is False:
        videos = find_videos(root)
        rels = [v.relative_to(root).as_posix() for v in videos]
        recs = [VideoRecord(v, r, -1) for v, r in zip(videos, rels, strict=True)]
        return VideoIndex(root, recs, [], [], {})
    if (root / "labels.csv").exists():
        return read_manifest(root / "labels.csv")
    kinetics = [
        p
        for d in (root, root / "annotations")
        for p in (sorted(d.glob("*.csv")) if d.is_dir() else [])
        if set(_header(p)) >= _KINETICS_COLUMNS
    ]
    if kinetics:
        return read_kinetics(kinetics, root)
    ucf = _ucf_lists(root)
    if ucf is not None and ucf[1]:
        return read_ucf101(root, *ucf)
    hmdb = _hmdb_lists(root)
    if hmdb:
        return read_hmdb51(root, hmdb)
    lists = _path_label_lists(root)
    if lists:
        return read_path_label_lists(root, lists)
    if ucf is not None:  # classInd.txt without split lists: class order, hash split
        return read_ucf101(root, *ucf)
    videos = find_videos(root)
    rels = [v.relative_to(root).as_posix() for v in videos]
    by_folder = bool(rels) and all(r.count("/") == 1 for r in rels)
    if labeled or (labeled is None and by_folder):
        return _labeled_folder(root)
    recs = [VideoRecord(v, r, -1) for v, r in zip(videos, rels, strict=True)]
    return VideoIndex(root, recs, [], [], {})


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
