"""Class-folder layouts with split lists: UCF101 (:func:`read_ucf101`), HMDB51
(:func:`read_hmdb51`), mmaction2 / VideoMAE path-label lists
(:func:`read_path_label_lists`) and a plain ``root/<class>/<clip>`` folder
(:func:`read_labeled_folder`); docs/datasets.md shows each on disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from elo.data.index import VideoIndex, VideoRecord
from elo.errors import DataError

_LIST_NAME = re.compile(
    r"(?P<split>train|val|validate|validation|test)(?:ing)?"
    r"(?:[^a-z0-9]*(?:split|fold|list)?[_-]?(?P<fold>\d+))?",
    re.IGNORECASE,
)


def _lines(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read split list ({exc})") from None
    return [re.split(r"[,\s]+", ln.strip()) for ln in text.splitlines() if ln.strip()]


def is_path_label_list(path: Path) -> bool:
    """Whether the first line of ``path`` is ``path label`` (label an integer)."""
    first = _lines(path)[:1]
    return bool(first) and len(first[0]) == 2 and first[0][1].lstrip("-").isdigit()


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


def ucf_lists(root: Path) -> tuple[Path, list[Path]] | None:
    for d in (root / "ucfTrainTestlist", root):
        lists = sorted(d.glob("*list*.txt")) if d.is_dir() else []
        lists = [p for p in lists if re.fullmatch(r"(train|test)list\d*\.txt", p.name, re.I)]
        if lists or (d / "classInd.txt").exists():
            return d, lists
    return None


def hmdb_lists(root: Path) -> list[Path]:
    for d in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        found = sorted(d.glob("*_test_split[0-9]*.txt"))
        if found:
            return found
    return []


def path_label_lists(root: Path) -> list[Path]:
    out = []
    for d in (root, root / "annotations"):
        if not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.suffix.lower() not in (".txt", ".csv") or _fold_of(p.stem) is None:
                continue
            if is_path_label_list(p):
                out.append(p)
    return out


def read_labeled_folder(root: Path, classes: list[str] | None = None) -> VideoIndex:
    from elo.data.extract import video_scan

    found = video_scan(root)
    videos = found.files
    rels = [v.relative_to(root).as_posix() for v in videos]
    if not rels:
        raise DataError(f"{root}: no videos found ({found.summary()})")
    stray = [r for r in rels if r.count("/") != 1]
    if stray:
        raise DataError(
            f"{root}: a labeled folder must look like root/<class>/<clip>; "
            f"{len(stray)} of {len(rels)} videos do not, e.g. {stray[0]}"
        )
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
    index = read_labeled_folder(root, _class_index(ind) if ind.exists() else None)
    folds: dict[int, dict[str, set[str]]] = {}
    for p in lists:
        m = re.fullmatch(r"(train|test)list(\d*)\.txt", p.name, re.I)
        assert m is not None
        _add(folds, int(m[2] or 1), m[1].lower(), (ln[0] for ln in _lines(p)))
    index.folds, index.layout = _frozen(folds), "ucf101"
    return index


def read_hmdb51(root: Path, lists: Sequence[Path]) -> VideoIndex:
    classes = sorted({re.sub(r"_test_split\d+$", "", p.stem) for p in lists})
    index = read_labeled_folder(root, classes)
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
